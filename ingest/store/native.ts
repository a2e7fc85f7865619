/**
 * Native output re-framed for a client protocol revision, as a ClickHouse server's NativeWriter
 * writes it when the HTTP client sends `client_protocol_version` (clickhouse-go does: Grafana's
 * data source). chDB always writes revision-0 Native; a client at revision R > 0 expects:
 * - BlockInfo before each block (R > 0): field 1 is_overflows = 0, field 2 bucket_num = -1, end 0
 *   (the fields of revisions below the out-of-order-buckets one, which clickhouse-go reads);
 * - a `has_custom` byte after each column's type name (R >= 54454): 0, since chDB's revision-0
 *   output already has the default serialization (no sparse columns).
 * The column data is unchanged, but finding where it ends means walking it by type.
 */
import { ClickHouseException } from './errors.js';

export const MIN_REVISION_WITH_CUSTOM_SERIALIZATION = 54454;

const BLOCK_INFO = Buffer.from([0x01, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0x00]);
const NOT_CUSTOM = Buffer.from([0x00]);
// As clickhouse-go: a larger count in a reply is corruption, not data.
const MAX_ROWS = 1_000_000_000;

/** How a column's bytes are laid out, for walking them. */
export type Layout =
  | { kind: 'fixed'; width: number }
  | { kind: 'string' }
  | { kind: 'nullable'; inner: Layout }
  | { kind: 'array'; inner: Layout }
  | { kind: 'tuple'; elements: Layout[] }
  | { kind: 'lowCardinality'; dictionary: Layout };

const FIXED_WIDTHS: Record<string, number> = {
  UInt8: 1,
  Int8: 1,
  Bool: 1,
  Enum8: 1,
  // Nothing (the type of NULL) is written as one '0' byte per row.
  Nothing: 1,
  UInt16: 2,
  Int16: 2,
  Date: 2,
  Enum16: 2,
  BFloat16: 2,
  UInt32: 4,
  Int32: 4,
  Float32: 4,
  Date32: 4,
  DateTime: 4,
  IPv4: 4,
  Decimal32: 4,
  Time: 4,
  UInt64: 8,
  Int64: 8,
  Float64: 8,
  DateTime64: 8,
  Decimal64: 8,
  Time64: 8,
  UInt128: 16,
  Int128: 16,
  UUID: 16,
  IPv6: 16,
  Decimal128: 16,
  UInt256: 32,
  Int256: 32,
  Decimal256: 32,
};

// Geo types are names for tuples and arrays of Float64.
const ALIASES: Record<string, string> = {
  Point: 'Tuple(Float64, Float64)',
  Ring: 'Array(Point)',
  LineString: 'Array(Point)',
  Polygon: 'Array(Ring)',
  MultiLineString: 'Array(LineString)',
  MultiPolygon: 'Array(Polygon)',
};

function unsupported(type: string): ClickHouseException {
  return new ClickHouseException(
    'NOT_IMPLEMENTED',
    `The embedded store cannot send type ${type} in Native format to a client that sets client_protocol_version; cast the column (e.g. toString) or query without client_protocol_version`,
  );
}

function malformed(detail: string): ClickHouseException {
  return new ClickHouseException(
    'LOGICAL_ERROR',
    `Cannot re-frame the engine's Native output for client_protocol_version: ${detail}`,
  );
}

/** Splits `a, b(c, d), 'e,f'` at top-level commas, minding quotes and backquotes. */
function splitArgs(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = '';
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === "'" || c === '`' || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  return out;
}

/** A tuple element's type without its name: `a UInt8`, `` `a b` String `` → the type. */
function elementType(element: string): string {
  if (element.startsWith('`') || element.startsWith('"')) {
    const q = element[0];
    for (let i = 1; i < element.length; i++) {
      if (element[i] === '\\') i++;
      else if (element[i] === q) return element.slice(i + 1).trim();
    }
    return element;
  }
  // A top-level space before any parenthesis separates a name from its type.
  const match = /^([A-Za-z_][A-Za-z0-9_.]*)\s+(\S[\s\S]*)$/.exec(element);
  return match ? match[2] : element;
}

