/**
 * TabSeparated rows, byte-exact. Values never reach SQL text: they travel as TSV data, escaped as
 * ClickHouse's TabSeparated reader expects (\\ \t \n \r \0 \b \f and ' as two-byte escapes, every
 * other byte raw).
 */

import type { RowWriter } from './row-writer.js';

/** Bytes that TabSeparated escapes, and the letter after the backslash. */
const ESCAPES = new Uint8Array(256);
ESCAPES[0x5c] = 0x5c; // \\
ESCAPES[0x09] = 0x74; // \t
ESCAPES[0x0a] = 0x6e; // \n
ESCAPES[0x0d] = 0x72; // \r
ESCAPES[0x00] = 0x30; // \0
ESCAPES[0x08] = 0x62; // \b
ESCAPES[0x0c] = 0x66; // \f
ESCAPES[0x27] = 0x27; // \'

/** DateTime64(9) holds 1900-01-01 .. 2262-04-11; capture times outside are clamped into it. */
const MAX_TIME_NS = 9_214_646_400_000_000_000n; // 2262-01-01
const NS_PER_SECOND = 1_000_000_000n;

/**
 * A growing buffer of TabSeparated rows. Field methods write a tab before every field but the first of
 * a row; `endRow` writes the newline. The caller owns the bytes `take()` returns.
 */
