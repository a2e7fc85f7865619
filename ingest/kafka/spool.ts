/**
 * A durable on-disk FIFO of opaque records: where the producer keeps events while Kafka cannot be
 * reached, so that an outage (or a crash during one) loses nothing that was accepted.
 *
 * Layout of the directory:
 * - `NNNNNNNNNNNNNNNNNNNN.seg` append-only segment files, in sequence order. A record is
 *   `u32 length | u32 CRC-32 of (length field + payload) | payload`. The CRC covers the length
 *   so that a zero-filled tail (what a filesystem may leave after a power cut) never parses as a
 *   valid empty record.
 * - `head`: how far the records have been acknowledged (`u64 segment seq | u64 byte offset |
 *   u32 CRC`), replaced atomically by rename. Acknowledged segments are deleted after the head moved
 *   past them, so a crash in between leaves files the next open recognises as consumed.
 * - `lock`: the owning process id; one process per spool.
 *
 * All I/O is synchronous: appends are small writes to the page cache, the order of records is then
 * simply the order of calls, and a record is either written or not when the call returns. How often
 * data reaches the disk itself is the fsync policy.
 *
 * After a crash the last record may be torn (partly written) or garbage: open() checks every record
 * and truncates a segment at the first bad one, with a warning that says how much was dropped.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from '../../core/crc.js';
import { type Logger, silentLogger } from '../../core/log.js';

export type FsyncPolicy = 'always' | 'interval' | 'never';

export interface SpoolOptions {
  dir: string;
  /** Bound on the bytes the segment files may hold (framing included). Default 256 MiB. */
  maxBytes?: number;
  /** A new segment starts once the current one reaches this size. Default 8 MiB. */
  segmentBytes?: number;
  /**
   * 'always': fsync after every append and head update (nothing acknowledged is lost on power
   * failure; slowest). 'interval' (default): at most `fsyncIntervalMs` of appends are at risk.
   * 'never': leave it to the OS (a process crash still loses nothing; a power cut may).
   */
  fsync?: FsyncPolicy;
  fsyncIntervalMs?: number;
  logger?: Logger;
}

const RECORD_HEADER = 8;
/** Larger records are refused: a corrupt length field must not make open() read gigabytes. */
export const MAX_SPOOL_RECORD = 16 * 1024 * 1024;
const HEAD_FILE = 'head';
const HEAD_SIZE = 20;
const LOCK_FILE = 'lock';
const READ_CHUNK = 1 << 20;

interface Segment {
  seq: number;
  path: string;
  /** Valid bytes in the file. */
  bytes: number;
}

interface Position {
  seq: number;
  offset: number;
}

function segmentName(seq: number): string {
  return `${String(seq).padStart(20, '0')}.seg`;
}

function frame(record: Buffer): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER + record.length);
  out.writeUInt32BE(record.length, 0);
  const crc = crc32(record, crc32(out.subarray(0, 4)));
  out.writeUInt32BE(crc, 4);
  record.copy(out, RECORD_HEADER);
  return out;
}

/** Reads `length` bytes at `position` of `fd` (short only at end of file). */
function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

type ScanResult = { kind: 'ok'; end: number } | { kind: 'bad'; at: number; reason: string };

/**
 * Walks a segment from `start`, calling `onRecord` for each valid record, and stops after `limit`
 * records or at the first problem.
 */
