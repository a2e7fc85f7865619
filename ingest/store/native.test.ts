/**
 * Native re-framing for a client revision (native.ts). The fixtures are chDB 26.7's own Native
 * output (captured with `session.queryAsync(sql, { format: 'Native' })`), spelled out piece by
 * piece so the test can say where a server adds its bytes; test/grafana-datasource.test.ts checks
 * the same against the running store and clickhouse-go's decoding rules.
 */
import { describe, expect, it } from 'vitest';
import { DATA_TABLES, SCHEMA_MIGRATIONS } from '../schema/tables.js';
import { ClickHouseException } from './errors.js';
import { layoutOf, MIN_REVISION_WITH_CUSTOM_SERIALIZATION, reframeNative } from './native.js';

const CLIENT_REVISION = 54460; // clickhouse-go v2.47.0
const BLOCK_INFO = Buffer.from('0100' + '02ffffffff' + '00', 'hex');
const NOT_CUSTOM = Buffer.from([0]);

const hex = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const str = (s: string) => Buffer.concat([Buffer.from([Buffer.byteLength(s)]), Buffer.from(s)]);
const u64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};

interface Col {
  name: string;
  type: string;
  data: Buffer;
}
const col = (name: string, type: string, ...data: Buffer[]): Col => ({
  name,
  type,
  data: Buffer.concat(data),
});

/** A block as chDB writes it (revision 0), and as a server writes it for `revision`. */
function block(rows: number, cols: Col[]): { plain: Buffer; framed: (revision: number) => Buffer } {
  const head = Buffer.from([cols.length, rows]);
  return {
    plain: Buffer.concat([head, ...cols.flatMap((c) => [str(c.name), str(c.type), c.data])]),
    framed: (revision) =>
      Buffer.concat([
        BLOCK_INFO,
        head,
        ...cols.flatMap((c) => [
          str(c.name),
          str(c.type),
          revision >= MIN_REVISION_WITH_CUSTOM_SERIALIZATION ? NOT_CUSTOM : Buffer.alloc(0),
          c.data,
        ]),
      ]),
  };
}

// LowCardinality: key version 1 (the state prefix), index type UInt8 | HasAdditionalKeys |
// NeedUpdateDictionary, dictionary size and keys, index count and indexes.
const LC_PREFIX = u64(1);
const LC_FLAGS = hex('0006000000000000');
const F64_HALF = hex('000000000000e03f');

// SELECT toLowCardinality(toNullable(x)) AS c, [toLowCardinality(x)] AS a,
//   CAST([] AS Array(LowCardinality(String))) AS e, map(toLowCardinality(x), 0.5) AS m, NULL AS n
// FROM (SELECT arrayJoin(['a', 'b']) AS x)
const MIXED = block(2, [
  col(
    'c',
    'LowCardinality(Nullable(String))',
    LC_PREFIX,
    LC_FLAGS,
    u64(4),
    hex('00 00 0161 0162'),
    u64(2),
    hex('0203'),
  ),
  // The prefix comes before the array offsets.
  col(
    'a',
    'Array(LowCardinality(String))',
    LC_PREFIX,
    u64(1),
    u64(2),
    LC_FLAGS,
    u64(3),
    hex('00 0161 0162'),
    u64(2),
    hex('0102'),
  ),
  // No elements: the prefix, the offsets, and no LowCardinality data at all.
  col('e', 'Array(LowCardinality(String))', LC_PREFIX, u64(0), u64(0)),
  col(
    'm',
    'Map(LowCardinality(String), Float64)',
    LC_PREFIX,
    u64(1),
    u64(2),
    LC_FLAGS,
    u64(3),
    hex('00 0161 0162'),
    u64(2),
    hex('0102'),
    F64_HALF,
    F64_HALF,
  ),
  // NULL: Nullable(Nothing), a null map and one '0' per row.
  col('n', 'Nullable(Nothing)', hex('0101'), hex('3030')),
]);
const MIXED_CHDB =
  '05020163204c6f7743617264696e616c697479284e756c6c61626c6528537472696e6729290100000000000000000600000000000004000000000000000000016101620200000000000000020301611d4172726179284c6f7743617264696e616c69747928537472696e6729290100000000000000010000000000000002000000000000000006000000000000030000000000000000016101620200000000000000010201651d4172726179284c6f7743617264696e616c69747928537472696e672929010000000000000000000000000000000000000000000000016d244d6170284c6f7743617264696e616c69747928537472696e67292c20466c6f617436342901000000000000000100000000000000020000000000000000060000000000000300000000000000000161016202000000000000000102000000000000e03f000000000000e03f016e114e756c6c61626c65284e6f7468696e672901013030';

