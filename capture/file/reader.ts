import { type FileHandle, open } from 'node:fs/promises';
import { MAX_CAPLEN, PcapParser } from './pcap.js';
import { PcapngParser } from './pcapng.js';
import { CaptureFormatError, emptyPacketRecord, type PacketRecord } from './record.js';

export interface ReadOptions {
  /** Bytes requested per read (default 4 MiB); the buffer grows past it only for a larger record. */
  chunkSize?: number;
  /**
   * Asked before each read for fewer bytes than chunkSize (at least 64 KiB): the consumer keeps its
   * batches small when the packets are dense in events (a SIP-only capture), so that they die young.
   */
  nextChunkSize?: () => number;
  /** Called once after each chunk has been read and parsed. */
  onProgress?: (bytesRead: number, totalBytes: number) => void;
  /**
   * Backpressure from the consumer: asked after each chunk; when it returns a promise, reading waits
   * for it (e.g. until a store writer has room). Packets are delivered synchronously within a chunk.
   */
  pause?: () => Promise<void> | null;
  signal?: AbortSignal;
}

export interface ReadResult {
  format: 'pcap' | 'pcapng';
  /** Packets delivered. */
  packets: number;
  /** Records cut off by the end of the file (counted, not thrown). */
  truncatedRecords: number;
  /** Corrupt record/block headers that were skipped or that ended reading. */
  malformedRecords: number;
  /** Bytes of the file covered (read or skipped). */
  bytes: number;
  /** Each names the file and a byte offset; capped at MAX_WARNINGS entries. */
  warnings: string[];
}

export const DEFAULT_CHUNK_SIZE = 4 << 20;
export const MAX_WARNINGS = 100;
/** Room kept in front of a chunk read ahead for the record carried over: a pcap record's largest. */
const READ_AHEAD_HEADROOM = MAX_CAPLEN + 16;

/**
 * What a format parser gets from the reader: the shared record, the callback, and the counters.
 * Lives here (not in record.ts, which is shared) and is only imported as a type by the parsers,
 * so there is no runtime import cycle.
 */
export class ReadContext {
  /** The one record handed out for every packet. */
  readonly record: PacketRecord = emptyPacketRecord();
  packets = 0;
  truncatedRecords = 0;
  malformedRecords = 0;
  readonly warnings: string[] = [];
  private suppressed = 0;
  private firstSuppressedAt = 0;

  constructor(
    readonly file: string,
    readonly onPacket: (record: PacketRecord) => void,
  ) {}

  warn(byteOffset: number, message: string): void {
    // One slot is kept for the "N more" summary so a corrupt file cannot grow the list without bound.
    if (this.warnings.length < MAX_WARNINGS - 1) {
      this.warnings.push(`${this.file}: ${message} at byte offset ${byteOffset}`);
    } else {
      if (this.suppressed === 0) this.firstSuppressedAt = byteOffset;
      this.suppressed++;
    }
  }

  /** Warnings including the summary of suppressed ones. */
  finalWarnings(): string[] {
    if (this.suppressed === 0) return this.warnings;
    return [
      ...this.warnings,
      `${this.file}: ${this.suppressed} more warning(s) not listed, the first at byte offset ${this.firstSuppressedAt}`,
    ];
  }
}

/**
 * A streaming format parser. The reader keeps unconsumed bytes for it and calls parse again with
 * more data; parse must consume whatever it can, synchronously.
 */