export class TsvBuffer implements RowWriter {
  private buf: Buffer;
  private pos = 0;
  private rowStart = true;
  /** Complete rows in the buffer. */
  rows = 0;
  private readonly seconds = new SecondText();

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.pos;
  }

  private ensure(extra: number): void {
    const needed = this.pos + extra;
    if (needed <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  private separator(): void {
    if (this.rowStart) {
      this.rowStart = false;
      return;
    }
    this.ensure(1);
    this.buf[this.pos++] = 0x09;
  }

  /** Escapes buf[start, pos) in place: most values have nothing to escape, so the scan is the cost. */
  private escapeWritten(start: number): void {
    let specials = 0;
    const end = this.pos;
    const scan = this.buf;
    for (let i = start; i < end; i++) if (ESCAPES[scan[i]!] !== 0) specials++;
    if (specials === 0) return;
    this.ensure(specials);
    const b = this.buf;
    // Expand from the end backwards so that nothing is overwritten before it is read.
    let w = end + specials - 1;
    for (let r = end - 1; r >= start; r--) {
      const c = b[r]!;
      const e = ESCAPES[c]!;
      if (e === 0) {
        b[w--] = c;
      } else {
        b[w--] = e;
        b[w--] = 0x5c;
      }
    }
    this.pos = end + specials;
  }

  /**
   * Escaped text without a field separator (inside arrays and maps, or a whole field). Characters are
   * written one by one (each at most two bytes once escaped): cheaper than a native write per field
   * for the short values rows are made of. Unicode text with non-ASCII characters takes the encoder.
   */
  private text(value: string, encoding: 'latin1' | 'utf8'): void {
    const n = value.length;
    this.ensure(2 * n);
    const b = this.buf;
    let w = this.pos;
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c > 0x7f && encoding === 'utf8') {
        this.utf8Text(value, i, w);
        return;
      }
      const e = ESCAPES[c & 0xff]!;
      if (e === 0) {
        b[w++] = c;
      } else {
        b[w++] = 0x5c;
        b[w++] = e;
      }
    }
    this.pos = w;
  }

  /** The rest of `value` from character `from`, UTF-8 encoded at byte `at`, then escaped. */
  private utf8Text(value: string, from: number, at: number): void {
    this.pos = at;
    const rest = value.slice(from);
    const max = Buffer.byteLength(rest, 'utf8');
    this.ensure(max);
    this.pos += this.buf.write(rest, at, max, 'utf8');
    this.escapeWritten(at);
  }

  /** Text known to need no escaping (numbers, times, our own punctuation). */
  private ascii(text: string): void {
    const n = text.length;
    this.ensure(n);
    const b = this.buf;
    let w = this.pos;
    for (let i = 0; i < n; i++) b[w++] = text.charCodeAt(i);
    this.pos = w;
  }

  /** A string whose characters are bytes (what the SIP parser produced). */
  latin1(value: string): this {
    this.separator();
    this.text(value, 'latin1');
    return this;
  }

  /** A string of Unicode text (configuration, file names, RTCP CNAME). */
  utf8(value: string): this {
    this.separator();
    this.text(value, 'utf8');
    return this;
  }

  bytes(value: Uint8Array): this {
    this.separator();
    this.ensure(value.length);
    const start = this.pos;
    this.buf.set(value, start);
    this.pos += value.length;
    this.escapeWritten(start);
    return this;
  }

  /** An unsigned integer, clamped to [0, max] (a hostile or corrupt figure must not fail a batch). */
  uint(value: number, max = Number.MAX_SAFE_INTEGER): this {
    this.separator();
    const n = Number.isFinite(value) ? Math.min(Math.max(Math.trunc(value), 0), max) : 0;
    this.ascii(String(n));
    return this;
  }

  /** UInt64 from a bigint (event ids). */
  bigUint(value: bigint): this {
    this.separator();
    this.ascii(BigInt.asUintN(64, value).toString());
    return this;
  }

  int(value: number): this {
    this.separator();
    const n = Number.isFinite(value)
      ? Math.min(Math.max(Math.trunc(value), Number.MIN_SAFE_INTEGER), Number.MAX_SAFE_INTEGER)
      : 0;
    this.ascii(String(n));
    return this;
  }

  /** Float64: JavaScript's shortest round-trip text, which ClickHouse reads back to the same double. */
  float(value: number): this {
    this.separator();
    this.ascii(floatText(value));
    return this;
  }

  bool(value: boolean): this {
    this.separator();
    this.ascii(value ? 'true' : 'false');
    return this;
  }

  null(): this {
    this.separator();
    this.ascii('\\N');
    return this;
  }

  nullableUint(value: number | null, max: number): this {
    return value === null || !Number.isFinite(value) || value < 0 || value > max
      ? this.null()
      : this.uint(value, max);
  }

  nullableFloat(value: number | null): this {
    return value === null ? this.null() : this.float(value);
  }

  /** DateTime64(9, 'UTC') from nanoseconds since the epoch, as `YYYY-MM-DD hh:mm:ss.nnnnnnnnn`. */
  time(ns: bigint): this {
    this.separator();
    this.ascii(this.seconds.of(ns));
    return this;
  }

  /** DateTime64(3, 'UTC') from milliseconds since the epoch. */
  timeMs(ms: number): this {
    return this.time(BigInt(Math.trunc(Number.isFinite(ms) ? ms : 0)) * 1_000_000n);
  }

  uintArray(values: readonly number[], max: number): this {
    this.separator();
    this.ascii(
      `[${values.map((v) => (Number.isFinite(v) ? Math.min(Math.max(Math.trunc(v), 0), max) : 0)).join(',')}]`,
    );
    return this;
  }

  /** Array(DateTime64(3, 'UTC')) from milliseconds since the epoch. */
  timeMsArray(values: readonly number[]): this {
    this.separator();
    this.ascii('[');
    values.forEach((ms, i) => {
      const ns = BigInt(Math.trunc(Number.isFinite(ms) ? ms : 0)) * 1_000_000n;
      this.ascii(`${i === 0 ? '' : ','}'${this.seconds.of(ns)}'`);
    });
    this.ascii(']');
    return this;
  }

  stringArray(values: readonly string[], encoding: 'latin1' | 'utf8'): this {
    this.separator();
    this.ascii('[');
    values.forEach((v, i) => {
      this.ascii(i === 0 ? "'" : ",'");
      this.text(v, encoding);
      this.ascii("'");
    });
    this.ascii(']');
    return this;
  }

  /** Map(String, Float64). */
  floatMap(entries: ReadonlyArray<[string, number]>): this {
    this.separator();
    this.ascii('{');
    entries.forEach(([k, v], i) => {
      this.ascii(i === 0 ? "'" : ",'");
      this.text(k, 'utf8');
      this.ascii(`':${floatText(v)}`);
    });
    this.ascii('}');
    return this;
  }

  /** Map(String, String). */
  stringMap(entries: ReadonlyArray<[string, string]>): this {
    this.separator();
    this.ascii('{');
    entries.forEach(([k, v], i) => {
      this.ascii(i === 0 ? "'" : ",'");
      this.text(k, 'utf8');
      this.ascii("':'");
      this.text(v, 'utf8');
      this.ascii("'");
    });
    this.ascii('}');
    return this;
  }

  endRow(): void {
    this.ensure(1);
    this.buf[this.pos++] = 0x0a;
    this.rowStart = true;
    this.rows++;
  }

  /** The rows written so far; the caller owns them, and the TsvBuffer starts empty on a new buffer. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(Math.min(this.buf.length, 64 * 1024));
    this.pos = 0;
    this.rows = 0;
    this.rowStart = true;
    return out;
  }
}

function floatText(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Number.POSITIVE_INFINITY) return 'inf';
  if (value === Number.NEGATIVE_INFINITY) return '-inf';
  return String(value);
}

/** `YYYY-MM-DD hh:mm:ss` of the last second a buffer formatted, and its start: consecutive events share it. */
class SecondText {
  private startNs = -NS_PER_SECOND;
  private text = '';

  /** `YYYY-MM-DD hh:mm:ss.nnnnnnnnn` (UTC) of a capture time, clamped to what DateTime64(9) holds. */
  of(ns: bigint): string {
    const clamped = ns < 0n ? 0n : ns > MAX_TIME_NS ? MAX_TIME_NS : ns;
    let fraction = clamped - this.startNs;
    if (fraction < 0n || fraction >= NS_PER_SECOND) {
      const seconds = clamped / NS_PER_SECOND;
      const iso = new Date(Number(seconds) * 1000).toISOString(); // 2026-01-01T00:00:00.000Z
      this.text = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
      this.startNs = seconds * NS_PER_SECOND;
      fraction = clamped - this.startNs;
    }
    return `${this.text}.${String(Number(fraction)).padStart(9, '0')}`;
  }
}
