import type { CaptureParser, ReadContext } from './reader.js';
import { CaptureFormatError, type PacketRecord } from './record.js';

// Module-local copies of pcap.ts's readers: under vitest's module transform an imported function is
// reached through a namespace object on every call, which halved the EPB loop's speed.
function u32le(b: Buffer, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
}

function u32be(b: Buffer, o: number): number {
  return b[o] * 0x1000000 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
}

function u32(b: Buffer, o: number, le: boolean): number {
  return le ? u32le(b, o) : u32be(b, o);
}

// Block types (https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/).
export const BT_SHB = 0x0a0d0d0a;
export const BT_IDB = 1;
export const BT_PB = 2; // obsolete Packet Block
export const BT_SPB = 3;
export const BT_NRB = 4;
export const BT_ISB = 5;
export const BT_EPB = 6;
const BT_SYSTEMD_JOURNAL = 9;
const BT_DSB = 10;
const BT_CUSTOM = 0x00000bad;
const BT_CUSTOM_NOCOPY = 0x40000bad;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

const OPT_ENDOFOPT = 0;
const OPT_IF_TSRESOL = 9;
const OPT_IF_TSOFFSET = 14;

/** Blocks whose body we parse are buffered whole; anything claiming more is corrupt. */
export const MAX_BLOCK_LEN = 16 << 20;
/** Other blocks above this size are skipped in the file without reading them into memory. */
const SKIP_BLOCK_MIN = 1 << 20;

/**
 * Per-interface timestamp conversion, precomputed from if_tsresol and if_tsoffset.
 *
 * For resolutions 10^-k with k <= 9 it stays in exact number math: the tick count hi*2^32 + lo is
 * split as (hi*2^32 = hiSec*D + hiRem) + lo, and hiSec/hiRem are recomputed only when hi changes
 * (every ~71 minutes at µs, ~4 s at ns), so a packet costs one division of a number below 2^33.
 * Other resolutions (2^-k, 10^-k with k > 9) are rare and use BigInt. Sub-nanosecond fractions are
 * truncated, as Wireshark does.
 */
export class Timing {
  /** 10^k when the number path applies, else 0. */
  private readonly div: number;
  private readonly nsPerTick: number;
  /** BigInt path: ticks per second for 10^-k, or 0n for 2^-k (then pow2 = k). */
  private readonly bigDiv: bigint;
  private readonly pow2: bigint;
  private lastHi = -1;
  private hiSec = 0;
  private hiRem = 0;

  /** tsresol: the if_tsresol byte (high bit set: 2^-n, else 10^-n); offsetSec: if_tsoffset. */
  constructor(
    tsresol = 6,
    readonly offsetSec = 0,
  ) {
    const exp = tsresol & 0x7f;
    const pow10 = (tsresol & 0x80) === 0;
    this.div = pow10 && exp <= 9 ? 10 ** exp : 0;
    this.nsPerTick = pow10 && exp <= 9 ? 10 ** (9 - exp) : 0;
    this.bigDiv = pow10 ? 10n ** BigInt(exp) : 0n;
    this.pow2 = pow10 ? 0n : BigInt(exp);
  }

  /** Sets rec.tsSec/tsNsec from a 64-bit tick count given as two 32-bit halves. */
  set(rec: PacketRecord, hi: number, lo: number): void {
    const d = this.div;
    if (d !== 0) {
      if (hi !== this.lastHi) this.splitHigh(hi);
      const x = this.hiRem + lo; // < 10^9 + 2^32: exact
      const q = Math.floor(x / d);
      rec.tsSec = this.hiSec + q + this.offsetSec;
      rec.tsNsec = (x - q * d) * this.nsPerTick;
      return;
    }
    const ticks = (BigInt(hi) << 32n) | BigInt(lo);
    if (this.bigDiv !== 0n) {
      rec.tsSec = Number(ticks / this.bigDiv) + this.offsetSec;
      rec.tsNsec = Number(((ticks % this.bigDiv) * 1_000_000_000n) / this.bigDiv);
    } else {
      rec.tsSec = Number(ticks >> this.pow2) + this.offsetSec;
      rec.tsNsec = Number(((ticks & ((1n << this.pow2) - 1n)) * 1_000_000_000n) >> this.pow2);
    }
  }

