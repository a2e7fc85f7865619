/**
 * Grafana's ClickHouse data source (grafana-clickhouse-datasource 4.20.0, clickhouse-go v2.47.0) with
 * Protocol "http", pointed at the embedded store: the requests clickhouse-go sends, byte for byte where
 * it matters (POST, the SQL as body, `client_protocol_version`/`default_format=Native`/`database`/
 * `max_execution_time` in the URL, Basic auth, `Accept-Encoding: gzip`), and the replies read the way
 * clickhouse-go reads them: Native blocks decoded at the revision it decodes with.
 *
 * clickhouse-go decodes the connect handshake (`SELECT displayName(), version(), revision(),
 * timezone()`) at its own protocol revision 54460, then every reply at the server's `revision()`:
 * both > 0, so it expects each block to start with BlockInfo and each column header to end with a
 * `has_custom` byte (revision ≥ 54454). chDB writes revision-0 Native (neither); the store re-frames
 * it for the `client_protocol_version` a request names (ingest/store/native.ts), and leaves the
 * bytes alone for clients that name none. See docs/GRAFANA-EMBEDDED.md.
 */
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_TABLES, SCHEMA_MIGRATIONS } from '../ingest/schema/tables.js';
import { EmbeddedStore } from '../ingest/store/embedded.js';
import { REPO_ROOT, removeTmpDir, tmpDir } from './oracle/tools.js';

// clickhouse-go v2.47.0: ClientTCPProtocolVersion = DBMS_TCP_PROTOCOL_VERSION.
const CLIENT_REVISION = 54460;
const MIN_REVISION_WITH_CUSTOM_SERIALIZATION = 54454;
// The plugin's default Dial timeout (10 s) and Query timeout (60 s): clickhouse-go turns the context
// deadline into max_execution_time = int(seconds left + 5).
const DIAL_MAX_EXECUTION_TIME = 14;
const QUERY_MAX_EXECUTION_TIME = 64;
const USER_AGENT =
  'grafana/12.1.1 clickhouse-datasource/4.20.0 clickhouse-go/2.47.0 (lv:go/1.24.6; os:linux)';
// The sample capture starts at 2023-11-14 22:13:20 UTC (1700000000); a 10-minute dashboard range.
const FROM = 1699999800;
const TO = 1700000400;

const dir = tmpDir('callscope-grafana-');
const dataDir = join(dir, 'data');
let store: EmbeddedStore;
let port: number;
/** `revision()` from the server hello: what clickhouse-go decodes every later reply at. */
let serverRevision: number;

