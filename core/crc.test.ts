import { describe, expect, it } from 'vitest';
import { crc32, crc32c } from './crc.js';

// The check values of the CRC catalogue (reveng.sourceforge.io): the CRC of the ASCII "123456789".
const CHECK = Buffer.from('123456789', 'latin1');

describe('CRCs', () => {
  it('CRC-32 (IEEE) and CRC-32C (Castagnoli, RFC 3720 B.4) give their catalogue check values', () => {
    expect(crc32(CHECK)).toBe(0xcbf43926);
    expect(crc32c(CHECK)).toBe(0xe3069283);
  });

  it('continue across pieces', () => {
    expect(crc32(CHECK, crc32(CHECK, 0, 0, 4), 4)).toBe(crc32(CHECK));
    expect(crc32c(CHECK, crc32c(CHECK, 0, 0, 4), 4)).toBe(crc32c(CHECK));
  });
});
