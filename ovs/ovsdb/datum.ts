/**
 * OVSDB's JSON value encoding (RFC 7047 5.1): atoms are strings, numbers, booleans or
 * `["uuid", s]` / `["named-uuid", s]`; a set is `["set", [atoms]]` except that a one-element set may be
 * written as the bare atom; a map is `["map", [[key, value], ...]]`.
 */

export type OvsdbUuid = ['uuid', string];
export type OvsdbNamedUuid = ['named-uuid', string];
export type OvsdbAtom = string | number | boolean | OvsdbUuid | OvsdbNamedUuid;
export type OvsdbSet = ['set', OvsdbAtom[]];
export type OvsdbMap = ['map', [OvsdbAtom, OvsdbAtom][]];
export type OvsdbValue = OvsdbAtom | OvsdbSet | OvsdbMap;
/** A decoded atom: uuids become their string. */
export type JsAtom = string | number | boolean;

export class OvsdbDatumError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OvsdbDatumError';
  }
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function uuid(s: string): OvsdbUuid {
  if (!UUID_RE.test(s)) throw new OvsdbDatumError(`not a UUID: ${JSON.stringify(s)}`);
  return ['uuid', s];
}

/** A transaction-local name for a row inserted in the same transaction (`uuid-name`). */
export function namedUuid(name: string): OvsdbNamedUuid {
  // RFC 7047: <id> is [a-zA-Z_][a-zA-Z0-9_]*
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    throw new OvsdbDatumError(`not a valid uuid-name: ${JSON.stringify(name)}`);
  return ['named-uuid', name];
}

export function set(values: Iterable<OvsdbAtom>): OvsdbSet {
  return ['set', [...values]];
}

/** From a Record, a Map or a list of pairs. */
export function map(
  entries: Record<string, OvsdbAtom> | Map<OvsdbAtom, OvsdbAtom> | Iterable<[OvsdbAtom, OvsdbAtom]>,
): OvsdbMap {
  if (entries instanceof Map) return ['map', [...entries.entries()]];
  if (typeof (entries as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return ['map', [...(entries as Iterable<[OvsdbAtom, OvsdbAtom]>)]];
  }
  return ['map', Object.entries(entries as Record<string, OvsdbAtom>)];
}

/** An empty set: how an optional column (min 0, max 1) is cleared. */
export const EMPTY_SET: OvsdbSet = ['set', []];

export function isUuid(v: unknown): v is OvsdbUuid {
  return Array.isArray(v) && v.length === 2 && v[0] === 'uuid' && typeof v[1] === 'string';
}

export function isNamedUuid(v: unknown): v is OvsdbNamedUuid {
  return Array.isArray(v) && v.length === 2 && v[0] === 'named-uuid' && typeof v[1] === 'string';
}

export function isSet(v: unknown): v is OvsdbSet {
  return Array.isArray(v) && v.length === 2 && v[0] === 'set' && Array.isArray(v[1]);
}

export function isMap(v: unknown): v is OvsdbMap {
  return Array.isArray(v) && v.length === 2 && v[0] === 'map' && Array.isArray(v[1]);
}

/** An atom → JS value (uuids → their string). Throws on anything that is not an atom. */
export function decodeAtom(v: unknown): JsAtom {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (isUuid(v) || isNamedUuid(v)) return v[1];
  throw new OvsdbDatumError(`not an OVSDB atom: ${short(v)}`);
}

/** The UUID string of a `["uuid", s]` value. */
export function decodeUuid(v: unknown): string {
  if (!isUuid(v)) throw new OvsdbDatumError(`not a UUID value: ${short(v)}`);
  return v[1];
}

/** A set column → array (a bare atom is a one-element set). */
export function decodeSet(v: unknown): JsAtom[] {
  if (isSet(v)) return v[1].map(decodeAtom);
  if (isMap(v)) throw new OvsdbDatumError(`expected a set, got a map: ${short(v)}`);
  return [decodeAtom(v)];
}

/** A set of UUIDs (e.g. `Bridge.ports`) → UUID strings. */
export function decodeUuidSet(v: unknown): string[] {
  if (isSet(v)) return v[1].map(decodeUuid);
  return [decodeUuid(v)];
}

/** An optional column (min 0, max 1) → its atom or null when empty. */
export function decodeOptional(v: unknown): JsAtom | null {
  const s = decodeSet(v);
  if (s.length > 1) throw new OvsdbDatumError(`expected at most one value, got ${s.length}: ${short(v)}`);
  return s.length === 0 ? null : s[0];
}

/** A map column → Map (keys and values decoded as atoms). */
export function decodeMap(v: unknown): Map<JsAtom, JsAtom> {
  if (!isMap(v)) throw new OvsdbDatumError(`not an OVSDB map: ${short(v)}`);
  const out = new Map<JsAtom, JsAtom>();
  for (const pair of v[1]) {
    if (!Array.isArray(pair) || pair.length !== 2)
      throw new OvsdbDatumError(`bad map pair ${short(pair)} in ${short(v)}`);
    out.set(decodeAtom(pair[0]), decodeAtom(pair[1]));
  }
  return out;
}

/** A map column → plain object with string keys (e.g. `external_ids`, `statistics`). */
export function decodeMapRecord(v: unknown): Record<string, JsAtom> {
  const out: Record<string, JsAtom> = Object.create(null);
  for (const [k, val] of decodeMap(v)) out[String(k)] = val;
  return out;
}

// Lenient decoding, for rows read back from a server: never throws. A value of another kind than
// asked for is left out (sets, maps) or read as absent (optional columns), so one odd cell cannot
// cost the whole table.

/** A UUID atom (`["uuid", s]`, or `["named-uuid", s]`) → its string; null for anything else. */
export function asUuid(a: unknown): string | null {
  return isUuid(a) || isNamedUuid(a) ? a[1] : null;
}

/** A number atom, or null. */
export function asNumber(a: unknown): number | null {
  return typeof a === 'number' ? a : null;
}

/** A string atom, or null. */
export function asString(a: unknown): string | null {
  return typeof a === 'string' ? a : null;
}

/** The elements of a set (a bare value is a one-element set, an absent column an empty one). */
function setElements(v: unknown): unknown[] {
  if (isSet(v)) return v[1];
  return v === undefined ? [] : [v];
}

/** A set column → the elements `pick` accepts (e.g. `decodeSetLenient(row.ports, asUuid)`). */
export function decodeSetLenient<T>(v: unknown, pick: (atom: unknown) => T | null): T[] {
  const out: T[] = [];
  for (const atom of setElements(v)) {
    const value = pick(atom);
    if (value !== null) out.push(value);
  }
  return out;
}

/** An optional column → its one value when `pick` accepts it; null when empty, plural or another kind. */
export function decodeOptionalLenient<T>(v: unknown, pick: (atom: unknown) => T | null): T | null {
  const atoms = setElements(v);
  return atoms.length === 1 ? pick(atoms[0]) : null;
}

/**
 * A map column → object (no prototype, as from `decodeMapRecord`) of the string keys whose values
 * `pick` accepts; anything that is not a map → an empty object.
 */
export function decodeMapRecordLenient<T>(v: unknown, pick: (atom: unknown) => T | null): Record<string, T> {
  const out: Record<string, T> = Object.create(null);
  if (!isMap(v)) return out;
  for (const pair of v[1] as unknown[]) {
    if (!Array.isArray(pair) || typeof pair[0] !== 'string') continue;
    const value = pick(pair[1]);
    if (value !== null) out[pair[0]] = value;
  }
  return out;
}

function short(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}
