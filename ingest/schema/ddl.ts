/**
 * SQL text for the schema: single node (ReplacingMergeTree tables) or a cluster (`ON CLUSTER`,
 * Replicated*MergeTree with `{shard}`/`{replica}` macros, Distributed tables under the plain names so
 * that writers and dashboards use the same table names in both modes).
 *
 * Only identifiers from configuration (database, cluster) and our own constants reach this text; both
 * identifiers are validated and quoted. Event values never do: they travel as TabSeparated data.
 */
import type { TableSpec } from './tables.js';

export interface SchemaOptions {
  database: string;
  /** Days rows are kept (counted from their time); 0 keeps them forever. */
  ttlDays: number;
  /** Cluster name from the server's `remote_servers`; absent for a single server or the embedded store. */
  cluster?: string;
}

/** Insert blocks remembered per table for token deduplication of retried batches. */
export const DEDUP_WINDOW = 1000;

/** Longest TTL accepted (100 years): keeps the interval arithmetic far from overflow. */
export const MAX_TTL_DAYS = 36_500;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** Backtick-quotes a configured identifier after checking it is a plain name. */
export function quoteIdentifier(name: string, what = 'identifier'): string {
  if (!IDENTIFIER.test(name)) {
    throw new Error(`invalid ${what} ${JSON.stringify(name)}: use letters, digits and _ (not first a digit)`);
  }
  return `\`${name}\``;
}

/** A single-quoted SQL string literal of our own text (comments, macro paths). */
export function quoteString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function validateSchemaOptions(options: SchemaOptions): void {
  quoteIdentifier(options.database, 'database name');
  if (options.cluster !== undefined) quoteIdentifier(options.cluster, 'cluster name');
  const days = options.ttlDays;
  if (!Number.isInteger(days) || days < 0 || days > MAX_TTL_DAYS) {
    throw new Error(`invalid ttlDays ${days}: an integer from 0 (keep forever) to ${MAX_TTL_DAYS}`);
  }
}

function onCluster(options: SchemaOptions): string {
  return options.cluster === undefined ? '' : ` ON CLUSTER ${quoteIdentifier(options.cluster)}`;
}

/** Name of the table holding the rows: on a cluster, sharded tables keep them in `<name>_local`. */
export function storageTableName(table: TableSpec, options: SchemaOptions): string {
  return options.cluster !== undefined && table.cluster.kind === 'sharded'
    ? `${table.name}_local`
    : table.name;
}

export function qualifiedName(database: string, table: string): string {
  return `${quoteIdentifier(database, 'database name')}.${quoteIdentifier(table, 'table name')}`;
}

/**
 * `database.table` unquoted, for `client.insert({ table })`: the embedded store hands the name to chDB's
 * insert, which takes plain identifiers only; both parts are validated to be plain names.
 */
export function insertTarget(database: string, table: string): string {
  quoteIdentifier(database, 'database name');
  quoteIdentifier(table, 'table name');
  return `${database}.${table}`;
}

/** The TTL expression ClickHouse shows for a table (as normalised in system.tables), or null. */
export function ttlExpression(table: TableSpec, ttlDays: number): string | null {
  if (table.ttlExpression === undefined || ttlDays === 0) return null;
  return `${table.ttlExpression} + toIntervalDay(${ttlDays})`;
}

export function createDatabaseSql(options: SchemaOptions): string {
  return `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(options.database, 'database name')}${onCluster(options)}`;
}

function engineSql(table: TableSpec, options: SchemaOptions): string {
  const version = [table.versionColumn, table.deletedColumn].filter((c) => c !== undefined).join(', ');
  if (options.cluster === undefined) return `ReplacingMergeTree(${version})`;
  // {shard} puts each shard's replicas in their own replication group; tables every node holds in
  // full share one group. {replica} must be unique per node across the cluster (e.g. its hostname).
  const path =
    table.cluster.kind === 'sharded'
      ? '/clickhouse/tables/{shard}/{database}/{table}'
      : '/clickhouse/tables/all/{database}/{table}';
  const args = [quoteString(path), quoteString('{replica}')];
  if (version) args.push(version);
  return `ReplicatedReplacingMergeTree(${args.join(', ')})`;
}

function columnSql(table: TableSpec): string[] {
  const lines = table.columns.map((c) => {
    const codec = c.codec ? ` CODEC(${c.codec})` : '';
    const def = c.defaultExpression ? ` DEFAULT ${c.defaultExpression}` : '';
    return `  ${quoteIdentifier(c.name, 'column name')} ${c.type}${def} COMMENT ${quoteString(c.comment)}${codec}`;
  });
  for (const index of table.indexes) {
    lines.push(
      `  INDEX ${quoteIdentifier(index.name, 'index name')} ${index.expression} TYPE ${index.type} GRANULARITY ${index.granularity}`,
    );
  }
  return lines;
}

