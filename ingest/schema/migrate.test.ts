import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTableSql, quoteIdentifier, type SchemaOptions } from './ddl.js';
import { migrate } from './migrate.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import { DATA_TABLES, SCHEMA_MIGRATIONS } from './tables.js';
import { openTestStore, type TestStore } from './test-store.js';

let store: TestStore;

beforeAll(async () => {
  store = await openTestStore();
});

afterAll(async () => {
  await store?.close();
});

async function rows<T>(query: string, query_params?: Record<string, unknown>): Promise<T[]> {
  const result = await store.client.query({ query, query_params, format: 'JSONEachRow' });
  return result.json<T>();
}

async function engineFull(database: string, table: string): Promise<string> {
  const [row] = await rows<{ engine_full: string }>(
    'SELECT engine_full FROM system.tables WHERE database = {d:String} AND name = {t:String}',
    { d: database, t: table },
  );
  if (!row) throw new Error(`no table ${database}.${table}`);
  return row.engine_full;
}

describe('migrate', () => {
  it('creates every table once; a second run is a no-op', async () => {
    const first = await migrate(store.client, { database: 'm_once', ttlDays: 30 });
    expect(first).toEqual({
      applied: MIGRATIONS.map((m) => m.version),
      version: SCHEMA_VERSION,
      ttlChanged: [],
      eventIds: 'xxh64',
    });
    const second = await migrate(store.client, { database: 'm_once', ttlDays: 30 });
    expect(second).toEqual({ applied: [], version: SCHEMA_VERSION, ttlChanged: [], eventIds: 'xxh64' });
    const versions = await rows<{ version: number; name: string }>(
      'SELECT version, name FROM m_once.schema_migrations ORDER BY version',
    );
    expect(versions.map((v) => v.version)).toEqual(MIGRATIONS.map((m) => m.version));
    const tables = await rows<{ name: string }>(
      "SELECT name FROM system.tables WHERE database = 'm_once' ORDER BY name",
    );
    expect(tables.map((t) => t.name)).toEqual(
      [...DATA_TABLES.map((t) => t.name), SCHEMA_MIGRATIONS.name].sort(),
    );
  });

  it('gives every table exactly the specified columns, in order', async () => {
    await migrate(store.client, { database: 'm_cols', ttlDays: 0 });
    for (const table of DATA_TABLES) {
      const columns = await rows<{ name: string; type: string }>(
        "SELECT name, type FROM system.columns WHERE database = 'm_cols' AND table = {t:String} ORDER BY position",
        { t: table.name },
      );
      expect(columns, table.name).toEqual(table.columns.map((c) => ({ name: c.name, type: c.type })));
    }
  });

  it('tolerates runners started together', async () => {
    const options = { database: 'm_race', ttlDays: 14 };
    const results = await Promise.all([migrate(store.client, options), migrate(store.client, options)]);
    for (const r of results) expect(r.version).toBe(SCHEMA_VERSION);
    const versions = await rows<{ version: number }>('SELECT DISTINCT version FROM m_race.schema_migrations');
    expect(versions.map((v) => Number(v.version)).sort((a, b) => a - b)).toEqual(
      MIGRATIONS.map((m) => m.version),
    );
  });

  it('sets the TTL by day, changes it and removes it', async () => {
    await migrate(store.client, { database: 'm_ttl', ttlDays: 30 });
    for (const table of ['sip_messages', 'media_reports', 'rtcp_reports']) {
      const engine = await engineFull('m_ttl', table);
      expect(engine).toContain('TTL stored_at + toIntervalDay(30)');
      expect(engine).toContain('non_replicated_deduplication_window = 1000');
      expect(engine).toContain('ttl_only_drop_parts = 1');
    }
    expect(await engineFull('m_ttl', 'vm_inventory')).toContain(
      'TTL toDateTime(last_seen) + toIntervalDay(30)',
    );
    expect(await engineFull('m_ttl', 'capture_runs')).not.toContain('TTL');

    const changed = await migrate(store.client, { database: 'm_ttl', ttlDays: 7 });
    expect(changed.ttlChanged).toEqual([
      'sip_messages',
      'media_reports',
      'rtcp_reports',
      'vm_inventory',
      'capture_health',
      'hep_logs',
      'quarantine',
      'calls',
      'alerts',
      'failovers',
    ]);
    expect(await engineFull('m_ttl', 'sip_messages')).toContain('toIntervalDay(7)');
    expect((await migrate(store.client, { database: 'm_ttl', ttlDays: 7 })).ttlChanged).toEqual([]);

    await migrate(store.client, { database: 'm_ttl', ttlDays: 0 });
    expect(await engineFull('m_ttl', 'sip_messages')).not.toContain('TTL');
  });

  it('refuses identifiers and TTLs that are not plain', async () => {
    await expect(migrate(store.client, { database: 'x`; DROP TABLE y; --', ttlDays: 1 })).rejects.toThrow(
      /invalid database name/,
    );
    await expect(migrate(store.client, { database: 'ok', ttlDays: 1.5 })).rejects.toThrow(/invalid ttlDays/);
    await expect(migrate(store.client, { database: 'ok', ttlDays: -1 })).rejects.toThrow(/invalid ttlDays/);
    expect(() => quoteIdentifier('1abc')).toThrow(/invalid/);
  });
});

describe('cluster variant', () => {
  const options: SchemaOptions = { database: 'callscope', ttlDays: 30, cluster: 'noc' };
  const statements = [
    ...createTableSql(SCHEMA_MIGRATIONS, options),
    ...MIGRATIONS.flatMap((m) => m.statements(options)),
  ];

  it('parses as ClickHouse SQL', async () => {
    for (const sql of statements) {
      const [row] = await rows<{ formatted: string }>('SELECT formatQuery({sql:String}) AS formatted', {
        sql,
      });
      expect(row?.formatted, sql).toMatch(
        // The event id record is one row of an `everywhere` table: replication takes it to every node.
        /^((CREATE TABLE IF NOT EXISTS|ALTER TABLE) callscope\.\w+ ON CLUSTER noc|INSERT INTO callscope\.store_settings )/,
      );
    }
  });

  it('replicates sharded tables per shard under a Distributed table with the plain name', () => {
    const sip = createTableSql(DATA_TABLES[0]!, options);
    expect(sip).toHaveLength(2);
    expect(sip[0]).toContain('CREATE TABLE IF NOT EXISTS `callscope`.`sip_messages_local` ON CLUSTER `noc`');
    expect(sip[0]).toContain(
      "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')",
    );
    expect(sip[0]).toContain('TTL stored_at + toIntervalDay(30)');
    expect(sip[0]).not.toContain('non_replicated_deduplication_window');
    expect(sip[1]).toContain('CREATE TABLE IF NOT EXISTS `callscope`.`sip_messages` ON CLUSTER `noc`');
    expect(sip[1]).toContain(
      "ENGINE = Distributed('noc', 'callscope', 'sip_messages_local', cityHash64(call_id))",
    );
  });

  it('keeps small tables whole on every node', () => {
    const runs = createTableSql(DATA_TABLES.find((t) => t.name === 'capture_runs')!, options);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toContain(
      "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}', updated_at)",
    );
    expect(runs[0]).not.toContain('Distributed');
  });
});