/** The layout of a ClickHouse type name; NOT_IMPLEMENTED for types whose bytes it cannot walk. */
export function layoutOf(type: string, depth = 0): Layout {
  if (depth > 64) throw unsupported(type);
  const trimmed = type.trim();
  const open = trimmed.indexOf('(');
  const name = open < 0 ? trimmed : trimmed.slice(0, open);
  if (open >= 0 && !trimmed.endsWith(')')) throw unsupported(type);
  const args = open < 0 ? [] : splitArgs(trimmed.slice(open + 1, -1));
  const width = FIXED_WIDTHS[name];
  if (width !== undefined) return { kind: 'fixed', width };
  if (name.startsWith('Interval') && open < 0) return { kind: 'fixed', width: 8 };
  const alias = ALIASES[name];
  if (alias !== undefined && open < 0) return layoutOf(alias, depth + 1);
  switch (name) {
    case 'String':
      return { kind: 'string' };
    case 'FixedString': {
      const n = Number(args[0]);
      if (!Number.isSafeInteger(n) || n <= 0) throw unsupported(type);
      return { kind: 'fixed', width: n };
    }
    case 'Decimal': {
      const precision = Number(args[0]);
      if (!Number.isInteger(precision) || precision < 1 || precision > 76) throw unsupported(type);
      return { kind: 'fixed', width: precision <= 9 ? 4 : precision <= 18 ? 8 : precision <= 38 ? 16 : 32 };
    }
    case 'Nullable':
      if (args.length !== 1) throw unsupported(type);
      return { kind: 'nullable', inner: layoutOf(args[0], depth + 1) };
    case 'Array':
      if (args.length !== 1) throw unsupported(type);
      return { kind: 'array', inner: layoutOf(args[0], depth + 1) };
    case 'Tuple':
      return {
        kind: 'tuple',
        elements: args.filter((a) => a !== '').map((a) => layoutOf(elementType(a), depth + 1)),
      };
    case 'Nested':
      return {
        kind: 'array',
        inner: { kind: 'tuple', elements: args.map((a) => layoutOf(elementType(a), depth + 1)) },
      };
    case 'Map':
      // Serialized as Array(Tuple(K, V)): offsets, then all keys, then all values.
      if (args.length !== 2) throw unsupported(type);
      return {
        kind: 'array',
        inner: { kind: 'tuple', elements: [layoutOf(args[0], depth + 1), layoutOf(args[1], depth + 1)] },
      };
    case 'SimpleAggregateFunction':
      if (args.length !== 2) throw unsupported(type);
      return layoutOf(args[1], depth + 1);
    case 'LowCardinality': {
      if (args.length !== 1) throw unsupported(type);
      // The dictionary holds the inner type without Nullable: NULL is dictionary key 0.
      const inner = layoutOf(args[0], depth + 1);
      const dictionary = inner.kind === 'nullable' ? inner.inner : inner;
      if (dictionary.kind !== 'fixed' && dictionary.kind !== 'string') throw unsupported(type);
      return { kind: 'lowCardinality', dictionary };
    }
    default:
      // Variant, Dynamic, JSON, Object, AggregateFunction states, QBit...: their serializations
      // have revision-dependent prefixes this walker does not model.
      throw unsupported(type);
  }
}

// LowCardinality (SerializationLowCardinality): the key version of SharedDictionariesWithAdditionalKeys,
// and the index-type flags Native output uses (no global dictionary, additional keys present).
const LC_KEY_VERSION = 1n;
const LC_INDEX_TYPE_MASK = 0xffn;
const LC_NEED_GLOBAL_DICTIONARY = 1n << 8n;
const LC_HAS_ADDITIONAL_KEYS = 1n << 9n;

/** A bounds-checked cursor over the engine's reply. */
class Cursor {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  skip(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.buf.length - this.pos) {
      throw malformed(`unexpected end of data at byte ${this.pos} (needs ${n} more)`);
    }
    this.pos += n;
  }

  uvarint(): number {
    let value = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (this.pos >= this.buf.length) throw malformed(`unexpected end of data at byte ${this.pos}`);
      const b = this.buf[this.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (!Number.isSafeInteger(value)) throw malformed(`a length at byte ${this.pos} is too large`);
        return value;
      }
    }
    throw malformed(`bad variable-length integer at byte ${this.pos}`);
  }

  u64(): bigint {
    if (this.buf.length - this.pos < 8) throw malformed(`unexpected end of data at byte ${this.pos}`);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  count(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`a count at byte ${this.pos - 8} is too large`);
    return Number(v);
  }

  str(): string {
    const n = this.uvarint();
    const start = this.pos;
    this.skip(n);
    return this.buf.toString('utf8', start, this.pos);
  }
}