  /**
   * hi*2^32 = hiSec*D + hiRem by long division in base-2^16 digits: every partial dividend stays
   * below D*2^16 <= 10^9*2^16 < 2^53, and a quotient below 2^16 lies more than an ulp from the next
   * integer, so Math.floor is exact at each step.
   */
  private splitHigh(hi: number): void {
    const d = this.div;
    const q1 = Math.floor(hi / d);
    let r = hi - q1 * d;
    let cur = r * 65536;
    const q2 = Math.floor(cur / d);
    r = cur - q2 * d;
    cur = r * 65536;
    const q3 = Math.floor(cur / d);
    this.hiRem = cur - q3 * d;
    this.hiSec = q1 * 4294967296 + q2 * 65536 + q3;
    this.lastHi = hi;
  }
}

class Iface {
  constructor(
    readonly linkType: number,
    readonly snaplen: number,
    readonly timing: Timing,
  ) {}
}

function blockName(type: number): string {
  switch (type) {
    case BT_SHB:
      return 'section header block';
    case BT_IDB:
      return 'interface description block';
    case BT_PB:
      return 'packet block';
    case BT_SPB:
      return 'simple packet block';
    case BT_EPB:
      return 'enhanced packet block';
    default:
      return `block of type 0x${type.toString(16)}`;
  }
}

/** Types a resynchronising scan accepts as the start of a real block. */
function isKnownType(type: number): boolean {
  return (
    (type >= BT_IDB && type <= BT_EPB) ||
    type === BT_SYSTEMD_JOURNAL ||
    type === BT_DSB ||
    type === BT_CUSTOM ||
    type === BT_CUSTOM_NOCOPY
  );
}

/** Blocks whose contents the parser reads (all others are only framed and skipped). */
function needsBody(type: number): boolean {
  return type === BT_SHB || type === BT_IDB || type === BT_EPB || type === BT_SPB || type === BT_PB;
}

/** Smallest valid total length per block type. */
function minLength(type: number): number {
  switch (type) {
    case BT_SHB:
      return 28;
    case BT_IDB:
      return 20;
    case BT_EPB:
    case BT_PB:
      return 32;
    case BT_SPB:
      return 16;
    default:
      return 12;
  }
}

/**
 * pcapng: a sequence of sections, each an SHB (which fixes the byte order) followed by interface
 * descriptions and packet blocks, every block framed by its total length at both ends.
 */
export class PcapngParser implements CaptureParser {
  readonly format = 'pcapng' as const;
  need = 12;
  private le = true;
  private ifaces: Iface[] = [];
  private sawSection = false;
  /** File offset of the corrupt block being resynchronised from, or -1 while in sync. */
  private resyncFrom = -1;
  /** A skipped large block's length, whose trailing copy comes next; -1 when none. */
  private pendingTrailer = -1;
  private pendingStart = 0;
  private pendingType = 0;

  constructor(private readonly ctx: ReadContext) {}

