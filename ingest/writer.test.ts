import { Readable, type Stream } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { type ClickHouseClient, ClickHouseError } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import type { CaptureEvent } from '../core/event.js';
import { nativeBlockShape } from './native-block.js';
import { migrate } from './schema/migrate.js';
import { openTestStore, type TestStore } from './schema/test-store.js';
import { isRetryable, isRowError, MAX_DAYS_PER_BATCH, StoreWriteError, StoreWriter } from './writer.js';

const SAMPLE = fileURLToPath(new URL('../capture/sample/calls.pcap', import.meta.url));

let store: TestStore;
let sample: CaptureEvent[];
let dbCount = 0;

/** A fresh migrated database per test, so counts start at zero. */
async function freshDatabase(): Promise<string> {
  const database = `writer_test_${++dbCount}`;
  await migrate(store.client, { database, ttlDays: 0 });
  return database;
}

/** The sample's events `copies` times over, each copy after the previous one (so each has its own ids). */
function events(copies: number, only?: 'sip'): CaptureEvent[] {
  const base = only === 'sip' ? sample.filter((e) => e.sip !== undefined) : sample;
  // Times are bigints (Math.min/max do not take them).
  const times = sample.map((e) => e.timestampNs).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const span = times[times.length - 1]! - times[0]! + 1_000_000_000n;
  const out: CaptureEvent[] = [];
  for (let c = 0; c < copies; c++) {
    for (const e of base) out.push({ ...e, timestampNs: e.timestampNs + BigInt(c) * span });
  }
  return out;
}

interface Recorded {
  table: string;
  rows: number;
  bytes: number;
  token: string;
  /** The data holds the test's poison marker. */
  poison: boolean;
}

/**
 * The real client with a hook around insert: the hook sees the bytes and may delay or fail the
 * attempt (`before`), or fail it after the store took it (`after`), as a timeout would.
 */
