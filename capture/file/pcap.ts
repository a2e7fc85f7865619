import type { CaptureParser, ReadContext } from './reader.js';
import { CaptureFormatError } from './record.js';

/** Largest caplen accepted (libpcap's and Wireshark's standard maximum); more means a corrupt header. */
export const MAX_CAPLEN = 262144;
export const PCAP_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;
/** While resynchronising, a candidate record must lie this close in time to the last good packet. */
const RESYNC_MAX_TIME_GAP_SEC = 86400;

// Hand-rolled reads: faster than Buffer#readUInt32LE/BE in the per-packet loop and unsigned.
function u32le(b: Buffer, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}

function u32be(b: Buffer, o: number): number {
  return b[o] * 0x1000000 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
}

function u32(b: Buffer, o: number, le: boolean): number {
  return le ? u32le(b, o) : u32be(b, o);
}

/**
 * Classic pcap (https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/): 24-byte file header, then
 * records of a 16-byte header (seconds, µs or ns fraction, caplen, origLen) and caplen bytes.
 */
export class PcapParser implements CaptureParser {
  readonly format = 'pcap' as const;
  need = PCAP_HEADER_LEN;
  private headerDone = false;
  private readonly le: boolean;
  /** Fraction units per second (1e6 or 1e9) and the factor to nanoseconds. */
  private readonly fracPerSec: number;
  private readonly nsPerFrac: number;
  private linkType = 0;
  private maxCaplen = MAX_CAPLEN;
  /** File offset of the corrupt header being resynchronised from, or -1 while in sync. */
  private resyncFrom = -1;
  /** Once resynchronisation has failed at EOF, the rest of the file is ignored. */
  private stopped = false;

  constructor(
    private readonly ctx: ReadContext,
    magic: number,
  ) {
    // magic was read little-endian: the native values mean a little-endian file.
    this.le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
    const nano = magic === 0xa1b23c4d || magic === 0x4d3cb2a1;
    this.fracPerSec = nano ? 1e9 : 1e6;
    this.nsPerFrac = nano ? 1 : 1000;
  }

  private readHeader(b: Buffer, o: number): void {
    const le = this.le;
    const major = le ? b.readUInt16LE(o + 4) : b.readUInt16BE(o + 4);
    const minor = le ? b.readUInt16LE(o + 6) : b.readUInt16BE(o + 6);
    if (major !== 2) this.ctx.warn(4, `unexpected pcap version ${major}.${minor}`);
    // The header's snaplen is advisory: writers get it wrong (0, or smaller than what they then
    // write), so, like Wireshark, only the absolute limit marks a record header as corrupt.
    this.maxCaplen = MAX_CAPLEN;
    // The upper bits may carry the FCS length and flags; the link type is the low 16 bits.
    this.linkType = u32(b, o + 20, le) & 0xffff;
  }

  parse(b: Buffer, start: number, end: number, base: number, eof: boolean): number {
    let o = start;
    if (this.stopped) return end;
    if (!this.headerDone) {
      if (end - o < PCAP_HEADER_LEN) {
        if (eof) {
          throw new CaptureFormatError(
            this.ctx.file,
            0,
            `file too short for a pcap header (${end - o} bytes)`,
          );
        }
        this.need = PCAP_HEADER_LEN;
        return o;
      }
      this.readHeader(b, o);
      this.headerDone = true;
      o += PCAP_HEADER_LEN;
    }

    const ctx = this.ctx;
    for (;;) {
      if (this.resyncFrom >= 0) {
        o = this.resync(b, o, end, base, eof);
        if (this.resyncFrom >= 0 || this.stopped) return o;
      }
      o = this.run(b, o, end, base);
      // run() stopped: incomplete record, or a corrupt header.
      const avail = end - o;
      if (avail < PCAP_RECORD_HEADER_LEN) {
        this.need = PCAP_RECORD_HEADER_LEN;
        break;
      }
      const caplen = u32(b, o + 8, this.le);
      if (caplen > this.maxCaplen) {
        ctx.malformedRecords++;
        ctx.warn(base + o, `corrupt pcap record header (caplen ${caplen} > limit ${this.maxCaplen})`);
        this.resyncFrom = base + o;
        o++;
        continue;
      }
      this.need = PCAP_RECORD_HEADER_LEN + caplen;
      break;
    }
    if (eof && o < end) {
      ctx.truncatedRecords++;
      const expected = end - o < PCAP_RECORD_HEADER_LEN ? 'a record header' : `${this.need} bytes of record`;
      ctx.warn(base + o, `record cut off by end of file (${end - o} bytes present, ${expected} expected)`);
      o = end;
    }
    return o;
  }