function scanSegment(
  fd: number,
  start: number,
  fileBytes: number,
  limit: number,
  onRecord?: (payload: Buffer, end: number) => boolean | undefined,
): ScanResult {
  let pos = start;
  let seen = 0;
  let chunk: Buffer = Buffer.alloc(0);
  let chunkStart = pos;
  const ensure = (from: number, need: number): Buffer | null => {
    if (from + need > fileBytes) return null;
    if (from < chunkStart || from + need > chunkStart + chunk.length) {
      chunkStart = from;
      chunk = readAt(fd, from, Math.min(Math.max(need, READ_CHUNK), fileBytes - from));
      if (chunk.length < need) return null;
    }
    return chunk.subarray(from - chunkStart, from - chunkStart + need);
  };
  while (pos < fileBytes && seen < limit) {
    const header = ensure(pos, RECORD_HEADER);
    if (!header) return { kind: 'bad', at: pos, reason: 'torn record header' };
    const length = header.readUInt32BE(0);
    const stored = header.readUInt32BE(4);
    if (length > MAX_SPOOL_RECORD) {
      return { kind: 'bad', at: pos, reason: `record length ${length} is over ${MAX_SPOOL_RECORD}` };
    }
    const lengthCrc = crc32(header.subarray(0, 4));
    const payload = ensure(pos + RECORD_HEADER, length);
    if (!payload) return { kind: 'bad', at: pos, reason: `torn record (${length} bytes announced)` };
    if (crc32(payload, lengthCrc) !== stored) return { kind: 'bad', at: pos, reason: 'CRC mismatch' };
    pos += RECORD_HEADER + length;
    seen++;
    if (onRecord?.(payload, pos) === false) break;
  }
  return { kind: 'ok', end: pos };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** See the module comment. Owned by the caller, who must `close()` it. */
export class Spool {
  readonly dir: string;
  readonly maxBytes: number;
  readonly segmentBytes: number;
  private readonly policy: FsyncPolicy;
  private readonly logger: Logger;
  private readonly segments: Segment[] = [];
  private head: Position;
  private count = 0;
  private diskBytes = 0;
  private tailFd: number | null = null;
  private readFd: { seq: number; fd: number } | null = null;
  private dirty = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** What the last peek() returned, with the position after each record, so ack() need not re-read. */
  private peeked: { from: Position; ends: Position[] } | null = null;

  private constructor(options: SpoolOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.segmentBytes = Math.max(RECORD_HEADER + 1, options.segmentBytes ?? 8 * 1024 * 1024);
    this.policy = options.fsync ?? 'interval';
    this.logger = options.logger ?? silentLogger;
    this.head = { seq: 1, offset: 0 };
  }

  /** Opens (creating if needed) the spool in `options.dir`, recovering from a crash if there was one. */
  static open(options: SpoolOptions): Spool {
    const spool = new Spool(options);
    mkdirSync(spool.dir, { recursive: true });
    spool.lock();
    try {
      spool.recover();
    } catch (e) {
      spool.unlock();
      throw e;
    }
    if (spool.policy === 'interval') {
      spool.timer = setInterval(() => spool.syncIfDirty(), options.fsyncIntervalMs ?? 1000);
      spool.timer.unref();
    }
    return spool;
  }

  /** Records appended and not yet acknowledged. */
  get size(): number {
    return this.count;
  }

  /** Bytes the segment files hold; bounded by `maxBytes`. */
  get bytes(): number {
    return this.diskBytes;
  }

  /** Bytes that can still be appended (framing included). */
  get freeBytes(): number {
    return Math.max(0, this.maxBytes - this.diskBytes);
  }

  /** Bytes a record takes on disk. */
  static framedSize(record: Buffer): number {
    return RECORD_HEADER + record.length;
  }

  /**
   * Appends records in order and returns how many were appended: the longest prefix that fits under
   * `maxBytes` (the caller keeps the rest and tries again after acks). Throws RangeError for a
   * record that could never fit.
   */
  append(records: Buffer[]): number {
    this.checkOpen('append');
    let appended = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for (const record of records) {
      const size = RECORD_HEADER + record.length;
      if (record.length > MAX_SPOOL_RECORD || size > this.maxBytes) {
        throw new RangeError(
          `spool ${this.dir}: a ${record.length}-byte record can never fit (limit ${Math.min(MAX_SPOOL_RECORD, this.maxBytes - RECORD_HEADER)})`,
        );
      }
      if (this.diskBytes + pendingBytes + size > this.maxBytes) break;
      const tail = this.segments[this.segments.length - 1];
      if (!tail || (tail.bytes + pendingBytes > 0 && tail.bytes + pendingBytes + size > this.segmentBytes)) {
        this.writePending(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
        this.roll();
      }
      pending.push(frame(record));
      pendingBytes += size;
      appended++;
    }
    this.writePending(pending, pendingBytes);
    if (appended > 0) {
      if (this.policy === 'always') fsyncSync(this.tailFd!);
      else this.dirty = true;
    }
    return appended;
  }

  /** Up to `n` oldest records (at most about `maxBytes` of payload, but always one), without removing them. */
  peek(n: number, maxBytes = Number.POSITIVE_INFINITY): Buffer[] {
    this.checkOpen('peek');
    const out: Buffer[] = [];
    const ends: Position[] = [];
    let bytes = 0;
    let full = false;
    for (const seg of this.segments) {
      if (full || out.length >= n) break;
      const start = seg.seq === this.head.seq ? this.head.offset : 0;
      if (start >= seg.bytes) continue;
      const result = scanSegment(this.readFdOf(seg), start, seg.bytes, n - out.length, (payload, end) => {
        if (out.length > 0 && bytes + payload.length > maxBytes) {
          full = true;
          return false;
        }
        out.push(Buffer.from(payload));
        ends.push({ seq: seg.seq, offset: end });
        bytes += payload.length;
        return true;
      });
      if (result.kind === 'bad') {
        // Verified at open or written by us: this is corruption while running.
        throw new Error(`spool ${seg.path}: ${result.reason} at byte ${result.at} (data changed on disk?)`);
      }
    }
    this.peeked = { from: { ...this.head }, ends };
    return out;
  }

  /** Removes the `n` oldest records (those a previous peek returned, typically). */
  ack(n: number): void {
    this.checkOpen('ack');
    if (!Number.isInteger(n) || n < 0 || n > this.count) {
      throw new RangeError(`spool ${this.dir}: cannot ack ${n} of ${this.count} records`);
    }
    if (n === 0) return;
    let next: Position;
    const p = this.peeked;
    if (p && p.from.seq === this.head.seq && p.from.offset === this.head.offset && n <= p.ends.length) {
      next = p.ends[n - 1];
    } else {
      next = this.skip(n);
    }
    this.peeked = null;
    this.count -= n;
    this.head = { ...next };
    // Normalise: a head at the end of a segment moves to the next one, and consumed segments go.
    let drop = 0;
    while (drop < this.segments.length) {
      const seg = this.segments[drop];
      if (seg.seq < this.head.seq) {
        drop++;
        continue;
      }
      if (seg.seq === this.head.seq && this.head.offset >= seg.bytes) {
        const following = this.segments[drop + 1];
        this.head = following ? { seq: following.seq, offset: 0 } : { seq: seg.seq + 1, offset: 0 };
        drop++;
        continue;
      }
      break;
    }
    // The head goes to disk before the files it releases are deleted: a crash in between leaves
    // segments older than the head, which open() removes.
    this.writeHead();
    const dropped = this.segments.splice(0, drop);
    if (this.segments.length === 0 && this.tailFd !== null) {
      closeSync(this.tailFd);
      this.tailFd = null;
    }
    for (const seg of dropped) this.removeSegment(seg);
  }

  /** Forces appended data and the head to disk now. */
  sync(): void {
    this.checkOpen('sync');
    if (this.tailFd !== null) fsyncSync(this.tailFd);
    this.dirty = false;
  }

  close(): void {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.policy !== 'never' && this.tailFd !== null) fsyncSync(this.tailFd);
    if (this.tailFd !== null) closeSync(this.tailFd);
    if (this.readFd) closeSync(this.readFd.fd);
    this.tailFd = null;
    this.readFd = null;
    this.closed = true;
    this.unlock();
  }

  // -------------------------------------------------------------------------------------------

  private checkOpen(what: string): void {
    if (this.closed) throw new Error(`spool ${this.dir}: ${what} after close`);
  }

  private lock(): void {
    const path = join(this.dir, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(path, String(process.pid), { flag: 'wx' });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
        throw new Error(`spool ${this.dir} is in use by process ${pid} (${path})`);
      }
      // Left by a process that died (a crash is exactly when the spool matters): take it over.
      this.logger.warn('spool: removing stale lock', { dir: this.dir, pid: Number.isNaN(pid) ? null : pid });
      rmSync(path, { force: true });
    }
    throw new Error(`spool ${this.dir}: cannot take the lock ${path}`);
  }

  private unlock(): void {
    rmSync(join(this.dir, LOCK_FILE), { force: true });
  }

  private readHead(): Position | null {
    const path = join(this.dir, HEAD_FILE);
    if (!existsSync(path)) return null;
    const buf = readFileSync(path);
    if (buf.length !== HEAD_SIZE || crc32(buf.subarray(0, 16)) !== buf.readUInt32BE(16)) {
      this.logger.warn('spool: head file is corrupt; replaying from the oldest segment', {
        dir: this.dir,
        bytes: buf.length,
      });
      return null;
    }
    return { seq: Number(buf.readBigUInt64BE(0)), offset: Number(buf.readBigUInt64BE(8)) };
  }

  private writeHead(): void {
    const buf = Buffer.alloc(HEAD_SIZE);
    buf.writeBigUInt64BE(BigInt(this.head.seq), 0);
    buf.writeBigUInt64BE(BigInt(this.head.offset), 8);
    buf.writeUInt32BE(crc32(buf.subarray(0, 16)), 16);
    const tmp = join(this.dir, `${HEAD_FILE}.tmp`);
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, buf);
      if (this.policy === 'always') fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(this.dir, HEAD_FILE));
  }

  private recover(): void {
    const files = readdirSync(this.dir)
      .filter((f) => /^\d{20}\.seg$/.test(f))
      .sort();
    const head = this.readHead();
    const firstSeq = files.length ? Number.parseInt(files[0], 10) : 1;
    this.head = head ?? { seq: firstSeq, offset: 0 };
    for (const file of files) {
      const seq = Number.parseInt(file, 10);
      const path = join(this.dir, file);
      if (seq < this.head.seq) {
        // Consumed before a crash that came between the head update and the delete.
        rmSync(path, { force: true });
        continue;
      }
      this.segments.push({ seq, path, bytes: 0 });
    }
    if (this.segments.length && this.segments[0].seq > this.head.seq) {
      this.head = { seq: this.segments[0].seq, offset: 0 };
    }

    for (const seg of this.segments) {
      const fd = openSync(seg.path, 'r+');
      try {
        const fileBytes = fstatSync(fd).size;
        const isHead = seg.seq === this.head.seq;
        let records = 0;
        let before = 0;
        let headOnBoundary = !isHead || this.head.offset === 0;
        const result = scanSegment(fd, 0, fileBytes, Number.POSITIVE_INFINITY, (_p, end) => {
          records++;
          if (isHead && end <= this.head.offset) before++;
          if (isHead && end === this.head.offset) headOnBoundary = true;
          return true;
        });
        let valid: number;
        if (result.kind === 'bad') {
          valid = result.at;
          const last = seg === this.segments[this.segments.length - 1];
          this.logger.warn(
            last
              ? 'spool: torn or corrupt tail after a crash; truncating it'
              : 'spool: corrupt record inside the spool; dropping the rest of that segment',
            {
              segment: seg.path,
              offset: result.at,
              reason: result.reason,
              droppedBytes: fileBytes - result.at,
            },
          );
          ftruncateSync(fd, valid);
          fsyncSync(fd);
        } else {
          valid = result.end;
        }
        seg.bytes = valid;
        if (isHead) {
          if (this.head.offset > valid) {
            this.head.offset = valid;
            before = records;
          } else if (!headOnBoundary) {
            this.logger.warn('spool: head is not on a record boundary; replaying its segment', {
              segment: seg.path,
              offset: this.head.offset,
            });
            this.head.offset = 0;
            before = 0;
          }
          records -= before;
        }
        this.count += records;
        this.diskBytes += valid;
      } finally {
        closeSync(fd);
      }
    }
    // The head may now sit at the end of fully consumed segments: let ack(0)-like normalisation run.
    while (this.segments.length > 0 && this.segments[0].seq === this.head.seq) {
      const seg = this.segments[0];
      if (this.head.offset < seg.bytes) break;
      const following = this.segments[1];
      if (!following && seg.bytes < this.segmentBytes && seg.bytes > 0) break; // keep appending to it
      this.head = following ? { seq: following.seq, offset: 0 } : { seq: seg.seq + 1, offset: 0 };
      this.writeHead();
      this.segments.shift();
      this.diskBytes -= seg.bytes;
      rmSync(seg.path, { force: true });
    }
    if (!head || head.seq !== this.head.seq || head.offset !== this.head.offset) this.writeHead();
    if (this.count > 0) {
      this.logger.info('spool: reopened with records to replay', {
        dir: this.dir,
        records: this.count,
        bytes: this.diskBytes,
      });
    }
  }

  /** Starts a new tail segment (the head's segment when the spool is empty). */
  private roll(): void {
    const tail = this.segments[this.segments.length - 1];
    if (this.tailFd !== null) {
      if (this.policy !== 'never') fsyncSync(this.tailFd);
      closeSync(this.tailFd);
      this.tailFd = null;
    }
    const seq = tail ? tail.seq + 1 : this.head.seq;
    const seg: Segment = { seq, path: join(this.dir, segmentName(seq)), bytes: 0 };
    this.tailFd = openSync(seg.path, 'a');
    this.segments.push(seg);
    if (this.policy === 'always') this.syncDir();
  }

  private writePending(pending: Buffer[], bytes: number): void {
    if (pending.length === 0) return;
    const tail = this.segments[this.segments.length - 1];
    if (this.tailFd === null) this.tailFd = openSync(tail.path, 'a');
    const data = pending.length === 1 ? pending[0] : Buffer.concat(pending, bytes);
    let written = 0;
    try {
      while (written < data.length) written += writeSync(this.tailFd, data, written);
    } catch (e) {
      // No half record may stay behind (ENOSPC, EIO): cut the file back to where it was.
      try {
        ftruncateSync(this.tailFd, tail.bytes);
      } catch {
        // open() will truncate the torn record anyway
      }
      throw new Error(`spool ${tail.path}: write failed: ${(e as Error).message}`, { cause: e });
    }
    tail.bytes += data.length;
    this.diskBytes += data.length;
    this.count += pending.length;
  }

  private readFdOf(seg: Segment): number {
    if (this.readFd?.seq === seg.seq) return this.readFd.fd;
    if (this.readFd) closeSync(this.readFd.fd);
    this.readFd = { seq: seg.seq, fd: openSync(seg.path, 'r') };
    return this.readFd.fd;
  }

  /** Position after the next `n` records from the head (headers only; CRCs were checked before). */
  private skip(n: number): Position {
    let left = n;
    let pos: Position = { ...this.head };
    for (const seg of this.segments) {
      if (left === 0) break;
      const start = seg.seq === pos.seq ? pos.offset : 0;
      const fd = this.readFdOf(seg);
      let offset = start;
      while (left > 0 && offset < seg.bytes) {
        const header = readAt(fd, offset, 4);
        offset += RECORD_HEADER + header.readUInt32BE(0);
        left--;
      }
      pos = { seq: seg.seq, offset };
    }
    return pos;
  }

  private removeSegment(seg: Segment): void {
    if (this.readFd?.seq === seg.seq) {
      closeSync(this.readFd.fd);
      this.readFd = null;
    }
    this.diskBytes -= seg.bytes;
    rmSync(seg.path, { force: true });
  }

  private syncIfDirty(): void {
    if (!this.dirty || this.closed || this.tailFd === null) return;
    try {
      fsyncSync(this.tailFd);
      this.dirty = false;
    } catch (e) {
      this.logger.error('spool: fsync failed', { dir: this.dir, error: (e as Error).message });
    }
  }

  private syncDir(): void {
    try {
      const fd = openSync(this.dir, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch {
      // Some filesystems refuse fsync on directories; the rename/creation is then as durable as it gets.
    }
  }
}