function hookedClient(hooks: {
  before?: (r: Recorded) => Promise<void> | void;
  after?: (r: Recorded) => Promise<void> | void;
}): { client: ClickHouseClient; inserts: Recorded[] } {
  const inserts: Recorded[] = [];
  const real = store.client;
  // The writer's inserts over HTTP are `INSERT INTO db.table (…) FORMAT Native` with the block as body.
  const exec = async (params: Parameters<ClickHouseClient['exec']>[0] & { values?: Stream }) => {
    const table = /^INSERT INTO (\S+)/.exec(params.query)?.[1];
    if (table === undefined || params.values === undefined) return real.exec(params);
    const chunks: Buffer[] = [];
    for await (const chunk of params.values as AsyncIterable<Buffer>) chunks.push(chunk);
    const data = Buffer.concat(chunks);
    const r: Recorded = {
      table,
      rows: nativeBlockShape(data).rows,
      bytes: data.length,
      token: String(params.clickhouse_settings?.insert_deduplication_token),
      poison: data.includes('POISON'),
    };
    await hooks.before?.(r);
    const result = await real.exec({ ...params, values: Readable.from([data], { objectMode: false }) });
    inserts.push(r);
    await hooks.after?.(r);
    return result;
  };
  const client = new Proxy(real, {
    get(target, prop) {
      if (prop === 'exec') return exec;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { client, inserts };
}

async function count(database: string, table: string, final = false): Promise<number> {
  const result = await store.client.query({
    query: `SELECT count() AS n FROM ${database}.${table}${final ? ' FINAL' : ''}`,
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ n: string | number }>();
  return Number(row?.n);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function connectionReset(): Error {
  return Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
}

beforeAll(async () => {
  store = await openTestStore();
  sample = [];
  await analyzeFile(SAMPLE, { onEvent: (e) => sample.push(e) });
});

afterAll(async () => {
  await store?.close();
});

describe('StoreWriter', () => {
  it('stores a batch sent twice once (the insert landed, the answer was lost, the writer retried)', async () => {
    const database = await freshDatabase();
    const seen = new Set<string>();
    const { client } = hookedClient({
      after: (r) => {
        if (seen.has(r.table)) return;
        seen.add(r.table);
        throw connectionReset();
      },
    });
    const input = events(1);
    const sip = input.filter((e) => e.sip).length;
    const writer = new StoreWriter(client, { database, retry: { initialDelayMs: 1 } });
    await writer.write(input);
    await writer.close();
    expect(writer.stats.retries).toBe(2); // sip_messages and media_reports (the sample has no RTCP)
    expect(writer.stats.batches).toBe(1);
    expect(await count(database, 'sip_messages')).toBe(sip);
    expect(await count(database, 'media_reports')).toBe(input.length - sip);

    // The same events in the same batches again (a replay): dropped by the token.
    const replay = new StoreWriter(store.client, { database });
    await replay.write(input);
    await replay.close();
    expect(await count(database, 'sip_messages')).toBe(sip);

    // In other batches the tokens differ; the rows collapse by event_id (FINAL now, merges later).
    const rebatched = new StoreWriter(store.client, { database, maxRows: 50 });
    await rebatched.write(input);
    await rebatched.close();
    expect(await count(database, 'sip_messages', true)).toBe(sip);
    await store.client.command({ query: `OPTIMIZE TABLE ${database}.sip_messages FINAL` });
    expect(await count(database, 'sip_messages')).toBe(sip);
  });

  it('retries transient errors with backoff and gives up on permanent ones', async () => {
    const database = await freshDatabase();
    let failures = 2;
    const { client } = hookedClient({
      before: () => {
        if (failures-- > 0) throw connectionReset();
      },
    });
    const input = events(1, 'sip');
    const writer = new StoreWriter(client, { database, retry: { initialDelayMs: 5 } });
    await writer.write(input);
    await writer.close();
    expect(writer.stats.retries).toBe(2);
    expect(await count(database, 'sip_messages')).toBe(input.length);

    // No tables in this database: not worth retrying, and the error says where.
    await store.client.command({ query: 'CREATE DATABASE IF NOT EXISTS writer_test_empty' });
    const broken = new StoreWriter(store.client, {
      database: 'writer_test_empty',
      retry: { initialDelayMs: 1 },
      eventIds: 'xxh64',
    });
    await broken.write(input);
    const failure = await broken.flush().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(StoreWriteError);
    expect((failure as StoreWriteError).message).toMatch(
      /inserting \d+ rows into writer_test_empty\.sip_messages failed after 1 attempt:/,
    );
    expect(broken.stats).toMatchObject({ failures: 1, retries: 0, rows: 0 });
    // Sticky: later calls report the same failure rather than storing past a hole.
    await expect(broken.write(input)).rejects.toBe(failure);
    await expect(broken.close()).rejects.toBe(failure);

    expect(isRetryable(connectionReset())).toBe(true);
    expect(isRetryable(new Error('502 Bad Gateway'))).toBe(true);
    expect(isRetryable(new Error('values must be a stream'))).toBe(false);
  });

  it('sends a batch when it reaches maxRows or maxBytes', async () => {
    const database = await freshDatabase();
    const input = events(4, 'sip'); // 1072 SIP events
    const byRows = hookedClient({});
    const writer = new StoreWriter(byRows.client, { database, maxRows: 100 });
    await writer.write(input);
    expect(byRows.inserts.length).toBeGreaterThanOrEqual(9); // sent while writing, not at flush
    await writer.close();
    expect(byRows.inserts.map((r) => r.rows)).toEqual([...Array(10).fill(100), 72]);
    expect(writer.stats).toMatchObject({ rows: 1072, batches: 11, events: 1072 });

    const bySize = hookedClient({});
    const sized = new StoreWriter(bySize.client, { database, maxBytes: 20_000 });
    await sized.write(input);
    await sized.close();
    const largest = Math.max(...input.map((e) => e.payload.length)) * 2 + 400;
    expect(bySize.inserts.length).toBeGreaterThan(10);
    for (const r of bySize.inserts) expect(r.bytes).toBeLessThan(20_000 + largest);
    expect(bySize.inserts.reduce((n, r) => n + r.rows, 0)).toBe(1072);
  });

  it('sends a batch maxDelayMs after its first row', async () => {
    const database = await freshDatabase();
    const sent: number[] = [];
    const { client } = hookedClient({ before: () => void sent.push(Date.now()) });
    const writer = new StoreWriter(client, { database, maxDelayMs: 150 });
    const input = events(1, 'sip');
    for (const round of [0, 1]) {
      // The second batch starts after the writer sat idle: its deadline counts from its own first row.
      const started = Date.now();
      await writer.write(input.slice(5 * round, 5 * round + 5));
      while (sent.length === round && Date.now() - started < 5000) await sleep(5);
      expect(sent).toHaveLength(round + 1);
      expect(sent[round]! - started).toBeGreaterThanOrEqual(140);
      expect(sent[round]! - started).toBeLessThan(1000);
      await sleep(300);
    }
    await writer.close();
    expect(await count(database, 'sip_messages')).toBe(10);
  });

  it('makes write wait while one batch is in flight and the next is full', async () => {
    const database = await freshDatabase();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { client, inserts } = hookedClient({ before: () => gate });
    const writer = new StoreWriter(client, { database, maxRows: 10 });
    const input = events(1, 'sip');
    await writer.write(input.slice(0, 10)); // full: sent at once, now in flight (held at the gate)
    await writer.write(input.slice(10, 20)); // fills the next batch; accepted
    let resolved = false;
    const third = writer.write(input.slice(20, 21)).then(() => {
      resolved = true;
    });
    await sleep(100);
    expect(resolved).toBe(false);
    expect(inserts).toHaveLength(0);
    release();
    await third;
    expect(resolved).toBe(true);
    await writer.close();
    expect(inserts.map((r) => r.rows)).toEqual([10, 10, 1]);
  });

  it('cuts batches at 64 days, so events of 300 days are all stored (ClickHouse refuses 101 in one INSERT)', async () => {
    const database = await freshDatabase();
    // The engine's own limit, as it reports it: this is what a batch across 101 days ran into.
    const day = 86_400_000;
    await store.client.command({
      query: `CREATE TABLE ${database}.by_day (t DateTime) ENGINE = MergeTree PARTITION BY toDate(t) ORDER BY t`,
    });
    const refused = await store.client
      .insert({
        table: `${database}.by_day`,
        values: Array.from({ length: 101 }, (_, i) => ({
          t: Math.floor((Date.UTC(2024, 0, 1) + i * day) / 1000),
        })),
        format: 'JSONEachRow',
      })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(refused).toBeInstanceOf(ClickHouseError);
    expect((refused as Error).message).toMatch(/Too many partitions for (a )?single INSERT block/i);
    expect(isRetryable(refused)).toBe(false);
    expect(isRowError(refused)).toBe(true);

    const sip = sample.filter((e) => e.sip !== undefined);
    const start = BigInt(Date.UTC(2024, 0, 1)) * 1_000_000n;
    const spread = Array.from({ length: 300 }, (_, i) => ({
      ...sip[i % sip.length]!,
      timestampNs: start + BigInt(i) * 86_400_000_000_000n,
    }));
    const { client, inserts } = hookedClient({});
    const writer = new StoreWriter(client, { database });
    await writer.write(spread);
    await writer.close();
    expect(writer.stats).toMatchObject({ failures: 0, delivered: 300, quarantinedRows: 0, retries: 0 });
    expect(await count(database, 'sip_messages', true)).toBe(300);
    const sipInserts = inserts.filter((i) => i.table.endsWith('.sip_messages'));
    expect(sipInserts.length).toBe(Math.ceil(300 / MAX_DAYS_PER_BATCH));
    expect(Math.max(...sipInserts.map((i) => i.rows))).toBeLessThanOrEqual(MAX_DAYS_PER_BATCH);
  });

  it('quarantines the rows the store refuses for good, with the reason, and stores their batch-mates', async () => {
    const database = await freshDatabase();
    const sip = sample.filter((e) => e.sip !== undefined).slice(0, 40);
    const poisoned = new Set([7, 31]);
    const batch = sip.map((e, i) =>
      poisoned.has(i) ? { ...e, payload: Buffer.concat([e.payload, Buffer.from('POISON')]) } : e,
    );
    const { client, inserts } = hookedClient({
      before: (r) => {
        if (r.table.endsWith('.sip_messages') && r.poison)
          throw new ClickHouseError({
            message: 'Cannot parse input: expected tab before: POISON',
            code: '27',
            type: 'CANNOT_PARSE_INPUT_ASSERTION_FAILED',
          });
      },
    });
    const writer = new StoreWriter(client, { database });
    await writer.write(batch);
    await writer.close();
    expect(writer.stats).toMatchObject({
      failures: 0,
      quarantinedRows: 2,
      delivered: 38,
      skippedByReason: { quarantined: 2 },
      retries: 0,
    });
    expect(await count(database, 'sip_messages', true)).toBe(38);
    const q = await store.client.query({
      query: `SELECT target_table, error_code, reason, position(row, 'POISON') > 0 AS has FROM ${database}.quarantine ORDER BY event_id`,
      format: 'JSONEachRow',
    });
    const rows = await q.json<{
      target_table: string;
      error_code: number;
      reason: string;
      has: boolean | number;
    }>();
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect(row.target_table).toBe('sip_messages');
      expect(row.error_code).toBe(27);
      expect(row.reason).toMatch(/Cannot parse input/);
      expect(Boolean(row.has)).toBe(true);
    }
    // Halving: every insert tried is at most the batch, and far fewer than one per row.
    expect(inserts.filter((i) => i.table.endsWith('.sip_messages')).length).toBeLessThan(20);
  });

  it('counts implausible capture times and stores the events by them all the same', async () => {
    const database = await freshDatabase();
    const [a, b, c] = sample.filter((e) => e.sip !== undefined);
    const future = BigInt(Date.now() + 3 * 86_400_000) * 1_000_000n;
    const writer = new StoreWriter(store.client, { database });
    await writer.write([
      { ...a!, timestampNs: 631_152_000_000_000_000n }, // 1990
      { ...b!, timestampNs: future },
      c!,
    ]);
    await writer.close();
    expect(writer.stats.implausibleTimes).toBe(2);
    expect(await count(database, 'sip_messages', true)).toBe(3);
  });

  it('keeps SHA-256 event ids in a store that held events before xxHash64 ids, so a file ingested again is stored once', async () => {
    // A store as builds before migration 9 left it: events stored with SHA-256 ids, no store_settings.
    const database = await freshDatabase();
    await store.client.command({ query: `DROP TABLE ${database}.store_settings SYNC` });
    await store.client.command({
      query: `ALTER TABLE ${database}.schema_migrations DELETE WHERE version = 9 SETTINGS mutations_sync = 1`,
    });
    const input = events(1);
    const before = new StoreWriter(store.client, { database, eventIds: 'sha256' });
    await before.write(input);
    await before.close();
    const stored = await count(database, 'sip_messages', true);
    const storedMedia = await count(database, 'media_reports', true);
    expect(stored).toBeGreaterThan(0);
    expect(storedMedia).toBeGreaterThan(0);
    // Without the record the writer refuses to guess.
    const unsure = new StoreWriter(store.client, { database });
    await expect(unsure.write(input)).rejects.toThrow(/computes event ids/);
    // The upgrade records SHA-256 for this store; the same file again adds nothing.
    const migrated = await migrate(store.client, { database, ttlDays: 0 });
    expect(migrated).toMatchObject({ applied: [9], eventIds: 'sha256' });
    const after = new StoreWriter(store.client, { database });
    await after.write(input);
    await after.close();
    expect(await count(database, 'sip_messages', true)).toBe(stored);
    expect(await count(database, 'media_reports', true)).toBe(storedMedia);
    // A fresh store uses xxHash64; writing the same events twice there stores them once as well.
    const fresh = await freshDatabase();
    expect((await migrate(store.client, { database: fresh, ttlDays: 0 })).eventIds).toBe('xxh64');
    for (let i = 0; i < 2; i++) {
      const writer = new StoreWriter(store.client, { database: fresh });
      await writer.write(input);
      await writer.close();
    }
    expect(await count(fresh, 'sip_messages', true)).toBe(stored);
    const [mine] = await (
      await store.client.query({
        query: `SELECT count() AS n FROM ${database}.sip_messages AS a INNER JOIN ${fresh}.sip_messages AS b USING (event_id)`,
        format: 'JSONEachRow',
      })
    ).json<{ n: string }>();
    expect(Number(mine!.n)).toBe(0); // the two schemes' ids differ
  });

  it('measures insert throughput on the store', async () => {
    const database = await freshDatabase();
    const input = events(200); // 63,200 events: SIP messages and RTP reports
    const writer = new StoreWriter(store.client, { database });
    const started = performance.now();
    const cpu = process.cpuUsage();
    for (let i = 0; i < input.length; i += 1000) await writer.write(input.slice(i, i + 1000));
    await writer.close();
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const cpuSeconds = (used.user + used.system) / 1e6;
    const rows = writer.stats.rows;
    const rate = Math.round(rows / seconds);
    console.log(
      `writer: ${rows} rows (${writer.stats.rowsByTable.sip_messages} SIP, ${writer.stats.rowsByTable.media_reports} media) ` +
        `in ${seconds.toFixed(2)} s = ${rate} rows/s, ${(writer.stats.bytes / seconds / 1e6).toFixed(1)} MB/s of TSV, ` +
        `${writer.stats.batches} batches; process CPU ${cpuSeconds.toFixed(2)} s (${Math.round(rows / cpuSeconds)} rows per CPU-second); ` +
        `load average ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`,
    );
    expect(await count(database, 'sip_messages')).toBe(writer.stats.rowsByTable.sip_messages);
    expect(rate).toBeGreaterThan(1000);
  });
});
