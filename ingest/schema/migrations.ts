/**
 * Schema versions, oldest first. Every statement must be idempotent (`IF NOT EXISTS`, `ADD COLUMN IF
 * NOT EXISTS`...): two ingest processes starting together may both run a version before either has
 * recorded it, and a runner that died between a statement and its record runs it again.
 */
import { createTableSql, type SchemaOptions } from './ddl.js';
import { DATA_TABLES } from './tables.js';

export interface Migration {
  version: number;
  name: string;
  statements(options: SchemaOptions): string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'sip_messages, media_reports, rtcp_reports, vm_inventory, capture_runs',
    statements: (options) => DATA_TABLES.flatMap((table) => createTableSql(table, options)),
  },
];

/** Highest version this build knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
