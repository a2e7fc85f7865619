/**
 * The per-call RTP spool (`--save-rtp DIR`): every RTP, RTCP and UDPTL datagram the media tracker
 * binds to a call, as captured, appended to that call's pcap file, so that `callscope export` of the
 * call can include its media (the store keeps SIP only). VoIPmonitor keeps media the same way.
 *
 * Bounded three ways, each refusal counted by reason and logged (the first of each kind, then a
 * periodic summary), the capture never held up:
 * - disk: at most `maxBytes` in all; past it the least recently written files are deleted first (a
 *   call whose file went has the rest of its packets dropped, not a fragment without its start), and
 *   when only the file being written is left the packet is dropped ('disk-full');
 * - per call: at most `maxCallBytes` a call ('call-full');
 * - age: files older than `maxAgeMs` (by their last write) are deleted at the next sweep.
 * Packets wait in a per-call buffer (at most `maxBufferedBytes` in all, the biggest buffer written out
 * first) and are appended with one open-write-close per flush: no file descriptor stays open per call.
 *
 * Files: DIR/<first day seen, UTC>/<Call-ID made safe>-<hash>.pcap (spoolFileName), one link type each.
 */
import { appendFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fnv1a } from '../analyze/tracking.js';
import { type Logger, silentLogger } from '../core/log.js';
import type { PacketRecord } from './file/record.js';

export interface RtpSpoolOptions {
  dir: string;
  /** All files together (default 1 GiB). */
  maxBytes?: number;
  /** One call's file (default 50 MiB). */
  maxCallBytes?: number;
  /** Files not written for this long are deleted (default 24 h). */
  maxAgeMs?: number;
  /** Waiting in memory before being written (default 16 MiB). */
  maxBufferedBytes?: number;
  logger?: Logger;
}

export type RtpSpoolDrop = 'disk-full' | 'call-full' | 'write-failed' | 'link-type';

export interface RtpSpoolStats {
  packets: number;
  bytes: number;
  files: number;
  filesDeleted: number;
  dropped: Record<RtpSpoolDrop, number>;
}

/** A call being spooled now: its packets wait here until written. */
interface ActiveCall {
  path: string;
  linkType: number;
  pending: Buffer[];
  pendingBytes: number;
  /** Wall clock of its last packet. */
  lastPacketMs: number;
  /** Its file was deleted to make room: the rest of the call is dropped, not a headless fragment. */
  evicted: boolean;
}

/** A spool file on disk (written bytes and those waiting), by wall-clock time of its last write. */
interface SpoolFile {
  size: number;
  lastWriteMs: number;
}

/** The file name a Call-ID is spooled under (safe on any file system, distinct per Call-ID). */
export function spoolFileName(callId: string): string {
  const safe = callId.replace(/[^A-Za-z0-9._@-]/g, '_').slice(0, 80);
  return `${safe}-${(fnv1a(callId) >>> 0).toString(16).padStart(8, '0')}.pcap`;
}

/** Every spooled file of a Call-ID under `dir` (one per day it started on; usually one). */
export function spooledFiles(dir: string, callId: string): string[] {
  const name = spoolFileName(callId);
  let days: string[];
  try {
    days = readdirSync(dir);
  } catch {
    return [];
  }
  return days
    .sort()
    .map((day) => join(dir, day, name))
    .filter((path) => {
      try {
        return statSync(path).isFile();
      } catch {
        return false;
      }
    });
}

function fileHeader(linkType: number): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b23c4d, 0); // nanosecond timestamps
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(linkType, 20);
  return header;
}

export class RtpSpool {
  private readonly calls = new Map<string, ActiveCall>();
  private readonly files = new Map<string, SpoolFile>();
  private readonly maxBytes: number;
  private readonly maxCallBytes: number;
  private readonly maxAgeMs: number;
  private readonly maxBufferedBytes: number;
  private readonly logger: Logger;
  private total = 0;
  private buffered = 0;
  private nextSweepMs = 0;
  private closed = false;
  private readonly counters: RtpSpoolStats = {
    packets: 0,
    bytes: 0,
    files: 0,
    filesDeleted: 0,
    dropped: { 'disk-full': 0, 'call-full': 0, 'write-failed': 0, 'link-type': 0 },
  };

  constructor(private readonly options: RtpSpoolOptions) {
    this.maxBytes = options.maxBytes ?? 1 << 30;
    this.maxCallBytes = options.maxCallBytes ?? 50 << 20;
    this.maxAgeMs = options.maxAgeMs ?? 24 * 3_600_000;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 16 << 20;
    this.logger = options.logger ?? silentLogger;
    mkdirSync(options.dir, { recursive: true });
    // What an earlier run left counts against the disk cap, and ages like the rest.
    for (const day of readdirSync(options.dir)) {
      const path = join(options.dir, day);
      try {
        for (const f of readdirSync(path)) {
          const st = statSync(join(path, f));
          this.files.set(join(path, f), { size: st.size, lastWriteMs: st.mtimeMs });
          this.total += st.size;
        }
      } catch {
        // not a day directory
      }
    }
  }

