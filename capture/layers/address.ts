/** Text forms of IP addresses: dotted quad and RFC 5952 canonical IPv6. */

export function formatIPv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function formatIPv6(b: Uint8Array, off = 0): string {
  const groups = new Array<number>(8);
  for (let i = 0; i < 8; i++) groups[i] = (b[off + 2 * i] << 8) | b[off + 2 * i + 1];
  // IPv4-mapped addresses keep the dotted tail (RFC 5952 §5).
  if (
    groups[0] === 0 &&
    groups[1] === 0 &&
    groups[2] === 0 &&
    groups[3] === 0 &&
    groups[4] === 0 &&
    groups[5] === 0xffff
  ) {
    return `::ffff:${formatIPv4(b, off + 12)}`;
  }
  // Longest run of two or more zero groups, first one on ties (RFC 5952 §4.2).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.map((g) => g.toString(16)).join(':');
  const head = groups.slice(0, bestStart).map((g) => g.toString(16)).join(':');
  const tail = groups
    .slice(bestStart + bestLen)
    .map((g) => g.toString(16))
    .join(':');
  return `${head}::${tail}`;
}

export function formatIp(version: 4 | 6, b: Uint8Array, off = 0): string {
  return version === 4 ? formatIPv4(b, off) : formatIPv6(b, off);
}

export function formatMac(b: Uint8Array, off: number): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    const v = b[off + i];
    s += (i ? ':' : '') + (v < 16 ? '0' : '') + v.toString(16);
  }
  return s;
}

/** Parses a dotted-quad or IPv6 text address into 4 or 16 bytes; null when invalid. */
export function parseIp(text: string): Uint8Array | null {
  if (text.includes(':')) {
    let t = text;
    if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
    const zone = t.indexOf('%');
    if (zone >= 0) t = t.slice(0, zone);
    let tailV4: Uint8Array | null = null;
    const lastColon = t.lastIndexOf(':');
    if (t.slice(lastColon + 1).includes('.')) {
      tailV4 = parseIp(t.slice(lastColon + 1));
      if (!tailV4 || tailV4.length !== 4) return null;
      t = `${t.slice(0, lastColon + 1)}0:0`;
    }
    const halves = t.split('::');
    if (halves.length > 2) return null;
    const parse = (s: string) => (s === '' ? [] : s.split(':'));
    const head = parse(halves[0]);
    const tail = halves.length === 2 ? parse(halves[1]) : [];
    const missing = 8 - head.length - tail.length;
    if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
    const all = [...head, ...new Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
    const out = new Uint8Array(16);
    for (let i = 0; i < 8; i++) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(all[i])) return null;
      const v = Number.parseInt(all[i], 16);
      out[2 * i] = v >> 8;
      out[2 * i + 1] = v & 0xff;
    }
    if (tailV4) out.set(tailV4, 12);
    return out;
  }
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^\d{1,3}$/.test(parts[i])) return null;
    const v = Number(parts[i]);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}