  parse(b: Buffer, start: number, end: number, base: number, eof: boolean): number {
    let o = start;
    const ctx = this.ctx;
    if (this.pendingTrailer >= 0) {
      if (end - o < 4) {
        if (!eof) {
          this.need = 4;
          return o;
        }
        this.cutOff(this.pendingStart, this.pendingType, this.pendingTrailer, base + end - this.pendingStart);
        this.pendingTrailer = -1;
        return end;
      }
      if (u32(b, o, this.le) !== this.pendingTrailer) {
        ctx.malformedRecords++;
        ctx.warn(this.pendingStart, `${blockName(this.pendingType)}: trailing length does not match`);
        this.resyncFrom = this.pendingStart;
      }
      this.pendingTrailer = -1;
      o += 4;
    }

    const rec = ctx.record;
    const onPacket = ctx.onPacket;
    let le = this.le;
    let ifaces = this.ifaces;
    for (;;) {
      if (this.resyncFrom >= 0) {
        o = this.resync(b, o, end, base, eof);
        if (this.resyncFrom >= 0) return o;
        le = this.le;
        ifaces = this.ifaces;
      }
      const avail = end - o;
      if (avail < 12) {
        this.need = 12;
        break;
      }
      const type = le ? u32le(b, o) : u32be(b, o);
      let len: number;
      if (type === BT_SHB) {
        // The SHB's own byte-order magic decides how to read its length and everything after it.
        const bom = u32le(b, o + 8);
        if (bom !== BYTE_ORDER_MAGIC && bom !== 0x4d3c2b1a) {
          if (!this.sawSection) {
            throw new CaptureFormatError(
              ctx.file,
              base + o,
              'pcapng section header has a bad byte-order magic',
            );
          }
          this.corrupt(base + o, 'section header block with a bad byte-order magic');
          continue;
        }
        const shbLe = bom === BYTE_ORDER_MAGIC;
        len = u32(b, o + 4, shbLe);
        if (len < 28 || (len & 3) !== 0 || len > MAX_BLOCK_LEN) {
          if (!this.sawSection) {
            throw new CaptureFormatError(ctx.file, base + o, `pcapng section header has a bad length ${len}`);
          }
          this.corrupt(base + o, `section header block with a bad length ${len}`);
          continue;
        }
        if (avail < len) {
          this.need = len;
          break;
        }
        if (u32(b, o + len - 4, shbLe) !== len) {
          if (!this.sawSection) {
            throw new CaptureFormatError(
              ctx.file,
              base + o,
              'pcapng section header: trailing length does not match',
            );
          }
          this.corrupt(base + o, 'section header block: trailing length does not match');
          continue;
        }
        const major = shbLe ? b.readUInt16LE(o + 12) : b.readUInt16BE(o + 12);
        if (major !== 1) ctx.warn(base + o, `unexpected pcapng version ${major}`);
        this.le = le = shbLe;
        this.ifaces = ifaces = [];
        this.sawSection = true;
        o += len;
        continue;
      }
      if (!this.sawSection)
        throw new CaptureFormatError(ctx.file, base + o, 'pcapng file does not start with a section header');
      len = le ? u32le(b, o + 4) : u32be(b, o + 4);
      if (len < minLength(type) || (len & 3) !== 0 || len > MAX_BLOCK_LEN) {
        this.corrupt(base + o, `${blockName(type)} with a bad length ${len}`);
        continue;
      }
      if (avail < len) {
        if (len > SKIP_BLOCK_MIN && !needsBody(type)) {
          this.pendingTrailer = len;
          this.pendingStart = base + o;
          this.pendingType = type;
          this.need = 4;
          return o + len - 4;
        }
        this.need = len;
        break;
      }
      if ((le ? u32le(b, o + len - 4) : u32be(b, o + len - 4)) !== len) {
        this.corrupt(base + o, `${blockName(type)}: trailing length does not match`);
        continue;
      }

      if (type === BT_EPB) {
        const id = u32(b, o + 8, le);
        const caplen = u32(b, o + 20, le);
        if (id >= ifaces.length) {
          this.badContent(base + o, `enhanced packet block for undeclared interface ${id}`);
        } else if (caplen > len - 32) {
          this.badContent(base + o, `enhanced packet block: caplen ${caplen} exceeds the block`);
        } else {
          // Valid: the fast loop delivers it and any well-formed EPBs that follow.
          o = this.epbRun(b, o, end, base);
          continue;
        }
      } else if (type === BT_SPB) {
        if (ifaces.length === 0) {
          this.badContent(base + o, 'simple packet block without an interface');
        } else {
          const ifc = ifaces[0];
          const origLen = u32(b, o + 8, le);
          let caplen = Math.min(origLen, len - 16);
          if (ifc.snaplen !== 0 && caplen > ifc.snaplen) caplen = ifc.snaplen;
          rec.data = b;
          rec.offset = o + 12;
          rec.caplen = caplen;
          rec.origLen = origLen;
          rec.tsSec = 0;
          rec.tsNsec = 0;
          rec.linkType = ifc.linkType;
          rec.interfaceId = 0;
          rec.number = ++ctx.packets;
          rec.fileOffset = base + o;
          onPacket(rec);
        }
      } else if (type === BT_IDB) {
        ifaces.push(this.readInterface(b, o, len, base, le));
      } else if (type === BT_PB) {
        const id = le ? b.readUInt16LE(o + 8) : b.readUInt16BE(o + 8);
        const caplen = u32(b, o + 20, le);
        if (id >= ifaces.length) {
          this.badContent(base + o, `packet block for undeclared interface ${id}`);
        } else if (caplen > len - 32) {
          this.badContent(base + o, `packet block: caplen ${caplen} exceeds the block`);
        } else {
          const ifc = ifaces[id];
          rec.data = b;
          rec.offset = o + 28;
          rec.caplen = caplen;
          rec.origLen = u32(b, o + 24, le);
          ifc.timing.set(rec, u32(b, o + 12, le), u32(b, o + 16, le));
          rec.linkType = ifc.linkType;
          rec.interfaceId = id;
          rec.number = ++ctx.packets;
          rec.fileOffset = base + o;
          onPacket(rec);
        }
      }
      // Any other block (statistics, name resolution, secrets, custom, unknown) is framed only.
      o += len;
    }
    if (eof && o < end) {
      const present = end - o;
      if (!this.sawSection) {
        throw new CaptureFormatError(
          ctx.file,
          0,
          `file too short for a pcapng section header (${present} bytes)`,
        );
      }
      if (present >= 8) {
        this.cutOff(base + o, u32(b, o, le), u32(b, o + 4, le), present);
      } else {
        ctx.truncatedRecords++;
        ctx.warn(base + o, `block header cut off by end of file (${present} bytes present)`);
      }
      o = end;
    }
    return o;
  }