beforeAll(async () => {
  const cli = join(REPO_ROOT, 'dist', 'bin', 'callscope.js');
  const sample = join(REPO_ROOT, 'capture', 'sample', 'calls.pcap');
  const run = spawnSync(process.execPath, [cli, 'run', '--pcap', sample, '--data-dir', dataDir, '--json'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(run.status, run.stderr).toBe(0);
  store = await EmbeddedStore.start({ dataDir });
  port = Number(new URL(store.url).port);
  const hello = decodeNative(
    payload(await goQuery(HELLO, { maxExecutionTime: DIAL_MAX_EXECUTION_TIME })),
    CLIENT_REVISION,
  );
  serverRevision = Number(hello[0].columns[2].values[0]);
});

afterAll(async () => {
  await store?.close();
  removeTmpDir(dir);
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

interface GoRequestOptions {
  /** Auth.Database: the data source's "Default database"; absent when left empty. */
  database?: string;
  maxExecutionTime?: number;
  /** Custom settings of the data source (Options.Settings), as URL parameters. */
  settings?: Record<string, string>;
  host?: string;
  /** Leave out client_protocol_version, as @clickhouse/client and curl do: revision-0 Native. */
  noRevision?: boolean;
}

/**
 * What clickhouse-go's httpConnect.query sends: POST to the data source's URL with url.Values
 * (sorted by key) of Auth.Database, Options.Settings, default_format=Native, client_protocol_version,
 * plus the query's max_execution_time; the SQL as body; Basic auth from url.User("default") with an
 * empty password; Accept-Encoding: gzip (CompressionGZIP, the plugin's choice for HTTP); the User-Agent
 * of ClientInfo. Go's transport adds Host and Content-Length and nothing else (DisableCompression).
 */
function goQuery(sql: string, options: GoRequestOptions = {}): Promise<Reply> {
  const params = new Map<string, string>([
    ['default_format', 'Native'],
    ['max_execution_time', String(options.maxExecutionTime ?? QUERY_MAX_EXECUTION_TIME)],
  ]);
  if (!options.noRevision) params.set('client_protocol_version', String(CLIENT_REVISION));
  if (options.database) params.set('database', options.database);
  for (const [k, v] of Object.entries(options.settings ?? {})) params.set(k, v);
  const search = [...params]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v).replace(/%20/g, '+')}`)
    .join('&');
  const body = Buffer.from(sql, 'utf8');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/?${search}`,
        headers: {
          Host: options.host ?? `127.0.0.1:${port}`,
          'User-Agent': USER_AGENT,
          'Content-Length': body.length,
          Authorization: `Basic ${Buffer.from('default:').toString('base64')}`,
          'Accept-Encoding': 'gzip',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The body as clickhouse-go's HTTPReaderWriter.NewReader reads it: gunzipped only if the server says gzip. */
function payload(reply: Reply): Buffer {
  return reply.headers['content-encoding'] === 'gzip' ? gunzipSync(reply.body) : reply.body;
}

// --- Native blocks, decoded with clickhouse-go's rules (lib/proto/block.go Block.Decode) ----------

interface Column {
  name: string;
  type: string;
  values: unknown[];
}
interface Block {
  rows: number;
  columns: Column[];
}

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  take(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new Error(`unexpected EOF at ${this.pos} (+${n})`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  uvarint(): number {
    let value = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      const b = this.take(1)[0];
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
    throw new Error('varint overflow');
  }
  str(): string {
    return this.take(this.uvarint()).toString('utf8');
  }
  u64(): bigint {
    return this.take(8).readBigUInt64LE();
  }
}

/** Splits `a, b(c, d), e` at top-level commas. */
function splitArgs(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "'" && text[i - 1] !== '\\') quoted = !quoted;
    if (quoted) continue;
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  return out;
}

function parseType(type: string): { name: string; args: string[] } {
  const open = type.indexOf('(');
  if (open < 0) return { name: type, args: [] };
  return { name: type.slice(0, open), args: splitArgs(type.slice(open + 1, type.lastIndexOf(')'))) };
}

const FIXED: Record<string, number> = {
  UInt8: 1,
  Int8: 1,
  Bool: 1,
  Enum8: 1,
  UInt16: 2,
  Int16: 2,
  Date: 2,
  Enum16: 2,
  BFloat16: 2,
  UInt32: 4,
  Int32: 4,
  Float32: 4,
  Date32: 4,
  IPv4: 4,
  UInt64: 8,
  Int64: 8,
  Float64: 8,
  UInt128: 16,
  Int128: 16,
  UUID: 16,
  IPv6: 16,
  UInt256: 32,
  Int256: 32,
};

/** Strips a named tuple element's name: `a UInt8` → `UInt8`. */
const elementType = (a: string) => a.replace(/^[A-Za-z_][A-Za-z0-9_]*\s+(?=[A-Z])/, '');

/**
 * The column's state prefix, read before its data (ReadStatePrefix in clickhouse-go, the
 * serializeBinaryBulkStatePrefix of ClickHouse): LowCardinality's key version, 1
 * (SharedDictionariesWithAdditionalKeys), for every LowCardinality in the type, nested ones too,
 * so for `Array(LowCardinality(String))` it precedes the array offsets.
 */
function readPrefix(r: Reader, type: string): void {
  const { name, args } = parseType(type);
  switch (name) {
    case 'LowCardinality':
      expect(r.u64()).toBe(1n);
      return;
    case 'Nullable':
    case 'Array':
      readPrefix(r, args[0]);
      return;
    case 'Tuple':
      for (const a of args) readPrefix(r, elementType(a));
      return;
    case 'Map':
      readPrefix(r, args[0]);
      readPrefix(r, args[1]);
      return;
  }
}

/** Reads `rows` values of `type`, as clickhouse-go's column.Type(...).Column(...).Decode would. */
function readColumn(r: Reader, type: string, rows: number): unknown[] {
  // No rows, no bytes: an empty array's LowCardinality has no index type either (and clickhouse-go's
  // LowCardinality.Decode returns at once).
  if (rows === 0) return [];
  const { name, args } = parseType(type);
  switch (name) {
    case 'String':
      return Array.from({ length: rows }, () => r.str());
    case 'FixedString':
      return Array.from({ length: rows }, () => r.take(Number(args[0])).toString('latin1'));
    case 'DateTime':
      return Array.from({ length: rows }, () => new Date(r.take(4).readUInt32LE() * 1000));
    case 'DateTime64': {
      const scale = 10n ** BigInt(Number(args[0]));
      return Array.from(
        { length: rows },
        () => new Date(Number((r.take(8).readBigInt64LE() * 1000n) / scale)),
      );
    }
    case 'Decimal': {
      const p = Number(args[0]);
      const width = p <= 9 ? 4 : p <= 18 ? 8 : p <= 38 ? 16 : 32;
      return Array.from({ length: rows }, () => r.take(width));
    }
    case 'Nullable': {
      const nulls = [...r.take(rows)];
      const values = readColumn(r, args[0], rows);
      return values.map((v, i) => (nulls[i] ? null : v));
    }
    case 'Array': {
      const ends = Array.from({ length: rows }, () => Number(r.u64()));
      const items = readColumn(r, args[0], ends.at(-1) ?? 0);
      return ends.map((end, i) => items.slice(i === 0 ? 0 : ends[i - 1], end));
    }
    case 'Tuple': {
      const elements = args.map((a) => readColumn(r, elementType(a), rows));
      return Array.from({ length: rows }, (_, i) => elements.map((e) => e[i]));
    }
    case 'Map':
      return readColumn(r, `Array(Tuple(${args[0]}, ${args[1]}))`, rows);
    case 'LowCardinality': {
      // After the prefix: index type and flags, the dictionary (the inner type without Nullable:
      // key 0 is NULL), the indexes; one granule, as clickhouse-go reads it.
      const flags = Number(r.u64());
      const width = [1, 2, 4, 8][flags & 0xff];
      const inner = parseType(args[0]);
      const nullable = inner.name === 'Nullable';
      const keys = readColumn(r, nullable ? inner.args[0] : args[0], Number(r.u64()));
      const count = Number(r.u64());
      return Array.from({ length: count }, () => {
        const b = r.take(width);
        const index = width === 8 ? Number(b.readBigUInt64LE()) : b.readUIntLE(0, width);
        return nullable && index === 0 ? null : keys[index];
      });
    }
    default: {
      const width = FIXED[name];
      if (width === undefined) throw new Error(`clickhouse [Decode]: unsupported column type "${type}"`);
      const bytes = r.take(width * rows);
      if (name === 'Float64') return Array.from({ length: rows }, (_, i) => bytes.readDoubleLE(i * 8));
      if (name === 'Float32') return Array.from({ length: rows }, (_, i) => bytes.readFloatLE(i * 4));
      if (name === 'UInt64') return Array.from({ length: rows }, (_, i) => bytes.readBigUInt64LE(i * 8));
      if (name === 'Int64') return Array.from({ length: rows }, (_, i) => bytes.readBigInt64LE(i * 8));
      if (width <= 4 && name.startsWith('UInt'))
        return Array.from({ length: rows }, (_, i) => bytes.readUIntLE(i * width, width));
      if (width <= 4 && name.startsWith('Int'))
        return Array.from({ length: rows }, (_, i) => bytes.readIntLE(i * width, width));
      if (name === 'Bool') return [...bytes].map((b) => b !== 0);
      return Array.from({ length: rows }, (_, i) => bytes.subarray(i * width, (i + 1) * width));
    }
  }
}

/** Every block of a Native body, read as clickhouse-go reads them at `revision`; the body must be used up. */
function decodeNative(body: Buffer, revision: number): Block[] {
  const r = new Reader(body);
  const blocks: Block[] = [];
  while (!r.done) {
    if (revision > 0) {
      // decodeBlockInfo: field 1, is_overflows, field 2, bucket_num, field 0. clickhouse-go does not
      // check the values; a server writes exactly these (not overflows, bucket -1).
      expect([r.uvarint(), r.take(1)[0], r.uvarint(), r.take(4).readInt32LE(), r.uvarint()]).toEqual([
        1, 0, 2, -1, 0,
      ]);
    }
    const numColumns = r.uvarint();
    const rows = r.uvarint();
    if (rows > 1_000_000_000) throw new Error('more than 1 billion rows in block');
    const columns: Column[] = [];
    for (let i = 0; i < numColumns; i++) {
      const name = r.str();
      const type = r.str();
      if (revision >= MIN_REVISION_WITH_CUSTOM_SERIALIZATION && r.take(1)[0] !== 0) {
        throw new Error(`custom serialization for column ${name}. not supported by clickhouse-go driver`);
      }
      if (rows > 0) readPrefix(r, type);
      columns.push({ name, type, values: rows > 0 ? readColumn(r, type, rows) : [] });
    }
    blocks.push({ rows, columns });
  }
  return blocks;
}

/** One block's column names, types and rows, or all blocks' values of one column. */
const header = (b: Block) => ({
  rows: b.rows,
  names: b.columns.map((c) => c.name),
  types: b.columns.map((c) => c.type),
});
const values = (blocks: Block[], name: string) =>
  blocks.flatMap((b) => b.columns.find((c) => c.name === name)?.values ?? []);

/**
 * A reference for the store's re-framing, independent of it: chDB's revision-0 Native with BlockInfo
 * (1, false, 2, -1, 0) before each block and has_custom = 0 after each column's type, which is
 * what a ClickHouse server writes for client_protocol_version ≥ 54454 (NativeWriter).
 */
function withClientRevision(body: Buffer): Buffer {
  const r = new Reader(body);
  const out: Buffer[] = [];
  while (!r.done) {
    out.push(Buffer.from([1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0]));
    let start = r.pos;
    const numColumns = r.uvarint();
    const rows = r.uvarint();
    for (let i = 0; i < numColumns; i++) {
      r.str();
      const type = r.str();
      out.push(body.subarray(start, r.pos), Buffer.from([0]));
      start = r.pos;
      if (rows > 0) {
        readPrefix(r, type);
        readColumn(r, type, rows);
      }
    }
    out.push(body.subarray(start, r.pos));
  }
  return Buffer.concat(out);
}

// --- The requests ---------------------------------------------------------------------------------

const HELLO = 'SELECT displayName(), version(), revision(), timezone()';
const PING = 'SELECT 1';
const VERSION = 'SELECT version()';
// $__timeInterval(time) and $__timeFilter(time), expanded by the plugin (pkg/macros) before sending.
const SERIES = `SELECT toStartOfInterval(toDateTime(time), INTERVAL 10 second) AS time, method, count() AS messages
FROM sip_messages
WHERE time >= toDateTime(${FROM}) AND time <= toDateTime(${TO}) AND is_request
GROUP BY time, method
ORDER BY time`;
const TABLE = `SELECT start, call_id, from_user, to_user, caller_ip, outcome, final_status, pdd_ms, duration_sec, linked_call_ids
FROM calls FINAL
WHERE start >= toDateTime(${FROM}) AND start <= toDateTime(${TO})
ORDER BY start DESC
LIMIT 100`;

/** A reply decoded as clickhouse-go decodes replies after the handshake: at the server's revision. */
const decodeGo = (reply: Reply) => decodeNative(payload(reply), serverRevision);

/**
 * A decoded value in a form comparable with the JSON output of the same value (JSONCompact with
 * 64-bit integers quoted and ISO date-times): what clickhouse-go reads must be what the engine meant.
 */
function fromNative(type: string, v: unknown): unknown {
  const { name, args } = parseType(type);
  if (v === null) return null;
  switch (name) {
    case 'Nullable':
    case 'LowCardinality':
      return fromNative(args[0], v);
    case 'Array':
      return (v as unknown[]).map((e) => fromNative(args[0], e));
    case 'Map':
      return Object.fromEntries(
        (v as Array<[unknown, unknown]>).map(([k, x]) => [
          String(fromNative(args[0], k)),
          fromNative(args[1], x),
        ]),
      );
    case 'DateTime':
    case 'DateTime64':
      return (v as Date).getTime();
    default:
      return typeof v === 'bigint' ? String(v) : v;
  }
}

function fromJson(type: string, v: unknown): unknown {
  const { name, args } = parseType(type);
  if (v === null) return null;
  switch (name) {
    case 'Nullable':
    case 'LowCardinality':
      return fromJson(args[0], v);
    case 'Array':
      return (v as unknown[]).map((e) => fromJson(args[0], e));
    case 'Map':
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, fromJson(args[1], x)]),
      );
    case 'DateTime':
    case 'DateTime64': {
      // ISO with up to 9 digits; clickhouse-go's time.Time is compared at millisecond precision.
      const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(v as string);
      if (!m) throw new Error(`not an ISO date-time: ${String(v)}`);
      return Date.parse(`${m[1]}Z`) + Number((m[2] ?? '').padEnd(3, '0').slice(0, 3));
    }
    case 'Float32':
      return Math.fround(v as number);
    default:
      return v;
  }
}

const tableColumns = [...DATA_TABLES, SCHEMA_MIGRATIONS].map((t) => ({
  table: t.name,
  columns: t.columns.map((c) => `\`${c.name}\``).join(', '),
  structure: t.columns.map((c) => `\`${c.name}\` ${c.type}`).join(', '),
}));

describe('Grafana ClickHouse data source (protocol http) against callscope store', () => {
  it('connect: the server hello is Native at the client revision, what clickhouse-go reads', async () => {
    const reply = await goQuery(HELLO, { maxExecutionTime: DIAL_MAX_EXECUTION_TIME });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/octet-stream');
    expect(reply.headers['x-clickhouse-format']).toBe('Native');
    // Accept-Encoding: gzip without enable_http_compression=1: identity, which clickhouse-go reads as is.
    expect(reply.headers['content-encoding']).toBeUndefined();
    expect(Number(reply.headers['content-length'])).toBe(reply.body.length);
    // BlockInfo first (field 1 is_overflows 0, field 2 bucket_num -1, end), then 4 columns, 1 row.
    expect([...reply.body.subarray(0, 10)]).toEqual([1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0, 4, 1]);
    const [block] = decodeNative(payload(reply), CLIENT_REVISION);
    expect(header(block)).toEqual({
      rows: 1,
      names: ['displayName()', 'version()', 'revision()', 'timezone()'],
      types: ['String', 'String', 'UInt32', 'String'],
    });
    const [, version, revision, timezone] = block.columns.map((c) => c.values[0]);
    expect(version).toBe(store.version);
    expect(revision).toBeGreaterThanOrEqual(MIN_REVISION_WITH_CUSTOM_SERIALIZATION);
    expect(revision).toBe(serverRevision);
    expect(timezone).toBe(reply.headers['x-clickhouse-timezone']);
  });

  it('clients without client_protocol_version (@clickhouse/client, curl) get revision-0 Native, unchanged', async () => {
    const reply = await goQuery(HELLO, { noRevision: true });
    expect(reply.status).toBe(200);
    // The body starts with the column count (4): no BlockInfo, no has_custom bytes.
    expect(reply.body[0]).toBe(4);
    expect(() => decodeNative(payload(reply), CLIENT_REVISION)).toThrow();
    expect(decodeNative(payload(reply), 0)[0].columns[1].values[0]).toBe(store.version);
  });

  it('connect, ping, version and panels decode at the client revision', async () => {
    const hello = decodeNative(
      payload(await goQuery(HELLO, { maxExecutionTime: DIAL_MAX_EXECUTION_TIME })),
      CLIENT_REVISION,
    );
    const revision = Number(hello[0].columns[2].values[0]);
    for (const sql of [PING, VERSION, SERIES, TABLE]) {
      const reply = await goQuery(sql, { database: 'callscope' });
      expect(reply.status).toBe(200);
      expect(decodeNative(payload(reply), revision).length).toBeGreaterThan(0);
    }
  });

  it('the store adds exactly the bytes a server adds: BlockInfo and has_custom, nothing else', async () => {
    for (const sql of [HELLO, PING, SERIES, TABLE]) {
      const plain = payload(await goQuery(sql, { database: 'callscope', noRevision: true }));
      const framed = payload(await goQuery(sql, { database: 'callscope' }));
      expect(framed.equals(withClientRevision(plain))).toBe(true);
      expect(decodeNative(framed, CLIENT_REVISION)).toEqual(decodeNative(plain, 0));
    }
  });

  it('ping (database/sql PingContext → SELECT 1) returns the column "1" clickhouse-go checks for', async () => {
    const reply = await goQuery(PING, { maxExecutionTime: DIAL_MAX_EXECUTION_TIME });
    expect(reply.status).toBe(200);
    const [block] = decodeGo(reply);
    expect(header(block)).toEqual({ rows: 1, names: ['1'], types: ['UInt8'] });
    expect(block.columns[0].values).toEqual([1]);
  });

  it('SELECT version() (CheckMinServerVersion) answers a x.y.z version', async () => {
    const [block] = decodeGo(await goQuery(VERSION));
    expect(header(block)).toEqual({ rows: 1, names: ['version()'], types: ['String'] });
    expect(block.columns[0].values[0]).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('a time series panel over sip_messages (toStartOfInterval, $__timeFilter)', async () => {
    const reply = await goQuery(SERIES, { database: 'callscope' });
    expect(reply.status).toBe(200);
    const blocks = decodeGo(reply);
    expect(header(blocks[0]).names).toEqual(['time', 'method', 'messages']);
    expect(header(blocks[0]).types).toEqual(['DateTime', 'LowCardinality(String)', 'UInt64']);
    const times = values(blocks, 'time') as Date[];
    expect(times.length).toBeGreaterThan(0);
    for (const t of times) {
      expect(t.getTime() % 10_000).toBe(0);
      expect(t.getTime() / 1000).toBeGreaterThanOrEqual(FROM - 10);
    }
    expect(new Set(values(blocks, 'method'))).toContain('INVITE');
    const total = (values(blocks, 'messages') as bigint[]).reduce((a, b) => a + b, 0n);
    const expected = await goQuery(
      `SELECT count() FROM sip_messages WHERE time >= toDateTime(${FROM}) AND time <= toDateTime(${TO}) AND is_request`,
      { database: 'callscope' },
    );
    expect(total).toBe(values(decodeGo(expected), 'count()')[0]);
  });

  it('a table panel over calls (DateTime64, LowCardinality, Nullable, Float64, Array)', async () => {
    const reply = await goQuery(TABLE, { database: 'callscope', settings: { limit: '1000000' } });
    expect(reply.status).toBe(200);
    const blocks = decodeGo(reply);
    expect(header(blocks[0]).types).toEqual([
      "DateTime64(3, 'UTC')",
      'String',
      'String',
      'String',
      'LowCardinality(String)',
      'LowCardinality(String)',
      'Nullable(UInt16)',
      'Nullable(Int64)',
      'Float64',
      'Array(String)',
    ]);
    const callIds = values(blocks, 'call_id') as string[];
    expect(callIds.length).toBe(40);
    expect(new Set(callIds).size).toBe(40);
    const starts = values(blocks, 'start') as Date[];
    expect(starts.every((d, i) => i === 0 || d <= starts[i - 1])).toBe(true);
  });

  it('every column of every callscope table decodes to the values of the JSON output', async () => {
    const seen = new Set<string>();
    let tablesWithRows = 0;
    for (const { table, columns } of tableColumns) {
      const sql = `SELECT ${columns} FROM callscope.${table} LIMIT 1`;
      const reply = await goQuery(`${sql} FORMAT Native`);
      expect(reply.status, reply.body.toString()).toBe(200);
      const blocks = decodeGo(reply);
      const json = await goQuery(`${sql} FORMAT JSONCompact`, {
        settings: { output_format_json_quote_64bit_integers: '1', date_time_output_format: 'iso' },
      });
      expect(json.status).toBe(200);
      const { meta, data } = JSON.parse(json.body.toString()) as {
        meta: Array<{ name: string; type: string }>;
        data: unknown[][];
      };
      if (data.length === 0) {
        expect(blocks).toEqual([]);
        continue;
      }
      tablesWithRows++;
      expect(blocks.flatMap((b) => b.columns.map((c) => [c.name, c.type]))).toEqual(
        meta.map((m) => [m.name, m.type]),
      );
      const row = blocks[0].columns.map((c) => fromNative(c.type, c.values[0]));
      expect(row).toEqual(data[0].map((v, i) => fromJson(meta[i].type, v)));
      for (const m of meta) seen.add(m.type);
    }
    expect(tablesWithRows).toBeGreaterThanOrEqual(5);
    for (const type of [
      "DateTime64(9, 'UTC')",
      'LowCardinality(String)',
      'LowCardinality(Nullable(String))',
      'Nullable(UInt16)',
      'Array(UInt32)',
      'Array(LowCardinality(String))',
      'Map(LowCardinality(String), Float64)',
      'Bool',
    ]) {
      expect(seen).toContain(type);
    }
  });

  it('every table structure, with random values (generateRandom), re-framed byte for byte', async () => {
    // The sample leaves some tables empty: random rows cover their types too.
    for (const { structure } of tableColumns) {
      const sql = `SELECT * FROM generateRandom('${structure.replace(/'/g, "\\'")}', 42, 16, 4) LIMIT 50`;
      const plain = await goQuery(sql, { noRevision: true });
      expect(plain.status, plain.body.toString()).toBe(200);
      const framed = await goQuery(sql);
      expect(framed.status, framed.body.toString()).toBe(200);
      expect(framed.body.equals(withClientRevision(plain.body))).toBe(true);
      expect(decodeGo(framed)).toEqual(decodeNative(plain.body, 0));
    }
  });

  it('a result of several blocks: BlockInfo before each', async () => {
    const reply = await goQuery('SELECT number FROM numbers(200000)', {
      settings: { max_block_size: '65536' },
    });
    expect(reply.status).toBe(200);
    const blocks = decodeGo(reply);
    expect(blocks.length).toBeGreaterThan(1);
    for (const b of blocks) expect(b.rows).toBeLessThanOrEqual(65536);
    const numbers = values(blocks, 'number') as bigint[];
    expect(numbers.length).toBe(200000);
    expect(numbers.every((n, i) => n === BigInt(i))).toBe(true);
  });

  it('the query editor schema lookups, without a default database', async () => {
    const dbs = decodeGo(await goQuery('SHOW DATABASES'));
    expect(values(dbs, 'name')).toContain('callscope');
    const tables = decodeGo(await goQuery('SHOW TABLES FROM "callscope"'));
    expect(values(tables, 'name')).toEqual(expect.arrayContaining(['calls', 'sip_messages']));
    const desc = decodeGo(await goQuery('DESC TABLE "callscope"."calls"'));
    expect(values(desc, 'name')).toContain('call_id');
  });

  it('gzip replies when a custom setting asks for them (enable_http_compression=1)', async () => {
    const reply = await goQuery(TABLE, { database: 'callscope', settings: { enable_http_compression: '1' } });
    expect(reply.headers['content-encoding']).toBe('gzip');
    const plain = await goQuery(TABLE, { database: 'callscope' });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(payload(reply).equals(plain.body)).toBe(true);
    expect(values(decodeGo(reply), 'call_id').length).toBe(40);
  });

  it('a type the store cannot re-frame: a NOT_IMPLEMENTED exception, not bytes clickhouse-go misreads', async () => {
    for (const sql of [
      'SELECT 1::Dynamic AS d',
      "SELECT 'a'::Variant(String, UInt8) AS v",
      'SELECT sumState(1) AS s',
    ]) {
      const reply = await goQuery(sql);
      expect(reply.status).toBe(500);
      expect(reply.headers['x-clickhouse-exception-code']).toBe('48');
      expect(reply.body.toString()).toMatch(
        /^Code: 48\. DB::Exception: .*client_protocol_version.*\(NOT_IMPLEMENTED\)/,
      );
      // Without client_protocol_version the bytes go out as chDB wrote them.
      expect((await goQuery(sql, { noRevision: true })).status).toBe(200);
    }
  });

  it('errors: non-200 with "DB::Exception" text, which the plugin reports as a downstream error', async () => {
    const reply = await goQuery('SELECT nope FROM calls', { database: 'callscope' });
    expect(reply.status).not.toBe(200);
    expect(reply.headers['x-clickhouse-exception-code']).toBe('47');
    expect(reply.body.toString()).toMatch(/^Code: 47\. DB::Exception: .*UNKNOWN_IDENTIFIER/);
  });

  it('refuses a Grafana that reaches it by another host name (e.g. from a container)', async () => {
    const reply = await goQuery(PING, { host: 'host.docker.internal:8123' });
    expect(reply.status).toBe(403);
  });

  it('a request with an empty result has Content-Length 0 (clickhouse-go: no columns, no rows)', async () => {
    const reply = await goQuery('SELECT call_id FROM calls WHERE 0', { database: 'callscope' });
    expect(reply.status).toBe(200);
    expect(reply.headers['content-length']).toBe('0');
    expect(decodeGo(reply)).toEqual([]);
  });
});