function settingsSql(table: TableSpec, options: SchemaOptions): string {
  const settings: string[] = [];
  // Retried batches carry the same insert_deduplication_token; plain MergeTree only remembers
  // tokens when this window is set (Replicated tables keep theirs in Keeper).
  if (table.dedupWindow && options.cluster === undefined) {
    settings.push(`non_replicated_deduplication_window = ${DEDUP_WINDOW}`);
  }
  // Day partitions expire whole: dropping a part is cheaper than rewriting it row by row.
  if (table.partitionBy !== undefined && table.ttlExpression !== undefined)
    settings.push('ttl_only_drop_parts = 1');
  return settings.length > 0 ? `\nSETTINGS ${settings.join(', ')}` : '';
}

/**
 * CREATE statements of one table: one for a single node or an `everywhere` table; a Replicated local
 * table and a Distributed table over it for a sharded table on a cluster.
 */
export function createTableSql(table: TableSpec, options: SchemaOptions): string[] {
  validateSchemaOptions(options);
  const storage = storageTableName(table, options);
  const target = qualifiedName(options.database, storage);
  const ttl = ttlExpression(table, options.ttlDays);
  const clauses = [
    `ENGINE = ${engineSql(table, options)}`,
    table.partitionBy === undefined ? null : `PARTITION BY ${table.partitionBy}`,
    table.primaryKey === undefined ? null : `PRIMARY KEY ${table.primaryKey}`,
    `ORDER BY ${table.orderBy}`,
    ttl === null ? null : `TTL ${ttl}`,
  ].filter((c): c is string => c !== null);
  const statements = [
    `CREATE TABLE IF NOT EXISTS ${target}${onCluster(options)}\n(\n${columnSql(table).join(',\n')}\n)\n${clauses.join('\n')}${settingsSql(table, options)}\nCOMMENT ${quoteString(table.comment)}`,
  ];
  if (options.cluster !== undefined && table.cluster.kind === 'sharded') {
    const cluster = options.cluster;
    statements.push(
      `CREATE TABLE IF NOT EXISTS ${qualifiedName(options.database, table.name)}${onCluster(options)}\nAS ${target}\nENGINE = Distributed(${quoteString(cluster)}, ${quoteString(options.database)}, ${quoteString(storage)}, ${table.cluster.shardingKey})`,
    );
  }
  return statements;
}

/** ALTERs adding a column of the table's spec where it is missing (both tables of a sharded one). */
export function addColumnSql(table: TableSpec, column: string, options: SchemaOptions): string[] {
  const spec = table.columns.find((c) => c.name === column);
  if (spec === undefined) throw new Error(`${table.name} has no column ${column} in its spec`);
  const codec = spec.codec ? ` CODEC(${spec.codec})` : '';
  const def = spec.defaultExpression ? ` DEFAULT ${spec.defaultExpression}` : '';
  const definition = `${quoteIdentifier(spec.name, 'column name')} ${spec.type}${def} COMMENT ${quoteString(spec.comment)}${codec}`;
  const names = [storageTableName(table, options)];
  if (names[0] !== table.name) names.push(table.name);
  return names.map(
    (name) =>
      `ALTER TABLE ${qualifiedName(options.database, name)}${onCluster(options)} ADD COLUMN IF NOT EXISTS ${definition}`,
  );
}

/** ALTER adding one of a table's skip indexes (to the table holding the rows) where it is missing. */
export function addIndexSql(table: TableSpec, index: string, options: SchemaOptions): string[] {
  const spec = table.indexes.find((i) => i.name === index);
  if (spec === undefined) throw new Error(`${table.name} has no index ${index} in its spec`);
  const target = qualifiedName(options.database, storageTableName(table, options));
  return [
    `ALTER TABLE ${target}${onCluster(options)} ADD INDEX IF NOT EXISTS ${quoteIdentifier(spec.name, 'index name')} ` +
      `${spec.expression} TYPE ${spec.type} GRANULARITY ${spec.granularity}`,
  ];
}

/** ALTER bringing a table's TTL to `ttlDays` (MODIFY, or REMOVE for 0). */
export function alterTtlSql(table: TableSpec, options: SchemaOptions): string {
  const target = qualifiedName(options.database, storageTableName(table, options));
  const ttl = ttlExpression(table, options.ttlDays);
  return ttl === null
    ? `ALTER TABLE ${target}${onCluster(options)} REMOVE TTL`
    : `ALTER TABLE ${target}${onCluster(options)} MODIFY TTL ${ttl}`;
}
