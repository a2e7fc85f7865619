import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { type ClickHouseClient, ClickHouseError, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../schema/migrate.js';
import { EmbeddedStore } from './embedded.js';
import { StoreError, StoreExit, StoreLockedError, StoreNotFoundError } from './errors.js';
import { holdStoreInChild, startStoreInChild } from './test-child.js';

// Real chDB behind the real @clickhouse/client: every test goes through the HTTP interface.
let dir: string;
let store: EmbeddedStore;
let client: ClickHouseClient;

const MAX_BODY = 8 * 1024 * 1024;

async function start(options: { mustExist?: boolean } = {}): Promise<void> {
  store = await EmbeddedStore.start({ dataDir: dir, maxBodyBytes: MAX_BODY, ...options });
  client = connect();
}

/** A client of the store; its own error log is off, failures are asserted instead. */
function connect(options: Parameters<typeof createClient>[0] = {}): ClickHouseClient {
  return createClient({ url: store.url, log: { level: ClickHouseLogLevel.OFF }, ...options });
}

async function stop(): Promise<void> {
  await client?.close();
  await store?.close();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'callscope-store-'));
  await start();
});

afterAll(async () => {
  await stop();
  rmSync(dir, { recursive: true, force: true });
});

const hex = (value: string | Buffer) => Buffer.from(value).toString('hex').toUpperCase();

async function rows<T>(query: string, query_params?: Record<string, unknown>): Promise<T[]> {
  const rs = await client.query({
    query,
    query_params,
    format: 'JSONEachRow',
    clickhouse_settings: { output_format_json_quote_64bit_integers: 1 },
  });
  return rs.json<T>();
}

async function scalar(query: string, query_params?: Record<string, unknown>): Promise<string> {
  const rs = await client.query({ query, query_params, format: 'TabSeparated' });
  return (await rs.text()).replace(/\n$/, '');
}

async function raw(path: string, init?: RequestInit): Promise<Response> {
  return fetch(`${store.url}${path}`, init);
}

