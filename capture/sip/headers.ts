/**
 * The header names the parser knows: canonical spellings (RFC 3261 §20 and common extensions), compact
 * forms, the model field each one fills, and a lookup on packet bytes that allocates nothing.
 */

import { LOWER as LOWER_TABLE } from './detect.js';

// Module-local alias: some loaders (vitest's module runner) turn every use of an imported binding into a
// property read, which would cost a lookup per byte in the name comparison.
const LOWER = LOWER_TABLE;

// Header ids for the fields the model extracts.
export const H_OTHER = 0;
export const H_VIA = 1;
export const H_FROM = 2;
export const H_TO = 3;
export const H_CALL_ID = 4;
export const H_CSEQ = 5;
export const H_CONTACT = 6;
export const H_MAX_FORWARDS = 7;
export const H_CONTENT_TYPE = 8;
export const H_CONTENT_LENGTH = 9;
export const H_REASON = 10;
export const H_USER_AGENT = 11;
export const H_SERVER = 12;
export const H_PAI = 13;
/** X-CID .. X-Leg-Call-ID: id - H_CORR is the priority (lower wins). */
export const H_CORR = 20;

interface HeaderDef {
  /** Canonical spelling, or null to keep the sender's (unknown-to-RFC headers such as X-CID). */
  canonical: string | null;
  lower: string;
  id: number;
}

const COMPACT: Record<string, string> = {
  i: 'Call-ID',
  f: 'From',
  t: 'To',
  v: 'Via',
  m: 'Contact',
  l: 'Content-Length',
  c: 'Content-Type',
  k: 'Supported',
  s: 'Subject',
  e: 'Content-Encoding',
  o: 'Event',
  u: 'Allow-Events',
  r: 'Refer-To',
  b: 'Referred-By',
  x: 'Session-Expires',
  a: 'Accept-Contact',
  j: 'Reject-Contact',
  d: 'Request-Disposition',
  y: 'Identity',
  n: 'Identity-Info',
};

const SPECIAL: Record<string, number> = {
  Via: H_VIA,
  From: H_FROM,
  To: H_TO,
  'Call-ID': H_CALL_ID,
  CSeq: H_CSEQ,
  Contact: H_CONTACT,
  'Max-Forwards': H_MAX_FORWARDS,
  'Content-Type': H_CONTENT_TYPE,
  'Content-Length': H_CONTENT_LENGTH,
  Reason: H_REASON,
  'User-Agent': H_USER_AGENT,
  Server: H_SERVER,
  'P-Asserted-Identity': H_PAI,
};

/** Registered names whose canonical spelling we restore (RFC 3261 §20 and common extensions). */
const KNOWN = [
  ...Object.values(COMPACT),
  ...Object.keys(SPECIAL),
  'Accept',
  'Accept-Encoding',
  'Accept-Language',
  'Alert-Info',
  'Allow',
  'Authentication-Info',
  'Authorization',
  'Call-Info',
  'Content-Disposition',
  'Content-Language',
  'Date',
  'Error-Info',
  'Expires',
  'In-Reply-To',
  'Min-Expires',
  'MIME-Version',
  'Organization',
  'Priority',
  'Proxy-Authenticate',
  'Proxy-Authorization',
  'Proxy-Require',
  'Record-Route',
  'Reply-To',
  'Require',
  'Retry-After',
  'Route',
  'Timestamp',
  'Unsupported',
  'Warning',
  'WWW-Authenticate',
  'P-Preferred-Identity',
  'P-Charging-Vector',
  'P-Access-Network-Info',
  'P-Called-Party-ID',
  'Privacy',
  'RAck',
  'RSeq',
  'Min-SE',
  'Replaces',
  'Path',
  'Service-Route',
  'Diversion',
  'History-Info',
  'Remote-Party-ID',
  'Subscription-State',
  'SIP-ETag',
  'SIP-If-Match',
];

/** Correlation headers of B2BUA legs, in priority order. */
export const CORRELATION = ['X-CID', 'X-Call-ID', 'X-Correlation-ID', 'X-Orig-Call-ID', 'X-Leg-Call-ID'];

export const HEADER_DEFS: HeaderDef[] = [];
/** Lower-case name bytes per definition, for comparing against the packet without allocating. */
const HEADER_BYTES: Uint8Array[] = [];
/**
 * Open-addressing table keyed by a name's length, first and last bytes (lower-cased), which already tell
 * the known names almost apart, so scanning a name costs no per-byte hashing; candidates are compared in
 * full. TABLE_IDX holds HEADER_DEFS index + 1 (0 = empty), TABLE_KEY the key for a quick reject.
 */
const TABLE_BITS = 10;
const TABLE_MASK = (1 << TABLE_BITS) - 1;
const TABLE_IDX = new Int32Array(1 << TABLE_BITS);
const TABLE_KEY = new Int32Array(1 << TABLE_BITS);

function nameKey(n: number, first: number, last: number): number {
  return ((n & 0xff) << 16) | (first << 8) | last;
}

function slotOf(key: number): number {
  return Math.imul(key, 0x9e3779b1) >>> (32 - TABLE_BITS);
}

function addDef(def: HeaderDef): void {
  if (HEADER_DEFS.some((d) => d.lower === def.lower)) return;
  HEADER_DEFS.push(def);
  const bytes = Buffer.from(def.lower, 'latin1');
  HEADER_BYTES.push(bytes);
  const key = nameKey(bytes.length, bytes[0], bytes[bytes.length - 1]);
  let slot = slotOf(key);
  while (TABLE_IDX[slot] !== 0) slot = (slot + 1) & TABLE_MASK;
  TABLE_IDX[slot] = HEADER_DEFS.length;
  TABLE_KEY[slot] = key;
}
for (const name of KNOWN)
  addDef({ canonical: name, lower: name.toLowerCase(), id: SPECIAL[name] ?? H_OTHER });
for (const [c, name] of Object.entries(COMPACT))
  addDef({ canonical: name, lower: c, id: SPECIAL[name] ?? H_OTHER });
CORRELATION.forEach((name, k) => {
  addDef({ canonical: null, lower: name.toLowerCase(), id: H_CORR + k });
});
/** Model field id per HEADER_DEFS index. */
export const DEF_ID = Int32Array.from(HEADER_DEFS, (d) => d.id);

/** Looks the header name buf[s,e) (s < e) up case-insensitively without allocating; HEADER_DEFS index or -1. */
export function lookupHeader(buf: Buffer, s: number, e: number): number {
  const n = e - s;
  const key = nameKey(n, LOWER[buf[s]], LOWER[buf[e - 1]]);
  for (let slot = slotOf(key); TABLE_IDX[slot] !== 0; slot = (slot + 1) & TABLE_MASK) {
    if (TABLE_KEY[slot] !== key) continue;
    const idx = TABLE_IDX[slot] - 1;
    const lower = HEADER_BYTES[idx];
    if (lower.length !== n) continue; // a name longer than 255 bytes sharing the key
    let k = 1;
    while (k < n && LOWER[buf[s + k]] === lower[k]) k++;
    if (k === n) return idx;
  }
  return -1;
}
