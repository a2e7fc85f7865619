/**
 * Applies the schema migrations a database lacks and brings table TTLs to the configured value.
 * Re-running is a no-op; runners started together tolerate each other (every statement is
 * `IF NOT EXISTS`, and a version recorded twice collapses in schema_migrations).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from '../../core/log.js';
import { type EventIdScheme, isEventIdScheme } from '../event-id.js';
import {
  alterTtlSql,
  createDatabaseSql,
  createTableSql,
  insertTarget,
  qualifiedName,
  type SchemaOptions,
  storageTableName,
  ttlExpression,
  validateSchemaOptions,
} from './ddl.js';
import { MIGRATIONS, type Migration } from './migrations.js';
import { DATA_TABLES, SCHEMA_MIGRATIONS, STORE_SETTINGS } from './tables.js';

export interface MigrateOptions extends SchemaOptions {
  logger?: Logger;
}

export interface MigrateResult {
  /** Versions this run applied (empty when the database was current). */
  applied: number[];
  /** Highest version now recorded. */
  version: number;
  /** Tables whose TTL this run changed. */
  ttlChanged: string[];
  /** How this store's event ids are computed (every writer of the store uses it). */
  eventIds: EventIdScheme;
}

export class MigrationError extends Error {
  constructor(
    message: string,
    readonly version: number | null,
    readonly statement: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** TABLE_ALREADY_EXISTS, DATABASE_ALREADY_EXISTS: a concurrent runner's CREATE won the race. */
const ALREADY_EXISTS = new Set(['57', '82']);

async function run(
  client: ClickHouseClient,
  sql: string,
  version: number | null,
  what: string,
): Promise<void> {
  try {
    await client.command({ query: sql });
  } catch (error) {
    // `IF NOT EXISTS` checks before it creates, so two runners can both pass the check.
    const code = String((error as { code?: unknown }).code);
    if (/^CREATE (TABLE|DATABASE) IF NOT EXISTS /.test(sql) && ALREADY_EXISTS.has(code)) return;
    throw new MigrationError(`${what} failed: ${describe(error)}`, version, sql, { cause: error });
  }
}

async function appliedVersions(client: ClickHouseClient, database: string): Promise<Set<number>> {
  const result = await client.query({
    query: `SELECT DISTINCT version FROM ${qualifiedName(database, SCHEMA_MIGRATIONS.name)}`,
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ version: number | string }>();
  return new Set(rows.map((r) => Number(r.version)));
}

async function record(client: ClickHouseClient, database: string, migration: Migration): Promise<void> {
  await client.insert({
    table: insertTarget(database, SCHEMA_MIGRATIONS.name),
    format: 'JSONEachRow',
    values: [{ version: migration.version, name: migration.name, applied_at: utcText(new Date()) }],
  });
}

/** `YYYY-MM-DD hh:mm:ss.sss` in UTC, as a DateTime64(3, 'UTC') column reads it. */
function utcText(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

/** TTL text per storage table as the server reports it ('' when none). */
async function currentTtls(client: ClickHouseClient, options: SchemaOptions): Promise<Map<string, string>> {
  const names = DATA_TABLES.map((t) => storageTableName(t, options));
  const result = await client.query({
    query:
      'SELECT name, engine_full FROM system.tables WHERE database = {database:String} AND name IN {names:Array(String)}',
    query_params: { database: options.database, names },
    format: 'JSONEachRow',
  });
  const ttls = new Map<string, string>();
  for (const row of await result.json<{ name: string; engine_full: string }>()) {
    const match = /\sTTL\s+(.+?)(?:\s+SETTINGS\s|$)/s.exec(row.engine_full);
    ttls.set(row.name, match ? match[1]!.trim() : '');
  }
  return ttls;
}

async function reconcileTtl(client: ClickHouseClient, options: MigrateOptions): Promise<string[]> {
  const ttls = await currentTtls(client, options);
  const changed: string[] = [];
  for (const table of DATA_TABLES) {
    if (table.ttlExpression === undefined) continue;
    const name = storageTableName(table, options);
    const current = ttls.get(name);
    if (current === undefined)
      throw new MigrationError(`table ${options.database}.${name} is missing`, null, '');
    const wanted = ttlExpression(table, options.ttlDays) ?? '';
    if (current === wanted) continue;
    options.logger?.info('changing table TTL', {
      table: name,
      from: current || 'none',
      to: wanted || 'none',
    });
    await run(client, alterTtlSql(table, options), null, `changing the TTL of ${options.database}.${name}`);
    changed.push(table.name);
  }
  return changed;
}

/** Creates the database and its tables, or upgrades them; see the module comment. */
export async function migrate(client: ClickHouseClient, options: MigrateOptions): Promise<MigrateResult> {
  validateSchemaOptions(options);
  const { database } = options;
  await run(client, createDatabaseSql(options), null, `creating database ${database}`);
  for (const sql of createTableSql(SCHEMA_MIGRATIONS, options)) {
    await run(client, sql, null, `creating ${database}.${SCHEMA_MIGRATIONS.name}`);
  }
  const done = await appliedVersions(client, database);
  const known = new Set(MIGRATIONS.map((m) => m.version));
  const unknown = [...done].filter((v) => !known.has(v));
  if (unknown.length > 0) {
    // A newer build migrated this database. Its additions have defaults, so inserting our columns
    // still works; say so rather than refuse.
    options.logger?.warn('database has schema versions this build does not know', {
      database,
      versions: unknown.sort((a, b) => a - b).join(','),
    });
  }
  const applied: number[] = [];
  for (const migration of MIGRATIONS) {
    if (done.has(migration.version)) continue;
    const statements = migration.statements(options);
    for (const [i, sql] of statements.entries()) {
      await run(
        client,
        sql,
        migration.version,
        `migration ${migration.version} (${migration.name}), statement ${i + 1} of ${statements.length}`,
      );
    }
    try {
      await record(client, database, migration);
    } catch (error) {
      throw new MigrationError(
        `recording migration ${migration.version} in ${database}.${SCHEMA_MIGRATIONS.name} failed: ${describe(error)}`,
        migration.version,
        '',
        { cause: error },
      );
    }
    options.logger?.info('schema migration applied', {
      database,
      version: migration.version,
      name: migration.name,
    });
    applied.push(migration.version);
  }
  const ttlChanged = await reconcileTtl(client, options);
  const version = Math.max(0, ...done, ...applied);
  return { applied, version, ttlChanged, eventIds: await readEventIdScheme(client, database) };
}

/**
 * The event id scheme a migrated database records (migration 9). A database without the record (not
 * migrated to 9, or a value this build does not know) is refused: guessing could store events twice.
 */
export async function readEventIdScheme(client: ClickHouseClient, database: string): Promise<EventIdScheme> {
  const result = await client.query({
    query: `SELECT argMax(value, set_at) AS value, count() AS n FROM ${qualifiedName(database, STORE_SETTINGS.name)} WHERE key = 'event_id'`,
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ value: string; n: number | string }>();
  if (row === undefined || Number(row.n) === 0 || !isEventIdScheme(row.value)) {
    throw new MigrationError(
      `${database}.${STORE_SETTINGS.name} names no event id scheme this build knows (${row && Number(row.n) > 0 ? JSON.stringify(row.value) : 'none'}): migrate the database with this build`,
      9,
      '',
    );
  }
  return row.value;
}