  /**
   * The hot loop, kept small so the JIT optimises it early: delivers consecutive complete,
   * well-formed EPBs from o (the same checks as the general path) and returns where it stopped.
   */
  private epbRun(b: Buffer, o: number, end: number, base: number): number {
    const ctx = this.ctx;
    const rec = ctx.record;
    const onPacket = ctx.onPacket;
    const le = this.le;
    const ifaces = this.ifaces;
    const nIfaces = ifaces.length;
    while (end - o >= 32) {
      if ((le ? u32le(b, o) : u32be(b, o)) !== BT_EPB) break;
      const len = le ? u32le(b, o + 4) : u32be(b, o + 4);
      if (len < 32 || (len & 3) !== 0 || len > end - o || len > MAX_BLOCK_LEN) break;
      if ((le ? u32le(b, o + len - 4) : u32be(b, o + len - 4)) !== len) break;
      const id = le ? u32le(b, o + 8) : u32be(b, o + 8);
      const caplen = le ? u32le(b, o + 20) : u32be(b, o + 20);
      if (id >= nIfaces || caplen > len - 32) break;
      const ifc = ifaces[id];
      rec.data = b;
      rec.offset = o + 28;
      rec.caplen = caplen;
      rec.origLen = le ? u32le(b, o + 24) : u32be(b, o + 24);
      ifc.timing.set(rec, le ? u32le(b, o + 12) : u32be(b, o + 12), le ? u32le(b, o + 16) : u32be(b, o + 16));
      rec.linkType = ifc.linkType;
      rec.interfaceId = id;
      rec.number = ++ctx.packets;
      rec.fileOffset = base + o;
      onPacket(rec);
      o += len;
    }
    return o;
  }