describe('embedded store over HTTP', () => {
  it('answers ping, with the client and as /ping', async () => {
    expect(store.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await client.ping()).toEqual({ success: true });
    expect((await client.ping({ select: true })).success).toBe(true);
    const res = await raw('/ping');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('Ok.\n');
    const missing = await raw('/nope');
    expect(missing.status).toBe(404);
    // No authentication, so web pages are kept out: browsers send Origin, DNS rebinding a foreign Host.
    const page = await raw('/', {
      method: 'POST',
      body: 'SELECT 1',
      headers: { Origin: 'https://evil.example' },
    });
    expect(page.status).toBe(403);
    expect(page.headers.get('x-clickhouse-exception-code')).toBe('497');
    // fetch() will not send a foreign Host; node:http will.
    const rebound = await new Promise<number | undefined>((resolve, reject) => {
      const url = new URL(store.url);
      request(
        { host: url.hostname, port: url.port, path: '/?query=SELECT+1', headers: { Host: 'evil.example' } },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      )
        .on('error', reject)
        .end();
    });
    expect(rebound).toBe(403);
  });

  it("serves callscope's database to requests that name none, created on a fresh store", async () => {
    expect(store.defaultDatabase).toBe('callscope');
    // Fresh: nothing migrated yet, and still no UNKNOWN_DATABASE.
    expect(await scalar('SHOW TABLES')).toBe('');
    await migrate(client, { database: 'callscope', ttlDays: 0 });
    expect(await scalar('SELECT currentDatabase()')).toBe('callscope');
    expect((await scalar('SHOW TABLES')).split('\n')).toContain('sip_messages');
    const columns = await rows<{ name: string }>('DESCRIBE TABLE sip_messages');
    expect(columns.map((c) => c.name)).toContain('call_id');

    // What curl or Grafana send: no database parameter, no header.
    const post = (body: string, path = '/', headers: Record<string, string> = {}) =>
      raw(path, { method: 'POST', body, headers }).then(async (r) => ({
        status: r.status,
        text: await r.text(),
      }));
    expect(await post('SELECT currentDatabase()')).toEqual({ status: 200, text: 'callscope\n' });
    expect((await post('SHOW TABLES')).text.split('\n')).toContain('sip_messages');
    const described = await raw(`/?query=${encodeURIComponent('DESCRIBE TABLE sip_messages')}`);
    expect(described.status).toBe(200);
    expect(await described.text()).toMatch(/^event_id\tUInt64/m);
  });

  it('still serves the database a request names, by parameter or header (the header first)', async () => {
    const current = (path: string, headers: Record<string, string> = {}) =>
      raw(path, { method: 'POST', body: 'SELECT currentDatabase()', headers }).then((r) => r.text());
    expect(await current('/?database=system')).toBe('system\n');
    expect(await current('/?database=default')).toBe('default\n');
    expect(await current('/', { 'X-ClickHouse-Database': 'system' })).toBe('system\n');
    expect(await current('/?database=default', { 'X-ClickHouse-Database': 'system' })).toBe('system\n');
    const other = connect({ database: 'system' });
    try {
      const rs = await other.query({ query: 'SELECT currentDatabase() AS db', format: 'JSONEachRow' });
      expect(await rs.json()).toEqual([{ db: 'system' }]);
    } finally {
      await other.close();
    }
  });

  it('runs DDL commands', async () => {
    await client.command({ query: 'CREATE DATABASE IF NOT EXISTS cs' });
    await client.command({
      query:
        'CREATE TABLE IF NOT EXISTS cs.events (id UInt32, name String, tags Array(String)) ENGINE = MergeTree ORDER BY id',
    });
    expect(await scalar('EXISTS TABLE cs.events')).toBe('1');
  });

  it('inserts JSONEachRow, JSONCompactEachRow and TabSeparated, as arrays and streams', async () => {
    await client.command({
      query: 'CREATE TABLE ins (id UInt32, name String, tags Array(String)) ENGINE = MergeTree ORDER BY id',
    });
    const r1 = await client.insert({
      table: 'ins',
      values: [
        { id: 1, name: 'a', tags: ['x'] },
        { id: 2, name: 'b', tags: [] },
      ],
      format: 'JSONEachRow',
    });
    expect(r1.executed).toBe(true);
    expect(r1.summary?.written_rows).toBe('2');
    await client.insert({ table: 'ins', values: [[3, 'c', ['y', 'z']]], format: 'JSONCompactEachRow' });
    await client.insert({
      table: 'ins',
      values: Readable.from([{ id: 4, name: 'd', tags: ['s'] }]),
      format: 'JSONEachRow',
    });
    await client.insert({
      table: 'ins',
      values: Readable.from(['5\te\t[]\n', "6\tf\t['t']\n"], { objectMode: false }),
      format: 'TabSeparated',
    });
    await client.insert({
      table: 'ins',
      columns: ['id', 'name'],
      values: [[7, 'g']],
      format: 'JSONCompactEachRow',
    });
    expect(await rows('SELECT id, name, tags FROM ins ORDER BY id')).toEqual([
      { id: 1, name: 'a', tags: ['x'] },
      { id: 2, name: 'b', tags: [] },
      { id: 3, name: 'c', tags: ['y', 'z'] },
      { id: 4, name: 'd', tags: ['s'] },
      { id: 5, name: 'e', tags: [] },
      { id: 6, name: 'f', tags: ['t'] },
      { id: 7, name: 'g', tags: [] },
    ]);
  });

  it('answers in the requested format with the headers of a server', async () => {
    const q = 'SELECT number AS n, toString(number) AS s FROM numbers(2)';
    const each = await client.query({ query: q, format: 'JSONEachRow' });
    expect(each.response_headers['x-clickhouse-format']).toBe('JSONEachRow');
    expect(each.response_headers['content-type']).toMatch(/^application\/json/);
    expect(each.query_id).toBe(each.response_headers['x-clickhouse-query-id']);
    // 64-bit integers are JSON numbers: output_format_json_quote_64bit_integers is 0 by default in
    // this engine version (older servers quote them; set it explicitly where it matters).
    expect(await each.json()).toEqual([
      { n: 0, s: '0' },
      { n: 1, s: '1' },
    ]);
    const json = await (await client.query({ query: q, format: 'JSON' })).json<{ n: string; s: string }>();
    expect(json.data).toEqual([
      { n: 0, s: '0' },
      { n: 1, s: '1' },
    ]);
    expect(json.meta).toEqual([
      { name: 'n', type: 'UInt64' },
      { name: 's', type: 'String' },
    ]);
    expect(json.rows).toBe(2);
    const compact = await client.query({
      query: q,
      format: 'JSONCompactEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 1 },
    });
    expect(await compact.json()).toEqual([
      ['0', '0'],
      ['1', '1'],
    ]);
    const tsv = await client.query({ query: q, format: 'TabSeparated' });
    expect(tsv.response_headers['content-type']).toMatch(/^text\/tab-separated-values/);
    expect(await tsv.text()).toBe('0\t0\n1\t1\n');
    expect(await (await client.query({ query: q, format: 'CSV' })).text()).toBe('0,"0"\n1,"1"\n');

    const summary = JSON.parse(
      (await raw(`/?query=${encodeURIComponent(q)}`)).headers.get('x-clickhouse-summary') ?? '',
    );
    expect(summary.read_rows).toBe('2');
    for (const value of Object.values(summary)) expect(typeof value).toBe('string');
  });

  it('binds String, UInt64, Array(String) and DateTime64(9) parameters server-side', async () => {
    const [row] = await rows<Record<string, unknown>>(
      'SELECT {s:String} AS s, {n:UInt64} AS n, {a:Array(String)} AS a, {d:DateTime64(9)} AS d, {t:DateTime64(9)} AS t',
      {
        s: 'hello',
        n: 18446744073709551615n,
        a: ['x', "it's", 'back\\slash'],
        d: '2024-01-02 03:04:05.123456789',
        t: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)),
      },
    );
    expect(row).toEqual({
      s: 'hello',
      n: '18446744073709551615',
      a: ['x', "it's", 'back\\slash'],
      d: '2024-01-02 03:04:05.123456789',
      t: '2024-01-02 03:04:05.678000000',
    });
    // A value is data, never SQL: a parameter holding a placeholder or SQL stays a string.
    expect(await scalar('SELECT {s:String}', { s: "{s:String}'); DROP TABLE ins; --" })).toBe(
      "{s:String}\\'); DROP TABLE ins; --",
    );
    expect(await scalar('SELECT count() FROM ins')).toBe('7');
  });

  const hostile = [
    `it's "double" \`back\``,
    'back\\slash \\\\ \\x41 \\N \\ trailing\\',
    '\\N',
    'NULL',
    'nul\0byte\0',
    'ctl\t\n\r\b\f\v\x07\x1b\x7f',
    "'); DROP TABLE hostile; --",
    "' OR 1=1 --",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a template placeholder as data
    '{s:String} ${x} %s %00',
    'ß漢字😀\u2028\uFEFF',
    `${"'\\\0\t".repeat(4096)}${'x'.repeat(65536 - 16384)}`,
  ];

  it('stores and reads back hostile strings byte for byte, as parameters and as data', async () => {
    await client.command({
      query: 'CREATE TABLE hostile (id UInt32, s String) ENGINE = MergeTree ORDER BY id',
    });
    await client.insert({
      table: 'hostile',
      values: hostile.map((s, id) => ({ id, s })),
      format: 'JSONEachRow',
    });
    for (const [id, s] of hostile.entries()) {
      expect(await scalar('SELECT hex({s:String})', { s }), `param ${id}`).toBe(hex(s));
      expect(await scalar('SELECT hex(s) FROM hostile WHERE id = {id:UInt32}', { id }), `row ${id}`).toBe(
        hex(s),
      );
      expect(await scalar('SELECT count() FROM hostile WHERE s = {s:String}', { s }), `match ${id}`).toBe(
        '1',
      );
    }
    const all = await scalar('SELECT arrayMap(x -> hex(x), {a:Array(String)})', { a: hostile.slice(0, 10) });
    expect(JSON.parse(all.replace(/'/g, '"'))).toEqual(hostile.slice(0, 10).map(hex));
    // Long parameters travel in a multipart body when asked (the client does so past 4 KiB in auto mode).
    const rs = await client.query({
      query: 'SELECT hex({s:String}) AS h',
      query_params: { s: hostile[10] },
      format: 'JSONEachRow',
      use_multipart_params: true,
    });
    expect(await rs.json()).toEqual([{ h: hex(hostile[10]) }]);
  });

  it('keeps invalid UTF-8 bytes of TabSeparated data exactly', async () => {
    const value = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x5c, 0x09, 0x0a, 0x27, 0xed, 0xa0, 0x80]);
    const escaped = Buffer.from(
      [...value].flatMap((b) =>
        b === 0x5c ? [0x5c, 0x5c] : b === 0x09 ? [0x5c, 0x74] : b === 0x0a ? [0x5c, 0x6e] : [b],
      ),
    );
    const tsv = Buffer.concat([Buffer.from('100\t'), escaped, Buffer.from('\n')]);
    await client.insert({
      table: 'hostile',
      values: Readable.from([tsv], { objectMode: false }),
      format: 'TabSeparated',
    });
    expect(await scalar('SELECT hex(s) FROM hostile WHERE id = 100')).toBe(hex(value));
    // The same bytes back out unchanged in a binary-safe format.
    const res = await raw(
      `/?query=${encodeURIComponent('SELECT s FROM hostile WHERE id = 100 FORMAT RawBLOB')}`,
    );
    expect(Buffer.from(await res.arrayBuffer()).equals(value)).toBe(true);
  });

  it('inserts binary formats byte for byte (RowBinary, Parquet)', async () => {
    await client.command({ query: 'CREATE TABLE bin (id UInt32, b String) ENGINE = MergeTree ORDER BY id' });
    const source = "SELECT number::UInt32 AS id, unhex('FF00FE80') AS b FROM numbers(3)";
    const rowBinary = await (
      await raw(`/?query=${encodeURIComponent(`${source} FORMAT RowBinary`)}`)
    ).arrayBuffer();
    const res = await raw(`/?query=${encodeURIComponent('INSERT INTO bin FORMAT RowBinary')}`, {
      method: 'POST',
      body: Buffer.from(rowBinary),
    });
    expect(res.status).toBe(200);
    const parquet = await (
      await raw(`/?query=${encodeURIComponent(`${source} FORMAT Parquet`)}`)
    ).arrayBuffer();
    await client.insert({
      table: 'bin',
      values: Readable.from([Buffer.from(parquet)], { objectMode: false }),
      format: 'Parquet',
    });
    expect(await scalar("SELECT count(), countIf(b = unhex('FF00FE80')) FROM bin")).toBe('6\t6');
  });

  it('applies clickhouse_settings to that request only', async () => {
    const setting = "SELECT getSetting('max_block_size')";
    const before = await scalar(setting);
    expect(
      await (
        await client.query({
          query: setting,
          format: 'TabSeparated',
          clickhouse_settings: { max_block_size: '1234' },
        })
      ).text(),
    ).toBe('1234\n');
    for (let i = 0; i < 5; i++) expect(await scalar(setting)).toBe(before);
    // Settings of inserts go with the insert.
    await client.insert({
      table: 'ins',
      values: [{ id: 8, name: 'h', unknown: 1 }],
      format: 'JSONEachRow',
      clickhouse_settings: { input_format_skip_unknown_fields: 1 },
    });
    await expect(
      client.insert({
        table: 'ins',
        values: [{ id: 9, name: 'i', unknown: 1 }],
        format: 'JSONEachRow',
        clickhouse_settings: { input_format_skip_unknown_fields: 0 },
      }),
    ).rejects.toMatchObject({ type: 'INCORRECT_DATA' });
    // An unknown setting fails as on a server.
    const unknown = await raw('/?query=SELECT+1&no_such_setting=1');
    expect(unknown.headers.get('x-clickhouse-exception-code')).toBe('115');
    // A statement's own SET does not leak into later requests either.
    await client.command({ query: 'SET max_block_size = 777' });
    for (let i = 0; i < 5; i++) expect(await scalar(setting)).toBe(before);
  });

  it('stores a batch once when it is inserted twice with the same insert_deduplication_token', async () => {
    await client.command({
      query:
        'CREATE TABLE dedup (id UInt32) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 1000',
    });
    const batch = [{ id: 1 }, { id: 2 }, { id: 3 }];
    for (let i = 0; i < 2; i++) {
      await client.insert({
        table: 'dedup',
        values: batch,
        format: 'JSONEachRow',
        clickhouse_settings: { insert_deduplication_token: 'batch-0001' },
      });
    }
    expect(await scalar('SELECT count() FROM dedup')).toBe('3');
    await client.insert({
      table: 'dedup',
      values: batch,
      format: 'JSONEachRow',
      clickhouse_settings: { insert_deduplication_token: 'batch-0002' },
    });
    expect(await scalar('SELECT count() FROM dedup')).toBe('6');
  });

  it('raises ClickHouseError with the code and type of a server', async () => {
    const unknown = await client.query({ query: 'SELECT * FROM no_such_table' }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(ClickHouseError);
    expect(unknown).toMatchObject({ code: '60', type: 'UNKNOWN_TABLE' });
    await expect(client.query({ query: 'SELEC 1' })).rejects.toMatchObject({
      code: '62',
      type: 'SYNTAX_ERROR',
    });
    await expect(
      client.command({ query: 'CREATE TABLE ins (x UInt8) ENGINE = Memory' }),
    ).rejects.toMatchObject({
      code: '57',
      type: 'TABLE_ALREADY_EXISTS',
    });
    await expect(
      client.insert({ table: 'ins', values: [{ id: 'x' }], format: 'JSONEachRow' }),
    ).rejects.toBeInstanceOf(ClickHouseError);
    const res = await raw(`/?query=${encodeURIComponent('SELECT * FROM no_such_table')}&query_id=q-1`);
    expect(res.status).toBe(500);
    expect(res.headers.get('x-clickhouse-exception-code')).toBe('60');
    expect(res.headers.get('x-clickhouse-query-id')).toBe('q-1');
    expect(await res.text()).toMatch(/^Code: 60\. DB::Exception: .*\(UNKNOWN_TABLE\) \(version [\d.]+\)\n$/s);
    // GET is read-only, as on a server.
    const get = await raw(`/?query=${encodeURIComponent('CREATE TABLE via_get (x UInt8) ENGINE = Memory')}`);
    expect(get.headers.get('x-clickhouse-exception-code')).toBe('164');
  });

  it('serves 50 concurrent queries', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        rows<{ i: number; c: string }>('SELECT {i:UInt32} AS i, count() AS c FROM numbers({n:UInt32})', {
          i,
          n: 1000 + i,
        }),
      ),
    );
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => [{ i, c: String(1000 + i) }]));
    const plain = await Promise.all(
      Array.from({ length: 50 }, (_, i) => scalar(`SELECT ${i} + sleepEachRow(0)`)),
    );
    expect(plain).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
  });

  it('accepts gzip-compressed request bodies and can compress responses', async () => {
    const gz = connect({ compression: { request: true, response: true } });
    try {
      await gz.insert({ table: 'ins', values: [{ id: 20, name: 'gz', tags: ['g'] }], format: 'JSONEachRow' });
      const rs = await gz.query({ query: 'SELECT name FROM ins WHERE id = 20', format: 'JSONEachRow' });
      expect(rs.response_headers['content-encoding']).toBe('gzip');
      expect(await rs.json()).toEqual([{ name: 'gz' }]);
    } finally {
      await gz.close();
    }
  });

  it('takes the query from the body, the query parameter or both, as a server does', async () => {
    const body = await raw('/', { method: 'POST', body: 'SELECT 1 + 1' });
    expect(await body.text()).toBe('2\n');
    expect(body.headers.get('x-clickhouse-format')).toBe('TabSeparated');
    const both = await raw(`/?query=${encodeURIComponent('SELECT 40 +')}&default_format=CSV`, {
      method: 'POST',
      body: '2',
    });
    expect(await both.text()).toBe('42\n');
    expect(both.headers.get('x-clickhouse-format')).toBe('CSV');
    const insert = await raw('/', {
      method: 'POST',
      body: 'INSERT INTO ins (id, name) FORMAT TSV\n30\tbody\n',
    });
    expect(insert.status).toBe(200);
    expect(await scalar('SELECT name FROM ins WHERE id = 30')).toBe('body');
    const empty = await raw('/', { method: 'POST' });
    expect(empty.status).toBe(400);
    expect(empty.headers.get('x-clickhouse-exception-code')).toBe('62');
  });

  it('refuses oversized bodies and survives clients that go away', async () => {
    const big = await raw(`/?query=${encodeURIComponent('INSERT INTO ins FORMAT TSV')}`, {
      method: 'POST',
      body: Buffer.alloc(MAX_BODY + 1, 0x41),
    });
    expect(big.status).toBe(413);
    expect(big.headers.get('x-clickhouse-exception-code')).toBe('290');
    const chunks = Array.from({ length: 9 }, () => new Uint8Array(1024 * 1024).fill(0x41));
    const chunked = await raw(`/?query=${encodeURIComponent('INSERT INTO ins FORMAT TSV')}`, {
      method: 'POST',
      body: new ReadableStream({
        pull(controller) {
          const chunk = chunks.pop();
          if (chunk) controller.enqueue(chunk);
          else controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    const bomb = await raw(`/?query=${encodeURIComponent('INSERT INTO ins FORMAT TSV')}`, {
      method: 'POST',
      headers: { 'Content-Encoding': 'gzip' },
      body: gzipSync(Buffer.alloc(MAX_BODY * 4)),
    });
    expect(bomb.status).toBe(413);
    const corrupt = await raw(`/?query=${encodeURIComponent('INSERT INTO ins FORMAT TSV')}`, {
      method: 'POST',
      headers: { 'Content-Encoding': 'gzip' },
      body: Buffer.from('not gzip at all'),
    });
    expect(corrupt.status).toBe(400);
    expect(corrupt.headers.get('x-clickhouse-exception-code')).toBe('271');
    const abort = new AbortController();
    const pending = raw(`/?query=${encodeURIComponent('SELECT sleep(0.3)')}`, { signal: abort.signal });
    setTimeout(() => abort.abort(), 50);
    await expect(pending).rejects.toThrow();
    const upload = new AbortController();
    const slow = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('1\tpartial\n'));
        setTimeout(() => upload.abort(), 50);
      },
    });
    await expect(
      raw(`/?query=${encodeURIComponent('INSERT INTO ins (id, name) FORMAT TSV')}`, {
        method: 'POST',
        body: slow,
        signal: upload.signal,
        duplex: 'half',
      } as RequestInit),
    ).rejects.toThrow();
    expect((await client.ping()).success).toBe(true);
    expect(await scalar("SELECT count() FROM ins WHERE name = 'partial'")).toBe('0');
  });

  it('refuses a second store on the same directory, in this process and in another', async () => {
    const inProcess = await EmbeddedStore.start({ dataDir: dir }).catch((e: unknown) => e);
    expect(inProcess).toBeInstanceOf(StoreLockedError);
    expect((inProcess as StoreLockedError).message).toBe(
      `data directory ${store.dataDir} is already open in this process: close that store first`,
    );
    // The other process is told who holds the directory and where it is served.
    const child = await startStoreInChild(dir);
    expect(child.code).toBe('STORE_LOCKED');
    expect(child.error).toBe(
      `data directory ${store.dataDir} is in use by another callscope process (pid ${process.pid}); ` +
        `stop it, or point --clickhouse at the store it serves: --clickhouse ${store.url}`,
    );
    expect((await client.ping()).success).toBe(true);
  });

  it('reports a directory a running store holds as StoreLockedError, naming its pid and URL', async () => {
    const held = mkdtempSync(join(tmpdir(), 'callscope-held-'));
    try {
      const holder = await holdStoreInChild(held);
      try {
        const error = await EmbeddedStore.start({ dataDir: held }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StoreLockedError);
        const locked = error as StoreLockedError;
        expect(locked.code).toBe('STORE_LOCKED');
        expect(locked.exitCode).toBe(StoreExit.TEMP_FAIL);
        expect(locked.holder).toEqual({ pid: holder.pid, url: holder.url });
        expect(locked.message).toBe(
          `data directory ${held} is in use by another callscope process (pid ${holder.pid}); ` +
            `stop it, or point --clickhouse at the store it serves: --clickhouse ${holder.url}`,
        );
        const answer = await fetch(`${holder.url}/`, { method: 'POST', body: 'SELECT currentDatabase()' });
        expect(await answer.text()).toBe('callscope\n');
      } finally {
        await holder.stop();
      }
      // Released: ClickHouse's status file (the lock) and the published URL go with the store.
      expect(readdirSync(held)).not.toContain('status');
      expect(readdirSync(held)).not.toContain('callscope-serving.json');
    } finally {
      rmSync(held, { recursive: true, force: true });
    }
  });

  it('reports a port in use as StorePortInUseError', async () => {
    const other = mkdtempSync(join(tmpdir(), 'callscope-port-'));
    try {
      const port = Number(new URL(store.url).port);
      const child = await startStoreInChild(other, port);
      expect(child.code).toBe('STORE_PORT_IN_USE');
      expect(child.error).toBe(
        `port ${port} on 127.0.0.1 is already in use (another callscope store or a ClickHouse server?); ` +
          'choose another with --port, or --port 0 for any free one',
      );
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('with mustExist, refuses a directory without a store and creates nothing', async () => {
    const base = mkdtempSync(join(tmpdir(), 'callscope-typo-'));
    try {
      const missing = join(base, 'typo');
      const empty = join(base, 'empty');
      const file = join(base, 'file');
      mkdirSync(empty);
      writeFileSync(file, 'not a store');
      const cases = [
        [missing, 'nothing', 'no such directory'],
        [empty, 'no store', 'no store in it'],
        [file, 'not a directory', 'not a directory'],
      ] as const;
      for (const [path, found, what] of cases) {
        const error = await EmbeddedStore.start({ dataDir: path, mustExist: true }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StoreNotFoundError);
        expect(error).toBeInstanceOf(StoreError);
        const notFound = error as StoreNotFoundError;
        expect(notFound.found).toBe(found);
        expect(notFound.code).toBe('STORE_NOT_FOUND');
        expect(notFound.exitCode).toBe(StoreExit.NO_INPUT);
        expect(notFound.message).toBe(
          `no callscope store at ${path} (${what}): run \`callscope run --pcap FILE --data-dir ${path}\` first, or check --data-dir`,
        );
      }
      expect(existsSync(missing)).toBe(false);
      expect(readdirSync(empty)).toEqual([]);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('keeps data across close() and start() on the same directory', async () => {
    await client.command({ query: 'CREATE TABLE kept (id UInt32, s String) ENGINE = MergeTree ORDER BY id' });
    await client.insert({ table: 'kept', values: [{ id: 1, s: 'survives' }], format: 'JSONEachRow' });
    const first = store;
    // close() lets a query in progress finish and answer before the engine goes.
    const inFlight = scalar('SELECT sleepEachRow(0.1) + 7 FROM numbers(3) LIMIT 1');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = first.close();
    expect(await inFlight).toBe('7');
    await closing;
    await stop();
    await first.close(); // idempotent
    await expect(fetch(`${first.url}/ping`)).rejects.toThrow();
    await start({ mustExist: true }); // a store is there now
    expect(await rows('SELECT id, s FROM kept')).toEqual([{ id: 1, s: 'survives' }]);
    expect(await scalar('SELECT count() FROM cs.events')).toBe('0');
  });
});