// SELECT number AS n FROM numbers(5) SETTINGS max_block_size = 2: three blocks.
const NUMBERS = [
  block(2, [col('n', 'UInt64', u64(0), u64(1))]),
  block(2, [col('n', 'UInt64', u64(2), u64(3))]),
  block(1, [col('n', 'UInt64', u64(4))]),
];
const NUMBERS_CHDB =
  '0102016e0655496e743634000000000000000001000000000000000102016e0655496e743634020000000000000003000000000000000101016e0655496e7436340400000000000000';

function thrown(f: () => unknown): ClickHouseException {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(ClickHouseException);
    return error as ClickHouseException;
  }
  throw new Error('expected an exception');
}

describe('reframeNative', () => {
  it('the fixtures are what chDB writes', () => {
    expect(MIXED.plain.toString('hex')).toBe(MIXED_CHDB);
    expect(Buffer.concat(NUMBERS.map((b) => b.plain)).toString('hex')).toBe(NUMBERS_CHDB);
  });

  it('revision 0 (no client_protocol_version): the body itself', () => {
    expect(reframeNative(MIXED.plain, 0)).toBe(MIXED.plain);
  });

  it('adds BlockInfo and has_custom = 0 around nested LowCardinality, Map, empty arrays, Nothing', () => {
    expect(reframeNative(MIXED.plain, CLIENT_REVISION).equals(MIXED.framed(CLIENT_REVISION))).toBe(true);
    expect(reframeNative(MIXED.plain, 54513).equals(MIXED.framed(54513))).toBe(true);
  });

  it('below revision 54454: BlockInfo only', () => {
    const out = reframeNative(MIXED.plain, MIN_REVISION_WITH_CUSTOM_SERIALIZATION - 1);
    expect(out.equals(MIXED.framed(MIN_REVISION_WITH_CUSTOM_SERIALIZATION - 1))).toBe(true);
    expect(out.length).toBe(MIXED.plain.length + BLOCK_INFO.length);
  });

  it('BlockInfo before every block', () => {
    const out = reframeNative(hex(NUMBERS_CHDB), CLIENT_REVISION);
    expect(out.equals(Buffer.concat(NUMBERS.map((b) => b.framed(CLIENT_REVISION))))).toBe(true);
  });

  it('LowCardinality(Nullable(String)) with NULL, String, FixedString, Tuple, DateTime64, Decimal', () => {
    const b = block(2, [
      col(
        'l',
        'LowCardinality(Nullable(String))',
        LC_PREFIX,
        LC_FLAGS,
        u64(3),
        hex('00 00 0131'),
        u64(2),
        hex('0002'),
      ),
      col('s', 'String', str('ab'), str('')),
      col('f', 'FixedString(3)', Buffer.from('abcdef')),
      col(
        't',
        "Tuple(a UInt8, `b c` Nullable(String), Enum8('x,)' = 1))",
        hex('0102'),
        hex('0001'),
        str('q'),
        str(''),
        hex('0101'),
      ),
      col('d', "DateTime64(9, 'UTC')", u64(1), u64(2)),
      col('p', 'Decimal(20, 2)', Buffer.alloc(32)),
      col('g', 'Array(Point)', u64(0), u64(1), Buffer.alloc(16)),
    ]);
    expect(reframeNative(b.plain, CLIENT_REVISION).equals(b.framed(CLIENT_REVISION))).toBe(true);
  });

  it('an empty body stays empty; a block without rows has headers and no data', () => {
    expect(reframeNative(Buffer.alloc(0), CLIENT_REVISION).length).toBe(0);
    // No rows: no data to walk, so even a type the walker refuses passes (as a server sends it).
    const empty = block(0, [
      col('x', 'LowCardinality(String)'),
      col('y', 'Dynamic'),
      col('z', 'Array(String)'),
    ]);
    expect(reframeNative(empty.plain, CLIENT_REVISION).equals(empty.framed(CLIENT_REVISION))).toBe(true);
    expect(() => layoutOf('Dynamic')).toThrow(ClickHouseException);
  });

  it('walks every column type of the callscope tables', () => {
    for (const table of [...DATA_TABLES, SCHEMA_MIGRATIONS]) {
      for (const c of table.columns) expect(() => layoutOf(c.type), `${table.name}.${c.name}`).not.toThrow();
    }
    expect(layoutOf('Map(LowCardinality(String), Float64)')).toEqual({
      kind: 'array',
      inner: {
        kind: 'tuple',
        elements: [
          { kind: 'lowCardinality', dictionary: { kind: 'string' } },
          { kind: 'fixed', width: 8 },
        ],
      },
    });
    expect(layoutOf('SimpleAggregateFunction(anyLast, Nullable(UInt16))')).toEqual({
      kind: 'nullable',
      inner: { kind: 'fixed', width: 2 },
    });
    expect(layoutOf('Nested(a UInt8, b String)')).toEqual({
      kind: 'array',
      inner: { kind: 'tuple', elements: [{ kind: 'fixed', width: 1 }, { kind: 'string' }] },
    });
  });

  it('refuses types it cannot walk with NOT_IMPLEMENTED (code 48, HTTP 500)', () => {
    for (const type of [
      'Dynamic',
      'JSON',
      "Object('json')",
      'Variant(String, UInt8)',
      'AggregateFunction(sum, UInt64)',
      'Array(Dynamic)',
      'LowCardinality(Array(String))',
      'QBit(Float32, 8)',
    ]) {
      const b = block(1, [col('x', type, hex('00'))]);
      const error = thrown(() => reframeNative(b.plain, CLIENT_REVISION));
      expect(error.code, type).toBe(48);
      expect(error.httpStatus).toBe(500);
      expect(error.toClickHouseText()).toMatch(/^Code: 48\. DB::Exception: .*\(NOT_IMPLEMENTED\)$/);
    }
  });

  it('a truncated or inconsistent body is an exception (LOGICAL_ERROR), never a crash', () => {
    for (let n = 1; n < MIXED.plain.length; n++) {
      expect(thrown(() => reframeNative(MIXED.plain.subarray(0, n), CLIENT_REVISION)).code).toBe(49);
    }
    // LowCardinality with a global dictionary, or a granule of no rows: not what Native output holds.
    const global = block(1, [
      col(
        'x',
        'LowCardinality(String)',
        LC_PREFIX,
        hex('0007000000000000'),
        u64(1),
        hex('00'),
        u64(1),
        hex('00'),
      ),
    ]);
    expect(thrown(() => reframeNative(global.plain, CLIENT_REVISION)).code).toBe(49);
    const stuck = block(1, [
      col('x', 'LowCardinality(String)', LC_PREFIX, LC_FLAGS, u64(1), hex('00'), u64(0)),
    ]);
    expect(thrown(() => reframeNative(stuck.plain, CLIENT_REVISION)).code).toBe(49);
    // Counts far beyond the body end the walk at once.
    const huge = block(1, [col('x', 'Array(UInt64)', u64(2 ** 52))]);
    expect(thrown(() => reframeNative(huge.plain, CLIENT_REVISION)).code).toBe(49);
    const rows = Buffer.concat([hex('01 ffffffff0f'), str('x'), str('String')]);
    expect(thrown(() => reframeNative(rows, CLIENT_REVISION)).code).toBe(49);
  });

  it('random bytes: an answer or an exception, quickly', () => {
    let seed = 1;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const started = performance.now();
    for (let i = 0; i < 3000; i++) {
      const body = Buffer.from(MIXED.plain);
      for (let k = 0; k < 1 + (rand() % 4); k++) body[rand() % body.length] = rand() & 0xff;
      try {
        reframeNative(body, CLIENT_REVISION);
      } catch (error) {
        expect(error).toBeInstanceOf(ClickHouseException);
      }
    }
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
