/** Text forms of IP addresses: dotted quad and RFC 5952 canonical IPv6. */

export function formatIPv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
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

/** Dotted-quad → 4 bytes, or null. */
export function parseIPv4(s: string): Buffer | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const out = Buffer.allocUnsafe(4);
  for (let i = 0; i < 4; i++) {
    const v = Number(m[i + 1]);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

/** RFC 4291 §2.2 text (any of its three forms, no zone id, no brackets) → 16 bytes, or null. */
export function parseIPv6(s: string): Buffer | null {
  if (s.length < 2 || s.length > 45) return null;
  const dbl = s.indexOf('::');
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return null;
  // Embedded IPv4 (::ffff:192.0.2.1) may only be the final 32 bits of the whole address.
  const head = parseGroups(dbl === -1 ? s : s.slice(0, dbl), dbl === -1);
  const tail = dbl === -1 ? [] : parseGroups(s.slice(dbl + 2), true);
  if (!head || !tail) return null;
  const n = head.length + tail.length;
  // Without "::" all 8 groups are spelled out; "::" stands for at least one zero group.
  if (dbl === -1 ? n !== 8 : n > 7) return null;
  const out = Buffer.alloc(16);
  for (let i = 0; i < head.length; i++) out.writeUInt16BE(head[i], i * 2);
  for (let i = 0; i < tail.length; i++) out.writeUInt16BE(tail[i], (8 - tail.length + i) * 2);
  return out;
}

function parseGroups(s: string, ipv4Last: boolean): number[] | null {
  if (s === '') return [];
  const parts = s.split(':');
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const g = parts[i];
    if (ipv4Last && i === parts.length - 1 && g.includes('.')) {
      const v4 = parseIPv4(g);
      if (!v4) return null;
      out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) {
      out.push(Number.parseInt(g, 16));
    } else {
      return null;
    }
  }
  return out;
}

/**
 * 16 bytes at off → RFC 5952 canonical text: lower-case hex, no leading zeros, the longest run
 * (first on a tie) of two or more zero groups shortened to "::", and IPv4-mapped addresses in
 * mixed notation (§5), which is also what tshark and inet_ntop print.
 */
export function formatIPv6(b: Uint8Array, off = 0): string {
  const g = new Array<number>(8);
  for (let i = 0; i < 8; i++) g[i] = (b[off + 2 * i] << 8) | b[off + 2 * i + 1];
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
  }
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never shortened (§4.2.2)
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart === -1) return g.map((x) => x.toString(16)).join(':');
  const left = g.slice(0, bestStart).map((x) => x.toString(16));
  const right = g.slice(bestStart + bestLen).map((x) => x.toString(16));
  return `${left.join(':')}::${right.join(':')}`;
}

/** Text address (either family, IPv6 optionally in brackets) → 4 or 16 bytes, or null. */
export function parseIp(text: string): Buffer | null {
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  return text.includes(':') ? parseIPv6(text) : parseIPv4(text);
}
