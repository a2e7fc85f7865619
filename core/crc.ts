/**
 * Table-driven CRCs, incremental: CRC-32 (IEEE 802.3, the zlib/PNG polynomial; the Kafka spool's
 * record check) and CRC-32C (Castagnoli; SCTP's checksum, RFC 4960 appendix B). Our own because
 * `zlib.crc32` only exists from Node 20.15, and the spool must check records on every Node 20.
 */

/** The table of a reflected CRC-32 polynomial. */
function tableOf(polynomial: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? polynomial ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

const IEEE = tableOf(0xedb88320);
const CASTAGNOLI = tableOf(0x82f63b78);

function update(table: Uint32Array, buf: Uint8Array, crc: number, start: number, end: number): number {
  let c = ~crc >>> 0;
  for (let i = start; i < end; i++) c = table[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32 of `buf[start..end)`, continuing from `crc` (0 to start). */
export function crc32(buf: Uint8Array, crc = 0, start = 0, end = buf.length): number {
  return update(IEEE, buf, crc, start, end);
}

/** CRC-32C of `buf[start..end)`, continuing from `crc` (0 to start). */
export function crc32c(buf: Uint8Array, crc = 0, start = 0, end = buf.length): number {
  return update(CASTAGNOLI, buf, crc, start, end);
}
