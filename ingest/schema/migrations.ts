/**
 * Schema versions, oldest first. Every statement must be idempotent (`IF NOT EXISTS`, `ADD COLUMN IF
 * NOT EXISTS`...): two ingest processes starting together may both run a version before either has
 * recorded it, and a runner that died between a statement and its record runs it again.
 */
import { addColumnSql, addIndexSql, createTableSql, qualifiedName, type SchemaOptions } from './ddl.js';
import {
  ALERTS,
  CALLS,
  CAPTURE_HEALTH,
  CAPTURE_RUNS,
  FAILOVERS,
  HEP_LOGS,
  MEDIA_REPORTS,
  QUARANTINE,
  RTCP_REPORTS,
  SIP_MESSAGES,
  STORE_SETTINGS,
  VM_INVENTORY,
} from './tables.js';

export interface Migration {
  version: number;
  name: string;
  statements(options: SchemaOptions): string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'sip_messages, media_reports, rtcp_reports, vm_inventory, capture_runs',
    // The tables as version 1 made them; later versions add to them (DATA_TABLES lists them all).
    statements: (options) =>
      [SIP_MESSAGES, MEDIA_REPORTS, RTCP_REPORTS, VM_INVENTORY, CAPTURE_RUNS].flatMap((table) =>
        createTableSql(table, options),
      ),
  },
  {
    version: 2,
    name: 'capture_health',
    statements: (options) => createTableSql(CAPTURE_HEALTH, options),
  },
  {
    version: 3,
    name: 'hep_logs',
    statements: (options) => createTableSql(HEP_LOGS, options),
  },
  {
    version: 4,
    name: 'quarantine',
    statements: (options) => createTableSql(QUARANTINE, options),
  },
  {
    version: 5,
    name: 'capture_runs.limits',
    statements: (options) => addColumnSql(CAPTURE_RUNS, 'limits', options),
  },
  {
    version: 6,
    name: 'calls; sip_messages.stored_at index (the calls job finds new messages by it)',
    statements: (options) => [
      ...createTableSql(CALLS, options),
      ...addIndexSql(SIP_MESSAGES, 'stored_at_minmax', options),
    ],
  },
  {
    version: 7,
    name: "alerts (the built-in evaluator's transitions)",
    statements: (options) => createTableSql(ALERTS, options),
  },
  {
    version: 8,
    name: 'failovers',
    statements: (options) => [
      ...createTableSql(FAILOVERS, options),
      ...addColumnSql(CAPTURE_RUNS, 'failover_tracker', options),
    ],
  },
  {
    version: 9,
    name: 'store_settings; event ids by xxHash64 where no event is stored yet, else SHA-256 as before',
    // A store that holds events keeps their ids' scheme: with another, a file ingested again would be
    // stored twice. Set once: a runner repeating this version finds the key and adds nothing.
    statements: (options) => {
      const settings = qualifiedName(options.database, STORE_SETTINGS.name);
      const events = [SIP_MESSAGES, MEDIA_REPORTS, RTCP_REPORTS, HEP_LOGS, FAILOVERS, QUARANTINE]
        .map((t) => `(SELECT count() FROM ${qualifiedName(options.database, t.name)})`)
        .join(' + ');
      return [
        ...createTableSql(STORE_SETTINGS, options),
        `INSERT INTO ${settings} (key, value, set_at) ` +
          `SELECT 'event_id', if(${events} > 0, 'sha256', 'xxh64'), now64(3) ` +
          `WHERE (SELECT count() FROM ${settings} WHERE key = 'event_id') = 0`,
      ];
    },
  },
];

/** Highest version this build knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