export interface CaptureParser {
  readonly format: 'pcap' | 'pcapng';
  /**
   * Bytes needed from the position parse last returned before it can make progress; the reader
   * grows its buffer to at least this. Must exceed the bytes left unconsumed unless at EOF.
   */
  need: number;
  /**
   * Parses buf[start, end). `base` is the file offset of buf[0]; `eof` means no bytes follow `end`.
   * Returns how far it consumed; a value beyond `end` asks the reader to skip that far in the file
   * without reading. At EOF it must consume everything.
   */
  parse(buf: Buffer, start: number, end: number, base: number, eof: boolean): number;
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function createParser(buf: Buffer, at: number, ctx: ReadContext): CaptureParser {
  const magic = buf.readUInt32LE(at);
  switch (magic) {
    case 0xa1b2c3d4:
    case 0xd4c3b2a1:
    case 0xa1b23c4d:
    case 0x4d3cb2a1:
      return new PcapParser(ctx, magic);
    case 0x0a0d0d0a:
      return new PcapngParser(ctx);
    case 0xa1b2cd34:
    case 0x34cdb2a1:
      throw new CaptureFormatError(ctx.file, 0, 'modified (Kuznetzov) pcap is not supported');
  }
  if (buf[at] === 0x1f && buf[at + 1] === 0x8b) {
    throw new CaptureFormatError(ctx.file, 0, 'file is gzip-compressed; decompress it first');
  }
  const hex = magic.toString(16).padStart(8, '0');
  throw new CaptureFormatError(ctx.file, 0, `unknown magic 0x${hex} (not a pcap or pcapng file)`);
}

/** A chunk being read into the spare buffer at `headroom`, from file offset `at`. */
interface ReadAhead {
  at: number;
  headroom: number;
  done: Promise<number>;
}

/** Reads a pcap or pcapng file (detected by magic), calling onPacket for each packet with a reused record. */
export async function readCaptureFile(
  path: string,
  onPacket: (record: PacketRecord) => void,
  options: ReadOptions = {},
): Promise<ReadResult> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`chunkSize must be a positive integer, got ${chunkSize}`);
  }
  const { onProgress, signal } = options;
  signal?.throwIfAborted();

  let fh: FileHandle;
  // The read ahead in flight, if any: it is waited for before the file is closed.
  let ahead: ReadAhead | null = null;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new CaptureFormatError(path, 0, `cannot open: ${reasonOf(err)}`);
  }
  try {
    let totalBytes: number;
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new Error('is a directory');
      totalBytes = st.size;
    } catch (err) {
      throw new CaptureFormatError(path, 0, `cannot read: ${reasonOf(err)}`);
    }

    const ctx = new ReadContext(path, onPacket);
    let parser: CaptureParser | undefined;
    // Small files do not need a full-size chunk buffer; it grows if the file does.
    let buf = Buffer.allocUnsafe(Math.max(64, Math.min(chunkSize, totalBytes)));
    let start = 0; // first unconsumed byte in buf
    let end = 0; // end of valid bytes in buf
    let base = 0; // file offset of buf[0]
    let pos = 0; // file offset of the next read
    let eof = false;
    // Read-ahead: while one chunk is parsed, the next is read into a second buffer after a headroom
    // (on a libuv thread, so on the other core); the carried-over partial record is then copied into
    // the headroom in front of it and the buffers swap.
    let spare: typeof buf | null = null;
    const readAt = async (target: Buffer, offset: number, length: number, at: number): Promise<number> => {
      try {
        return (await fh.read(target, offset, length, at)).bytesRead;
      } catch (err) {
        if (at === 0) throw new CaptureFormatError(path, 0, `cannot read: ${reasonOf(err)}`);
        throw new Error(`${path}: read failed at byte offset ${at}: ${reasonOf(err)}`, { cause: err });
      }
    };

    for (;;) {
      signal?.throwIfAborted();
      const size = Math.min(chunkSize, Math.max(64 << 10, options.nextChunkSize?.() ?? chunkSize));
      let n: number;
      const took = ahead as ReadAhead | null;
      ahead = null;
      if (took !== null && took.at === pos && spare !== null) {
        n = await took.done;
        const h = took.headroom;
        const tail = end - start;
        if (tail <= h) {
          buf.copy(spare, h - tail, start, end);
          [buf, spare] = [spare, buf];
          start = h - tail;
          end = h + n;
          base = pos - h;
        } else {
          // A partial record larger than the headroom: both parts into one buffer big enough.
          const joined = Buffer.allocUnsafe(Math.max(buf.length, tail + n));
          buf.copy(joined, 0, start, end);
          spare.copy(joined, tail, h, h + n);
          base += start;
          start = 0;
          end = tail + n;
          buf = joined;
        }
      } else {
        // The parser skipped past the bytes read ahead: they are not needed.
        if (took !== null) await took.done.catch(() => 0);
        const need = parser ? parser.need : 4;
        const room = Math.min(size, buf.length);
        // Move the carried-over partial record to the front when the tail is too small for the next read.
        if (start > 0 && (buf.length - start < need || buf.length - end < room)) {
          buf.copyWithin(0, start, end);
          base += start;
          end -= start;
          start = 0;
        }
        if (buf.length < need) {
          const bigger = Buffer.allocUnsafe(Math.max(need, Math.min(buf.length * 2, DEFAULT_CHUNK_SIZE)));
          buf.copy(bigger, 0, start, end);
          buf = bigger;
        }
        const want = Math.min(size, buf.length - end);
        if (want <= 0)
          throw new Error(`${path}: internal error: reader made no progress at byte offset ${pos}`);
        n = await readAt(buf, end, want, pos);
        end += n;
      }
      if (n === 0) eof = true;
      pos += n;
      if (!eof && pos < totalBytes) {
        if (spare === null || spare.length !== buf.length) spare = Buffer.allocUnsafe(buf.length);
        const headroom = Math.min(READ_AHEAD_HEADROOM, spare.length >> 1);
        const done = readAt(spare, headroom, Math.min(size, spare.length - headroom), pos);
        // A failure surfaces when its bytes are needed, or not at all if they are skipped.
        done.catch(() => 0);
        ahead = { at: pos, headroom, done };
      }

      if (!parser) {
        if (end - start < 4) {
          if (eof)
            throw new CaptureFormatError(path, 0, `file too short for a capture header (${end} bytes)`);
          continue;
        }
        parser = createParser(buf, start, ctx);
      }
      const consumed = parser.parse(buf, start, end, base, eof);
      if (consumed > end) {
        // The parser skips a block it does not need; nothing of it is read into memory.
        pos = base + consumed;
        base = pos;
        start = end = 0;
      } else {
        start = consumed;
      }
      onProgress?.(pos, Math.max(totalBytes, pos));
      const wait = options.pause?.();
      if (wait) await wait;
      if (eof) break;
    }

    const finalSize = (await fh.stat()).size;
    return {
      format: parser.format,
      packets: ctx.packets,
      truncatedRecords: ctx.truncatedRecords,
      malformedRecords: ctx.malformedRecords,
      bytes: Math.min(pos, finalSize),
      warnings: ctx.finalWarnings(),
    };
  } finally {
    const pending = ahead as ReadAhead | null;
    if (pending !== null) await pending.done.catch(() => 0);
    await fh.close();
  }
}
