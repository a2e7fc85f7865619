/**
 * Query parameters (`param_NAME=value`) arrive escaped the way ClickHouse's HTTP interface expects
 * them; chDB's `queryBindAsync` expects the JavaScript value and escapes it itself before the
 * engine binds it. This module turns the wire text into the value that makes chDB hand the engine
 * something the engine reads exactly as a ClickHouse server would read the original text. Values
 * are bound server-side by the engine; nothing here ever reaches the SQL text.
 *
 * The engine reads a parameter with the "Escaped" text format of its declared type:
 * - scalars (String, numbers, dates, ...): backslash escapes are decoded. chDB re-escapes a JS
 *   string, so we decode first: `it\'s` → `it's` → chDB `it's` → engine `it's`;
 * - composites (Array, Tuple, Map): the text is a literal such as `['a','b']`, read as is. chDB's
 *   escaping doubles every backslash, which would break `'it\'s'`, so strings inside the literal
 *   are re-quoted with backslash-free SQL quoting (`'it''s'`); chDB's escaping of the remaining
 *   raw bytes (backslash, tab, newline, NUL) is undone by the engine's quoted-string reader.
 */
import { ClickHouseException } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

// `{name:Type}`: types never contain braces, so the first `}` ends the placeholder.
const PLACEHOLDER = /\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}/g;
const WRAPPER = /^(?:Nullable|LowCardinality)\s*\(\s*([\s\S]*)\)$/i;
const COMPOSITE = /^(?:Array|Tuple|Map|Nested|Point|Ring|LineString|MultiLineString|Polygon|MultiPolygon)\b/i;

/** Declared types of the placeholders in a query, by name (the first declaration wins). */
export function placeholderTypes(sql: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const match of sql.matchAll(PLACEHOLDER)) {
    if (!types.has(match[1])) types.set(match[1], match[2]);
  }
  return types;
}

function isComposite(type: string): boolean {
  let t = type.trim();
  for (let m = WRAPPER.exec(t); m; m = WRAPPER.exec(t)) t = m[1].trim();
  return COMPOSITE.test(t);
}

/**
 * The value to pass to chDB for one parameter. `type` is the placeholder's declared type (unknown
 * when the query does not use the parameter). Throws BAD_QUERY_PARAMETER when the value cannot be
 * carried faithfully: chDB takes parameters as JavaScript strings, so bytes that are not UTF-8
 * (raw, or written as `\xFF`) cannot be bound.
 */
export function bindValue(name: string, raw: Buffer, type: string | undefined): string | null {
  if (type !== undefined && isComposite(type)) return toText(name, requoteLiteral(name, raw));
  // The whole value `\N` is NULL; chDB sends `\N` for null, so the engine decides as it would.
  if (raw.length === 2 && raw[0] === 0x5c && raw[1] === 0x4e) return null;
  return toText(name, decodeEscapes(name, raw, 0, raw.length, -1).bytes);
}

function toText(name: string, bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ClickHouseException(
      'BAD_QUERY_PARAMETER',
      `Value of query parameter '${name}' is not valid UTF-8: the embedded store binds parameters as text; send binary data in an INSERT body instead`,
      400,
    );
  }
}

function badEscape(name: string, detail: string): ClickHouseException {
  return new ClickHouseException(
    'BAD_QUERY_PARAMETER',
    `Value of query parameter '${name}' has ${detail}`,
    400,
  );
}

/** ClickHouse's parseEscapeSequence: the byte a single-character escape stands for. */
function escapedByte(c: number): number {
  switch (c) {
    case 0x61: // a
      return 0x07;
    case 0x62: // b
      return 0x08;
    case 0x65: // e
      return 0x1b;
    case 0x66: // f
      return 0x0c;
    case 0x6e: // n
      return 0x0a;
    case 0x72: // r
      return 0x0d;
    case 0x74: // t
      return 0x09;
    case 0x76: // v
      return 0x0b;
    case 0x30: // 0
      return 0x00;
    default:
      return c;
  }
}

// Escapes whose backslash ClickHouse drops; for any other printable character it keeps the
// backslash (`\%` stays `\%`, so LIKE patterns survive).
const BACKSLASH_DROPPED = new Set([0x5c, 0x27, 0x22, 0x60, 0x2f]);

const HEX = /^[0-9A-Fa-f]{2}$/;

/**
 * Decodes ClickHouse backslash escapes in raw[from, to) as the engine's escaped/quoted string
 * readers do. With `quote` set (0x27), stops at the closing quote, reading `''` as one quote.
 */
function decodeEscapes(
  name: string,
  raw: Buffer,
  from: number,
  to: number,
  quote: number,
): { bytes: Buffer; end: number } {
  const out: number[] = [];
  let i = from;
  while (i < to) {
    const c = raw[i];
    if (c === quote) {
      if (raw[i + 1] === quote) {
        out.push(quote);
        i += 2;
        continue;
      }
      return { bytes: Buffer.from(out), end: i + 1 };
    }
    if (c !== 0x5c) {
      out.push(c);
      i++;
      continue;
    }
    if (i + 1 >= to) throw badEscape(name, 'a backslash at its end');
    const next = raw[i + 1];
    if (next === 0x78) {
      // \xHH
      const hex = raw.subarray(i + 2, i + 4).toString('latin1');
      if (!HEX.test(hex)) throw badEscape(name, `an invalid escape \\x${hex}`);
      out.push(Number.parseInt(hex, 16));
      i += 4;
    } else if (next === 0x4e) {
      // \N inside a string reads as nothing
      i += 2;
    } else {
      const b = escapedByte(next);
      if (!BACKSLASH_DROPPED.has(b) && b > 0x1f) out.push(0x5c);
      out.push(b);
      i += 2;
    }
  }
  if (quote >= 0) throw badEscape(name, 'an unterminated string literal');
  return { bytes: Buffer.from(out), end: to };
}

/**
 * Rewrites a composite literal so every string in it is quoted without backslashes
 * (`'it\'s'` → `'it''s'`); everything outside strings (brackets, numbers, NULL) is kept verbatim.
 */
function requoteLiteral(name: string, raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let copied = 0;
  let i = 0;
  while (i < raw.length) {
    if (raw[i] !== 0x27) {
      i++;
      continue;
    }
    parts.push(raw.subarray(copied, i));
    const { bytes, end } = decodeEscapes(name, raw, i + 1, raw.length, 0x27);
    parts.push(Buffer.from("'"), doubleQuotes(bytes), Buffer.from("'"));
    i = end;
    copied = end;
  }
  parts.push(raw.subarray(copied));
  return Buffer.concat(parts);
}

function doubleQuotes(bytes: Buffer): Buffer {
  if (!bytes.includes(0x27)) return bytes;
  const out: number[] = [];
  for (const b of bytes) {
    out.push(b);
    if (b === 0x27) out.push(0x27);
  }
  return Buffer.from(out);
}