/** The state prefix serializeBinaryBulkStatePrefix writes before a column's data: LowCardinality's key version. */
function walkPrefix(c: Cursor, layout: Layout): void {
  switch (layout.kind) {
    case 'nullable':
    case 'array':
      walkPrefix(c, layout.inner);
      return;
    case 'tuple':
      for (const e of layout.elements) walkPrefix(c, e);
      return;
    case 'lowCardinality': {
      const version = c.u64();
      if (version !== LC_KEY_VERSION) throw malformed(`LowCardinality key version ${version}`);
      return;
    }
    default:
      return;
  }
}

/** Moves past `rows` values of `layout`. Every loop reads at least one byte per turn, so it ends. */
function walkData(c: Cursor, layout: Layout, rows: number): void {
  if (rows === 0) return;
  switch (layout.kind) {
    case 'fixed':
      c.skip(layout.width * rows);
      return;
    case 'string':
      for (let i = 0; i < rows; i++) c.skip(c.uvarint());
      return;
    case 'nullable':
      c.skip(rows);
      walkData(c, layout.inner, rows);
      return;
    case 'array': {
      // Offsets are cumulative within the block: the last is the nested column's size.
      c.skip(8 * (rows - 1));
      walkData(c, layout.inner, c.count());
      return;
    }
    case 'tuple':
      for (const e of layout.elements) walkData(c, e, rows);
      return;
    case 'lowCardinality': {
      // One granule per block in practice (NativeWriter sets no dictionary size limit); more are
      // walked the way ClickHouse reads them, until the rows are used up.
      let left = rows;
      while (left > 0) {
        const flags = c.u64();
        const indexType = Number(flags & LC_INDEX_TYPE_MASK);
        if (indexType > 3 || flags & LC_NEED_GLOBAL_DICTIONARY || !(flags & LC_HAS_ADDITIONAL_KEYS)) {
          throw malformed(`LowCardinality index flags 0x${flags.toString(16)}`);
        }
        walkData(c, layout.dictionary, c.count());
        const indexes = c.count();
        if (indexes === 0 || indexes > left) throw malformed(`LowCardinality granule of ${indexes} rows`);
        c.skip(indexes * (1 << indexType));
        left -= indexes;
      }
      return;
    }
  }
}

/**
 * `body` (revision-0 Native, as chDB writes it) as a server writes it for `clientRevision` > 0.
 * Throws a ClickHouseException for a column type it cannot walk or bytes that do not parse.
 */
export function reframeNative(body: Buffer, clientRevision: number): Buffer {
  if (clientRevision <= 0) return body; // revision 0 is what chDB wrote
  const c = new Cursor(body);
  const custom = clientRevision >= MIN_REVISION_WITH_CUSTOM_SERIALIZATION;
  const layouts = new Map<string, Layout>();
  const pieces: Buffer[] = [];
  while (c.pos < body.length) {
    pieces.push(BLOCK_INFO);
    let start = c.pos;
    const columns = c.uvarint();
    const rows = c.uvarint();
    if (rows > MAX_ROWS) throw malformed(`block of ${rows} rows`);
    for (let i = 0; i < columns; i++) {
      c.skip(c.uvarint()); // name
      const type = c.str();
      if (custom) {
        pieces.push(body.subarray(start, c.pos), NOT_CUSTOM);
        start = c.pos;
      }
      // NativeWriter writes no data, not even the state prefix, for a block without rows: such a
      // block passes whatever its types.
      if (rows > 0) {
        let layout = layouts.get(type);
        if (layout === undefined) {
          layout = layoutOf(type);
          layouts.set(type, layout);
        }
        walkPrefix(c, layout);
        walkData(c, layout, rows);
      }
    }
    pieces.push(body.subarray(start, c.pos));
  }
  return Buffer.concat(pieces);
}
