import { describe, expect, it } from 'vitest';
import { TsvBuffer } from './tsv.js';

describe('TsvBuffer', () => {
  it('escapes exactly what TabSeparated requires and passes other bytes raw', () => {
    const out = new TsvBuffer(4);
    out.bytes(Buffer.from([0x5c, 0x09, 0x0a, 0x0d, 0x00, 0x08, 0x0c, 0x27, 0x22, 0x01, 0x7f, 0x80, 0xff]));
    out.latin1('é').utf8('é').endRow();
    expect(out.take().toString('latin1')).toBe(
      '\\\\\\t\\n\\r\\0\\b\\f\\\'"\x01\x7f\x80\xff\t\xe9\t\xc3\xa9\n',
    );
  });

  it('writes numbers, times, nulls, arrays and maps as ClickHouse reads them', () => {
    const out = new TsvBuffer(1);
    out
      .uint(70000, 0xffff)
      .uint(-5)
      .int(-7.9)
      .float(0.1 + 0.2)
      .float(Number.NaN)
      .float(Number.NEGATIVE_INFINITY)
      .null()
      .time(1_767_225_600_000_000_001n)
      .time(-1n)
      .time(2n ** 63n - 1n)
      .stringArray(["a'b", 'c\\d', 'e\tf'], 'latin1')
      .floatMap([
        ['50', 0.5],
        ["7'0", 1e-7],
      ])
      .bigUint(2n ** 64n - 1n)
      .endRow();
    expect(out.take().toString('latin1')).toBe(
      `${[
        '65535',
        '0',
        '-7',
        '0.30000000000000004',
        'nan',
        '-inf',
        '\\N',
        '2026-01-01 00:00:00.000000001',
        '1970-01-01 00:00:00.000000000',
        '2262-01-01 00:00:00.000000000',
        "['a\\'b','c\\\\d','e\\tf']",
        "{'50':0.5,'7\\'0':1e-7}",
        '18446744073709551615',
      ].join('\t')}\n`,
    );
  });
});