  /** One datagram of a call, as captured (the record's bytes are copied). */
  add(record: PacketRecord, callId: string): void {
    const nowMs = Date.now();
    if (nowMs >= this.nextSweepMs) this.sweep(nowMs);
    let call = this.calls.get(callId);
    if (call === undefined) {
      const day = new Date(record.tsSec * 1000).toISOString().slice(0, 10);
      const path = join(this.options.dir, day, spoolFileName(callId));
      call = {
        path,
        linkType: record.linkType,
        pending: [],
        pendingBytes: 0,
        lastPacketMs: nowMs,
        evicted: false,
      };
      this.calls.set(callId, call);
      if (!this.files.has(path)) {
        mkdirSync(join(this.options.dir, day), { recursive: true });
        this.files.set(path, { size: 0, lastWriteMs: nowMs });
        this.queue(call, fileHeader(record.linkType), nowMs);
        this.counters.files++;
      }
    }
    const recordBytes = 16 + record.caplen;
    const file = this.files.get(call.path);
    const refused =
      call.evicted || file === undefined
        ? 'disk-full'
        : record.linkType !== call.linkType
          ? 'link-type'
          : file.size + recordBytes > this.maxCallBytes
            ? 'call-full'
            : this.total + recordBytes > this.maxBytes && !this.makeRoom(recordBytes, call.path)
              ? 'disk-full'
              : null;
    if (refused !== null) {
      this.drop(refused, callId);
      return;
    }
    const packet = Buffer.allocUnsafe(recordBytes);
    packet.writeUInt32LE(record.tsSec >>> 0, 0);
    packet.writeUInt32LE(record.tsNsec >>> 0, 4);
    packet.writeUInt32LE(record.caplen, 8);
    packet.writeUInt32LE(record.origLen, 12);
    record.data.copy(packet, 16, record.offset, record.offset + record.caplen);
    this.queue(call, packet, nowMs);
    call.lastPacketMs = nowMs;
    this.counters.packets++;
    this.counters.bytes += recordBytes;
    if (call.pendingBytes >= 64 << 10) this.write(callId, call);
    if (this.buffered > this.maxBufferedBytes) this.writeBiggest();
  }

  stats(): RtpSpoolStats {
    return { ...this.counters, dropped: { ...this.counters.dropped } };
  }

  /** Writes everything waiting. */
  flush(): void {
    for (const [id, call] of this.calls) this.write(id, call);
  }

  /** Writes what waits and logs the figures (once). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    const s = this.stats();
    this.logger.info('rtp spool closed', {
      dir: this.options.dir,
      packets: s.packets,
      files: s.files,
      filesDeleted: s.filesDeleted,
      ...Object.fromEntries(Object.entries(s.dropped).map(([k, v]) => [`dropped ${k}`, v])),
    });
  }

  private queue(call: ActiveCall, bytes: Buffer, nowMs: number): void {
    call.pending.push(bytes);
    call.pendingBytes += bytes.length;
    this.buffered += bytes.length;
    this.total += bytes.length;
    const file = this.files.get(call.path);
    if (file !== undefined) {
      file.size += bytes.length;
      // Written as far as the disk cap is concerned: the least recently written file goes first.
      file.lastWriteMs = nowMs;
    }
  }

  private drop(reason: RtpSpoolDrop, callId: string, count = 1): void {
    const before = this.counters.dropped[reason];
    const n = before + count;
    this.counters.dropped[reason] = n;
    // The first of each kind, then every 10,000th: a limit is never reached in silence.
    if (before === 0 || Math.floor(n / 10_000) > Math.floor(before / 10_000))
      this.logger.warn('rtp spool dropped packets', { reason, callId, dropped: n, dir: this.options.dir });
  }

  private write(callId: string, call: ActiveCall): void {
    if (call.pendingBytes === 0) return;
    const file = this.files.get(call.path);
    try {
      appendFileSync(call.path, Buffer.concat(call.pending, call.pendingBytes));
    } catch (error) {
      this.logger.warn('rtp spool write failed', { callId, file: call.path, error: String(error) });
      this.drop('write-failed', callId, call.pending.length);
      this.total -= call.pendingBytes;
      if (file !== undefined) file.size -= call.pendingBytes;
    }
    this.buffered -= call.pendingBytes;
    call.pending = [];
    call.pendingBytes = 0;
  }

  private writeBiggest(): void {
    let biggest: [string, ActiveCall] | null = null;
    for (const entry of this.calls)
      if (biggest === null || entry[1].pendingBytes > biggest[1].pendingBytes) biggest = entry;
    if (biggest !== null) this.write(biggest[0], biggest[1]);
    if (this.buffered > this.maxBufferedBytes) this.flush();
  }

  /** Deletes the least recently written files (not `keep`) until `bytes` more fit; false if they do not. */
  private makeRoom(bytes: number, keep: string): boolean {
    const oldest = [...this.files.entries()]
      .filter(([path]) => path !== keep)
      .sort((a, b) => a[1].lastWriteMs - b[1].lastWriteMs);
    for (const [path] of oldest) {
      if (this.total + bytes <= this.maxBytes) break;
      this.remove(path);
    }
    return this.total + bytes <= this.maxBytes;
  }

  private remove(path: string): void {
    const file = this.files.get(path);
    if (file === undefined) return;
    rmSync(path, { force: true });
    this.total -= file.size;
    this.files.delete(path);
    this.counters.filesDeleted++;
    for (const call of this.calls.values())
      if (call.path === path) {
        this.buffered -= call.pendingBytes;
        call.pending = [];
        call.pendingBytes = 0;
        call.evicted = true;
      }
  }

  /** Files past their age go; calls quiet for a minute are written out and forgotten. */
  private sweep(nowMs: number): void {
    this.nextSweepMs = nowMs + 10_000;
    for (const [id, call] of this.calls)
      if (nowMs - call.lastPacketMs > 60_000) {
        this.write(id, call);
        this.calls.delete(id);
      }
    for (const [path, file] of this.files) if (nowMs - file.lastWriteMs > this.maxAgeMs) this.remove(path);
  }
}
