/**
 * Rows of one table as a ClickHouse Native block: one byte stream per column, values in their binary
 * form. The engine copies Native columns almost as they are (no text to parse), which makes it the
 * cheapest format to insert (docs/PERFORMANCE.md, "Store and stream": 5–7 µs a row against 25 for
 * TabSeparated on the same rows).
 *
 * Rows are written field by field, in the table's column order, by the row functions of rows.ts
 * (the RowWriter interface). The column's type, not the method, decides the bytes: `uint()` on a
 * UInt16 column writes two bytes, `time()` on a DateTime64(3) column writes milliseconds. Values are
 * clamped exactly as the text encoding clamped them, so a hostile figure never fails a batch.
 *
 * LowCardinality columns are sent as their plain type: the engine converts on insert
 * (input_format_native_allow_types_conversion), and a dictionary per block would cost more than
 * it saves on one batch.
 *
 * Each row's end is marked in every stream, so a block can be cut into rows again (`slice`): the
 * writer halves a batch the store refuses until the refused rows are alone.
 */
import type { RowWriter } from './row-writer.js';

/** DateTime64(9) holds 1900-01-01 .. 2262-04-11; capture times outside are clamped into it. */
const MAX_TIME_NS = 9_214_646_400_000_000_000n; // 2262-01-01
const TWO_32 = 4_294_967_296;

/** A growing byte stream. */
class Stream {
  buf: Buffer;
  pos = 0;

  constructor(bytes: number) {
    this.buf = Buffer.allocUnsafe(bytes);
  }

  ensure(extra: number): void {
    const needed = this.pos + extra;
    if (needed <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.ensure(2);
    const b = this.buf;
    const p = this.pos;
    b[p] = v & 0xff;
    b[p + 1] = v >>> 8;
    this.pos = p + 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  /** A 64-bit integer from a safe JavaScript integer (negative: two's complement). */
  i64(v: number): void {
    this.ensure(8);
    const lo = v % TWO_32;
    const hi = Math.floor(v / TWO_32);
    this.buf.writeUInt32LE(lo < 0 ? lo + TWO_32 : lo, this.pos);
    this.buf.writeInt32LE(hi < 0 ? hi : hi | 0, this.pos + 4);
    this.pos += 8;
  }

  big64(v: bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, v), this.pos);
    this.pos += 8;
  }