  /**
   * The hot loop, kept small so the JIT optimises it early: delivers complete, well-formed records
   * from o and returns where it stopped.
   */
  private run(b: Buffer, o: number, end: number, base: number): number {
    const ctx = this.ctx;
    const rec = ctx.record;
    const onPacket = ctx.onPacket;
    const le = this.le;
    const maxCaplen = this.maxCaplen;
    const fracPerSec = this.fracPerSec;
    const nsPerFrac = this.nsPerFrac;
    const linkType = this.linkType;
    while (end - o >= PCAP_RECORD_HEADER_LEN) {
      const caplen = le ? u32le(b, o + 8) : u32be(b, o + 8);
      if (caplen > maxCaplen || end - o < PCAP_RECORD_HEADER_LEN + caplen) break;
      let sec = le ? u32le(b, o) : u32be(b, o);
      let frac = le ? u32le(b, o + 4) : u32be(b, o + 4);
      if (frac >= fracPerSec) {
        // Non-normalised fraction: carry whole seconds rather than report an impossible time.
        sec += Math.floor(frac / fracPerSec);
        frac %= fracPerSec;
      }
      rec.data = b;
      rec.offset = o + PCAP_RECORD_HEADER_LEN;
      rec.caplen = caplen;
      rec.origLen = le ? u32le(b, o + 12) : u32be(b, o + 12);
      rec.tsSec = sec;
      rec.tsNsec = frac * nsPerFrac;
      rec.linkType = linkType;
      rec.interfaceId = 0;
      rec.number = ++ctx.packets;
      rec.fileOffset = base + o;
      onPacket(rec);
      o += PCAP_RECORD_HEADER_LEN + caplen;
    }
    return o;
  }

  /** A record header at c that a real writer could have produced (used only while resynchronising). */
  private plausible(b: Buffer, c: number, refSec: number): boolean {
    const le = this.le;
    const caplen = u32(b, c + 8, le);
    if (caplen > this.maxCaplen) return false;
    const origLen = u32(b, c + 12, le);
    // origLen 0 rules out zero-filled regions, a common shape of damage.
    if (origLen === 0 || origLen < caplen || origLen > 16 * MAX_CAPLEN) return false;
    return this.plausibleTime(b, c, refSec);
  }

  private plausibleTime(b: Buffer, c: number, refSec: number): boolean {
    if (u32(b, c + 4, this.le) >= this.fracPerSec) return false;
    return refSec < 0 || Math.abs(u32(b, c, this.le) - refSec) <= RESYNC_MAX_TIME_GAP_SEC;
  }

  /**
   * Scans byte by byte for a plausible record header (close in time to the last good packet) that is
   * followed by a header with a close timestamp (or ends exactly at EOF). Decides only with enough bytes, so the result does not depend on
   * chunking. Returns the position to continue from; resyncFrom stays set while more data is needed.
   */
  private resync(b: Buffer, o: number, end: number, base: number, eof: boolean): number {
    const ctx = this.ctx;
    const refSec = ctx.packets > 0 ? ctx.record.tsSec : -1;
    for (let c = o; ; c++) {
      if (end - c < PCAP_RECORD_HEADER_LEN) {
        if (!eof) {
          this.need = PCAP_RECORD_HEADER_LEN;
          return c;
        }
        ctx.warn(
          this.resyncFrom,
          `no valid pcap record after the corrupt header; ${base + end - this.resyncFrom} bytes ignored`,
        );
        this.resyncFrom = -1;
        this.stopped = true;
        return end;
      }
      if (!this.plausible(b, c, refSec)) continue;
      const caplen = u32(b, c + 8, this.le);
      const next = c + PCAP_RECORD_HEADER_LEN + caplen;
      if (!(eof && next === end)) {
        if (end - next < PCAP_RECORD_HEADER_LEN) {
          if (eof) continue;
          this.need = 2 * PCAP_RECORD_HEADER_LEN + caplen;
          return c;
        }
        // Only the time of the following header is checked: its length may be the next corruption.
        if (!this.plausibleTime(b, next, u32(b, c, this.le))) continue;
      }
      ctx.warn(base + c, `resynchronised after skipping ${base + c - this.resyncFrom} bytes`);
      this.resyncFrom = -1;
      return c;
    }
  }
}
