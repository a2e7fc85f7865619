/**
 * CRC-32 (IEEE 802.3, the zlib/PNG polynomial), incremental. Our own because `zlib.crc32` only
 * exists from Node 20.15, and the spool must check records on every Node 20.
 */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC of `buf[start..end)`, continuing from `crc` (0 to start). */
export function crc32(buf: Uint8Array, crc = 0, start = 0, end = buf.length): number {
  let c = ~crc >>> 0;
  for (let i = start; i < end; i++) c = TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