  private cutOff(at: number, type: number, len: number, present: number): void {
    this.ctx.truncatedRecords++;
    this.ctx.warn(at, `${blockName(type)} of ${len} bytes cut off by end of file (${present} bytes present)`);
  }

  /** A block whose framing is bad: its extent is unknown, so the next block must be searched for. */
  private corrupt(at: number, message: string): void {
    this.ctx.malformedRecords++;
    this.ctx.warn(at, message);
    this.resyncFrom = at;
  }

  /** A well-framed block with unusable contents: skipped, reading goes on with the next block. */
  private badContent(at: number, message: string): void {
    this.ctx.malformedRecords++;
    this.ctx.warn(at, message);
  }

  private readInterface(b: Buffer, o: number, len: number, base: number, le: boolean): Iface {
    const linkType = le ? b.readUInt16LE(o + 8) : b.readUInt16BE(o + 8);
    const snaplen = u32(b, o + 12, le);
    let tsresol = 6;
    let offsetSec = 0;
    const optEnd = o + len - 4;
    let p = o + 16;
    while (p + 4 <= optEnd) {
      const code = le ? b.readUInt16LE(p) : b.readUInt16BE(p);
      const optLen = le ? b.readUInt16LE(p + 2) : b.readUInt16BE(p + 2);
      if (code === OPT_ENDOFOPT) break;
      if (p + 4 + optLen > optEnd) {
        this.ctx.warn(base + p, 'interface description option runs past its block; rest ignored');
        break;
      }
      if (code === OPT_IF_TSRESOL && optLen >= 1) tsresol = b[p + 4];
      else if (code === OPT_IF_TSOFFSET && optLen === 8) {
        offsetSec = Number(le ? b.readBigInt64LE(p + 4) : b.readBigInt64BE(p + 4));
      }
      p += 4 + ((optLen + 3) & ~3);
    }
    return new Iface(linkType, snaplen, new Timing(tsresol, offsetSec));
  }

  /**
   * Scans 4-byte steps (blocks are 32-bit aligned) for a known block type whose length is valid and
   * whose trailing copy matches. Decides only with the whole candidate buffered (or at EOF), so the
   * outcome does not depend on chunking.
   */
  private resync(b: Buffer, o: number, end: number, base: number, eof: boolean): number {
    const ctx = this.ctx;
    let c = o;
    if (base + c === this.resyncFrom) c += 4;
    for (; ; c += 4) {
      if (end - c < 12) {
        if (!eof) {
          this.need = 12;
          return c;
        }
        ctx.warn(
          this.resyncFrom,
          `no valid pcapng block after the corrupt one; ${base + end - this.resyncFrom} bytes ignored`,
        );
        this.resyncFrom = -1;
        return end;
      }
      const type = u32(b, c, this.le);
      let le = this.le;
      if (type === BT_SHB) {
        const bom = u32le(b, c + 8);
        if (bom !== BYTE_ORDER_MAGIC && bom !== 0x4d3c2b1a) continue;
        le = bom === BYTE_ORDER_MAGIC;
      } else if (!isKnownType(type)) {
        continue;
      }
      const len = u32(b, c + 4, le);
      if (len < minLength(type) || (len & 3) !== 0 || len > MAX_BLOCK_LEN) continue;
      if (end - c < len) {
        if (eof) continue;
        this.need = len;
        return c;
      }
      if (u32(b, c + len - 4, le) !== len) continue;
      ctx.warn(base + c, `resynchronised after skipping ${base + c - this.resyncFrom} bytes`);
      this.resyncFrom = -1;
      return c;
    }
  }
}