  f32(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.pos);
    this.pos += 4;
  }

  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  varUint(n: number): void {
    this.ensure(10);
    const b = this.buf;
    let p = this.pos;
    while (n >= 0x80) {
      b[p++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    b[p++] = n;
    this.pos = p;
  }

  /** A String value: length, then the characters as bytes (latin1) or UTF-8. */
  text(value: string, encoding: 'latin1' | 'utf8'): void {
    const n = value.length;
    if (n < 0x80) {
      // One length byte, then the characters while they are ASCII (almost always): one pass.
      this.ensure(n + 1);
      const b = this.buf;
      const start = this.pos;
      let p = start + 1;
      for (let i = 0; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c > 0x7f && (encoding === 'utf8' || c > 0xff)) {
          this.slowText(value, encoding);
          return;
        }
        b[p++] = c;
      }
      b[start] = n;
      this.pos = p;
      return;
    }
    this.slowText(value, encoding);
  }

  private slowText(value: string, encoding: 'latin1' | 'utf8'): void {
    const bytes = encoding === 'latin1' ? value.length : Buffer.byteLength(value, 'utf8');
    this.varUint(bytes);
    this.ensure(bytes);
    this.pos += this.buf.write(value, this.pos, bytes, encoding);
  }

  bytes(value: Uint8Array): void {
    this.varUint(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }
}

enum Kind {
  U8,
  U16,
  U32,
  U64,
  I32,
  I64,
  F32,
  F64,
  Bool,
  DateTime,
  Time9,
  Time3,
  String,
  Array,
  Map,
}

const SCALARS: Record<string, Kind> = {
  UInt8: Kind.U8,
  UInt16: Kind.U16,
  UInt32: Kind.U32,
  UInt64: Kind.U64,
  Int32: Kind.I32,
  Int64: Kind.I64,
  Float32: Kind.F32,
  Float64: Kind.F64,
  Bool: Kind.Bool,
  DateTime: Kind.DateTime,
  String: Kind.String,
};

/** One column (or an array's elements, a map's keys or values) and its streams. */
class Column {
  /** The null map of a Nullable column (one byte a row), else null. */
  readonly nulls: Stream | null;
  /** Values; for Array and Map, the running element counts (UInt64 offsets). */
  readonly data: Stream;
  /** Array elements, or a map's keys. */
  readonly element: Column | null;
  /** A map's values. */
  readonly value: Column | null;
  /** Elements written so far (Array, Map). */
  elements = 0;

  constructor(
    readonly kind: Kind,
    readonly nullable: boolean,
    /** The type named in the block: the table's, LowCardinality taken off. */
    readonly type: string,
    element: Column | null = null,
    value: Column | null = null,
  ) {
    this.nulls = nullable ? new Stream(256) : null;
    this.data = new Stream(kind === Kind.String ? 4096 : 1024);
    this.element = element;
    this.value = value;
  }

  /** Every stream of the column, nested ones included, in a fixed order. */
  streams(): Stream[] {
    const own = this.nulls ? [this.nulls, this.data] : [this.data];
    return [...own, ...(this.element?.streams() ?? []), ...(this.value?.streams() ?? [])];
  }

  /** The default value (what a NULL holds in the nested column). */
  zero(): void {
    const d = this.data;
    switch (this.kind) {
      case Kind.U8:
      case Kind.Bool:
        d.u8(0);
        return;
      case Kind.U16:
        d.u16(0);
        return;
      case Kind.U32:
      case Kind.I32:
      case Kind.DateTime:
      case Kind.F32:
        d.u32(0);
        return;
      case Kind.String:
        d.u8(0);
        return;
      case Kind.Array:
      case Kind.Map:
        d.i64(this.elements);
        return;
      default:
        d.i64(0);
    }
  }

  /** A number into a numeric column, already clamped by the caller to what the field means. */
  number(n: number): void {
    const d = this.data;
    switch (this.kind) {
      case Kind.U8:
      case Kind.Bool:
        d.u8(n & 0xff);
        return;
      case Kind.U16:
        d.u16(n & 0xffff);
        return;
      case Kind.U32:
      case Kind.DateTime:
        d.u32(n);
        return;
      case Kind.I32:
        d.u32(n | 0);
        return;
      case Kind.U64:
      case Kind.I64:
        d.i64(n);
        return;
      case Kind.F32:
        d.f32(n);
        return;
      case Kind.F64:
        d.f64(n);
        return;
      default:
        throw new Error(`native block: a number into a ${this.type} column`);
    }
  }

  /** A capture time in ns into a time column. */
  time(ns: bigint): void {
    const clamped = ns < 0n ? 0n : ns > MAX_TIME_NS ? MAX_TIME_NS : ns;
    const d = this.data;
    if (this.kind === Kind.Time9) d.big64(clamped);
    else if (this.kind === Kind.Time3) d.i64(Number(clamped / 1_000_000n));
    else if (this.kind === Kind.DateTime) d.u32(Number(clamped / 1_000_000_000n));
    else throw new Error(`native block: a time into a ${this.type} column`);
  }

  /** A time in ms (cheaper than time() for millisecond columns, the usual case). */
  timeMs(ms: number): void {
    const t = Number.isFinite(ms) ? Math.trunc(ms) : 0;
    if (this.kind === Kind.Time3) {
      this.data.i64(Math.min(Math.max(t, 0), 9_214_646_400_000));
      return;
    }
    this.time(BigInt(t) * 1_000_000n);
  }
}

/** Parses a column type of the tables (ingest/schema/tables.ts) into a Column. */
function columnOf(type: string): Column {
  let t = type.trim();
  const low = /^LowCardinality\((.*)\)$/.exec(t);
  if (low) t = low[1]!.trim();
  const nullable = /^Nullable\((.*)\)$/.exec(t);
  if (nullable) {
    const inner = columnOf(nullable[1]!);
    if (inner.nullable || inner.kind === Kind.Array || inner.kind === Kind.Map)
      throw new Error(`native block: unsupported type ${type}`);
    return new Column(inner.kind, true, `Nullable(${inner.type})`);
  }
  const array = /^Array\((.*)\)$/.exec(t);
  if (array) {
    const element = columnOf(array[1]!);
    return new Column(Kind.Array, false, `Array(${element.type})`, element);
  }
  const map = /^Map\((.*)\)$/.exec(t);
  if (map) {
    const parts = splitTopLevel(map[1]!);
    if (parts.length !== 2) throw new Error(`native block: unsupported type ${type}`);
    const keys = columnOf(parts[0]!);
    const values = columnOf(parts[1]!);
    return new Column(Kind.Map, false, `Map(${keys.type}, ${values.type})`, keys, values);
  }
  const time = /^DateTime64\((\d+)\s*(?:,\s*'([^']*)')?\)$/.exec(t);
  if (time) {
    const scale = Number(time[1]);
    if (scale !== 9 && scale !== 3) throw new Error(`native block: unsupported type ${type}`);
    return new Column(scale === 9 ? Kind.Time9 : Kind.Time3, false, t);
  }
  const kind = SCALARS[t];
  if (kind === undefined) throw new Error(`native block: unsupported type ${type}`);
  return new Column(kind, false, t);
}

function splitTopLevel(list: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(list.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(list.slice(start));
  return parts;
}

function clampUint(value: number, max: number): number {
  return Number.isFinite(value) ? Math.min(Math.max(Math.trunc(value), 0), max) : 0;
}

function clampInt(value: number): number {
  return Number.isFinite(value)
    ? Math.min(Math.max(Math.trunc(value), Number.MIN_SAFE_INTEGER), Number.MAX_SAFE_INTEGER)
    : 0;
}

export interface NativeColumn {
  name: string;
  type: string;
}

export class NativeBlock implements RowWriter {
  private readonly columns: Column[];
  private readonly streams: Stream[];
  /** Stream positions at the end of each row: marks[row * streams + s]. */
  private marks: Int32Array;
  private col = 0;
  /** Complete rows in the block. */
  rows = 0;

  constructor(private readonly spec: readonly NativeColumn[]) {
    this.columns = spec.map((c) => columnOf(c.type));
    this.streams = this.columns.flatMap((c) => c.streams());
    this.marks = new Int32Array(this.streams.length * 64);
  }

  /** Bytes of the complete rows (what the writer's maxBytes counts), kept by endRow. */
  length = 0;

  private next(): Column {
    const c = this.columns[this.col++];
    if (c === undefined) throw new Error('native block: more fields than columns in a row');
    if (c.nulls !== null) c.nulls.u8(0);
    return c;
  }

  latin1(value: string): this {
    this.next().data.text(value, 'latin1');
    return this;
  }

  utf8(value: string): this {
    this.next().data.text(value, 'utf8');
    return this;
  }

  bytes(value: Uint8Array): this {
    this.next().data.bytes(value);
    return this;
  }

  uint(value: number, max = Number.MAX_SAFE_INTEGER): this {
    this.next().number(clampUint(value, max));
    return this;
  }

  bigUint(value: bigint): this {
    const c = this.next();
    if (c.kind !== Kind.U64) throw new Error(`native block: a bigint into a ${c.type} column`);
    c.data.big64(value);
    return this;
  }

  int(value: number): this {
    this.next().number(clampInt(value));
    return this;
  }

  float(value: number): this {
    this.next().number(value);
    return this;
  }

  bool(value: boolean): this {
    this.next().number(value ? 1 : 0);
    return this;
  }

  null(): this {
    const c = this.columns[this.col++];
    if (c?.nulls == null) throw new Error(`native block: NULL into the non-nullable ${c?.type} column`);
    c.nulls.u8(1);
    c.zero();
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

  time(ns: bigint): this {
    this.next().time(ns);
    return this;
  }

  timeMs(ms: number): this {
    this.next().timeMs(ms);
    return this;
  }

  uintArray(values: readonly number[], max: number): this {
    const c = this.array(values.length);
    for (const v of values) c.number(clampUint(v, max));
    return this;
  }

  timeMsArray(values: readonly number[]): this {
    const c = this.array(values.length);
    for (const ms of values) c.timeMs(ms);
    return this;
  }

  stringArray(values: readonly string[], encoding: 'latin1' | 'utf8'): this {
    const c = this.array(values.length);
    for (const v of values) c.data.text(v, encoding);
    return this;
  }

  floatMap(entries: ReadonlyArray<[string, number]>): this {
    const [keys, values] = this.map(entries.length);
    for (const [k, v] of entries) {
      keys.data.text(k, 'utf8');
      values.number(v);
    }
    return this;
  }

  stringMap(entries: ReadonlyArray<[string, string]>): this {
    const [keys, values] = this.map(entries.length);
    for (const [k, v] of entries) {
      keys.data.text(k, 'utf8');
      values.data.text(v, 'utf8');
    }
    return this;
  }

  private array(length: number): Column {
    const c = this.next();
    if (c.kind !== Kind.Array || c.element === null)
      throw new Error(`native block: an array into a ${c.type} column`);
    c.elements += length;
    c.data.i64(c.elements);
    return c.element;
  }

  private map(length: number): [Column, Column] {
    const c = this.next();
    if (c.kind !== Kind.Map || c.element === null || c.value === null)
      throw new Error(`native block: a map into a ${c.type} column`);
    c.elements += length;
    c.data.i64(c.elements);
    return [c.element, c.value];
  }

  endRow(): void {
    if (this.col !== this.columns.length)
      throw new Error(`native block: a row of ${this.col} fields for ${this.columns.length} columns`);
    this.col = 0;
    const n = this.streams.length;
    const at = this.rows * n;
    if (at + n > this.marks.length) {
      const grown = new Int32Array(this.marks.length * 2);
      grown.set(this.marks);
      this.marks = grown;
    }
    let bytes = 0;
    for (let s = 0; s < n; s++) {
      const pos = this.streams[s]!.pos;
      this.marks[at + s] = pos;
      bytes += pos;
    }
    this.length = bytes;
    this.rows++;
  }

  /** The whole block (every row), a copy; the NativeBlock starts empty again. */
  take(): Buffer {
    const out = this.slice(0, this.rows);
    this.reset();
    return out;
  }

  /** Empties the block, keeping its grown buffers for the next rows. */
  reset(): void {
    for (const s of this.streams) s.pos = 0;
    for (const c of this.columns) resetElements(c);
    this.rows = 0;
    this.length = 0;
    this.col = 0;
  }

  /** Rows [from, to) as a block of their own, a copy; the block keeps its rows. */
  slice(from: number, to: number): Buffer {
    return Buffer.concat(this.sliceParts(from, to));
  }

  /**
   * Rows [from, to) as a block of their own, in parts that together are the block: views of this
   * block's buffers (no copy), valid until it is written to or reset.
   */
  sliceParts(from: number, to: number): Buffer[] {
    if (this.col !== 0) throw new Error('native block: a row is half written');
    const parts: Buffer[] = [];
    const header = new Stream(16);
    header.varUint(this.columns.length);
    header.varUint(to - from);
    parts.push(header.buf.subarray(0, header.pos));
    let s = 0;
    this.columns.forEach((c, i) => {
      const head = new Stream(64);
      head.text(this.spec[i]!.name, 'utf8');
      head.text(c.type, 'utf8');
      parts.push(head.buf.subarray(0, head.pos));
      s = this.sliceColumn(c, s, from, to, parts);
    });
    return parts;
  }

  /** Appends a column's bytes for rows [from, to); `s` is its first stream's index. */
  private sliceColumn(c: Column, s: number, from: number, to: number, parts: Buffer[]): number {
    if (c.nulls !== null) {
      parts.push(c.nulls.buf.subarray(from, to));
      s++;
    }
    const start = this.mark(s, from);
    const end = this.mark(s, to);
    if (c.kind === Kind.Array || c.kind === Kind.Map) {
      parts.push(rebased(c.data.buf.subarray(start, end), from === 0 ? 0 : readI64(c.data.buf, start - 8)));
    } else {
      parts.push(c.data.buf.subarray(start, end));
    }
    s++;
    // Elements, keys and values are cut at the marks of the rows they belong to.
    for (const nested of [c.element, c.value]) {
      if (nested === null) continue;
      s = this.sliceNested(nested, s, from, to, parts);
    }
    return s;
  }

  private sliceNested(c: Column, s: number, from: number, to: number, parts: Buffer[]): number {
    if (c.nulls !== null || c.kind === Kind.Array || c.kind === Kind.Map)
      throw new Error('native block: nested type not supported');
    parts.push(c.data.buf.subarray(this.mark(s, from), this.mark(s, to)));
    return s + 1;
  }

  /** Position in stream `s` where row `row` starts. */
  private mark(s: number, row: number): number {
    return row === 0 ? 0 : this.marks[(row - 1) * this.streams.length + s]!;
  }
}

function resetElements(c: Column): void {
  c.elements = 0;
  if (c.element) resetElements(c.element);
  if (c.value) resetElements(c.value);
}

function readI64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readInt32LE(at + 4) * TWO_32;
}

/** UInt64 offsets made to count from the slice's first row. */
function rebased(offsets: Buffer, base: number): Buffer {
  if (base === 0) return offsets;
  const out = new Stream(offsets.length);
  for (let at = 0; at < offsets.length; at += 8) out.i64(readI64(offsets, at) - base);
  return out.buf.subarray(0, out.pos);
}

/** Columns and rows a Native block holds (its header), for logs and tests. */
export function nativeBlockShape(data: Uint8Array): { columns: number; rows: number } {
  let at = 0;
  const varUint = (): number => {
    let n = 0;
    let scale = 1;
    for (;;) {
      const b = data[at++];
      if (b === undefined) throw new Error('native block: truncated header');
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 128;
    }
  };
  const columns = varUint();
  return { columns, rows: varUint() };
}
