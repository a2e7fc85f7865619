/**
 * Commands that use the store: `run` (file → store in one process), `stats` (the analyze summary,
 * computed by SQL from the store), `store` (serve the embedded store over the ClickHouse HTTP interface).
 * Every one reaches the store through @clickhouse/client: a ClickHouse URL selects server mode, otherwise
 * the embedded chDB store owns `--data-dir`.
 */
import { parseArgs } from 'node:util';
import type { Logger } from '../capture/log.js';
import { ingestFile } from '../ingest/run.js';
import { MAX_TTL_DAYS } from '../ingest/schema/ddl.js';
import { migrate } from '../ingest/schema/migrate.js';
import { storeSummary } from '../ingest/stats.js';
import { DEFAULT_DATA_DIR, openStore, type Store } from '../ingest/store/client.js';
import { EmbeddedStore } from '../ingest/store/embedded.js';
import { COMMON, captureIdOf, EXIT_OK, loggerFor, MEDIA_FLAGS, mediaOptions, progressFor } from './common.js';
import { Settings, UsageError } from './config.js';
import { formatSummary } from './report.js';

export const STORE_OPTIONS = {
  clickhouse: { type: 'string' },
  'clickhouse-user': { type: 'string' },
  'clickhouse-password': { type: 'string' },
  database: { type: 'string' },
  'data-dir': { type: 'string' },
  'ttl-days': { type: 'string' },
} as const;

export const STORE_HELP = `Store options (run, stats, ingest):
  --clickhouse URL       ClickHouse server (http[s]://host:8123); without it the
                         embedded store owns --data-dir                 env CALLSCOPE_CLICKHOUSE
  --clickhouse-user U    --clickhouse-password P (never logged)         env CALLSCOPE_CLICKHOUSE_USER/_PASSWORD
  --database NAME        database of callscope's tables (callscope)     env CALLSCOPE_DATABASE
  --data-dir DIR         embedded store directory (${DEFAULT_DATA_DIR})  env CALLSCOPE_DATA_DIR
  --ttl-days N           days rows are kept, 0 forever (30)             env CALLSCOPE_TTL_DAYS
`;

export function databaseOf(settings: Settings): string {
  return settings.string('database', 'callscope');
}

export function ttlDaysOf(settings: Settings): number {
  const n = settings.number('ttl-days', 30);
  if (!Number.isInteger(n) || n < 0 || n > MAX_TTL_DAYS) {
    throw new UsageError(`--ttl-days must be a whole number 0..${MAX_TTL_DAYS}, got ${n}`);
  }
  return n;
}

/** Opens the store the settings name; logs where (credentials redacted). */
export async function storeFor(settings: Settings, logger: Logger): Promise<Store> {
  const store = await openStore({
    clickhouseUrl: settings.string('clickhouse'),
    username: settings.string('clickhouse-user'),
    password: settings.string('clickhouse-password'),
    dataDir: settings.string('data-dir', DEFAULT_DATA_DIR),
    logger,
  });
  logger.info('store opened', { mode: store.mode, url: store.displayUrl });
  return store;
}

export async function runCommand(argv: string[], help: string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...COMMON,
      ...STORE_OPTIONS,
      pcap: { type: 'string' },
      ...MEDIA_FLAGS,
    },
  });
  if (values.help) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError(`run takes no positional arguments (use --pcap FILE)`);
  const settings = new Settings(values);
  const pcap = settings.string('pcap');
  if (!pcap) throw new UsageError('run needs --pcap FILE (live capture arrives with --interface)');
  const logger = loggerFor(settings);
  const progress = progressFor('run', values);
  const store = await storeFor(settings, logger);
  try {
    const result = await ingestFile(pcap, {
      store,
      database: databaseOf(settings),
      ttlDays: ttlDaysOf(settings),
      logger,
      nodeName: settings.string('node-name', ''),
      captureId: captureIdOf(settings),
      media: mediaOptions(settings),
      onProgress: (done, total, packets) => progress.update(done, total, packets),
    });
    progress.done();
    const out = {
      runId: result.runId,
      file: pcap,
      store: { mode: store.mode, url: store.displayUrl, database: databaseOf(settings) },
      packets: result.summary.packets,
      events: result.writer.events,
      rows: result.writer.rowsByTable,
      batches: result.writer.batches,
      retries: result.writer.retries,
      skipped: result.writer.skippedByReason,
    };
    process.stdout.write(
      values.json
        ? `${JSON.stringify(out, null, 2)}\n`
        : `stored ${pcap}: ${out.packets} packets → ${result.writer.rows} rows ` +
            `(${Object.entries(out.rows)
              .map(([t, n]) => `${t} ${n}`)
              .join(', ')}) in ${store.mode} store ${store.displayUrl}, run ${result.runId}\n`,
    );
    return EXIT_OK;
  } finally {
    progress.done();
    await store.close();
  }
}

export async function statsCommand(argv: string[], help: string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...COMMON, ...STORE_OPTIONS, run: { type: 'string' } },
  });
  if (values.help) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError('stats takes no positional arguments');
  const settings = new Settings(values);
  const logger = loggerFor(settings);
  const which = settings.string('run', 'latest');
  const store = await storeFor(settings, logger);
  try {
    const database = databaseOf(settings);
    // Reading needs the tables to exist: an empty store reports zeros rather than an error.
    await migrate(store.client, { database, ttlDays: ttlDaysOf(settings), logger });
    const runId = which === 'all' ? undefined : which === 'latest' ? await latestRun(store, database) : which;
    const summary = await storeSummary(store.client, { database, runId });
    process.stdout.write(
      values.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`,
    );
    return EXIT_OK;
  } finally {
    await store.close();
  }
}

/** The most recently stored capture run, or undefined (then the whole store is summarised). */
async function latestRun(store: Store, database: string): Promise<string | undefined> {
  const rs = await store.client.query({
    query: 'SELECT run_id FROM {db:Identifier}.capture_runs ORDER BY updated_at DESC LIMIT 1',
    query_params: { db: database },
    format: 'JSONEachRow',
  });
  const rows = await rs.json<{ run_id: string }>();
  return rows[0]?.run_id;
}

export async function storeCommand(argv: string[], help: string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...COMMON, 'data-dir': { type: 'string' }, port: { type: 'string' } },
  });
  if (values.help) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError('store takes no positional arguments');
  const settings = new Settings(values);
  const logger = loggerFor(settings);
  const port = settings.number('port', 8123);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port must be 0..65535, got ${port}`);
  const store = await EmbeddedStore.start({
    dataDir: settings.string('data-dir', DEFAULT_DATA_DIR),
    port,
    logger,
  });
  process.stdout.write(
    values.json
      ? `${JSON.stringify({ url: store.url, dataDir: store.dataDir })}\n`
      : `callscope store: ${store.dataDir} served at ${store.url} (ClickHouse HTTP interface); Ctrl-C stops\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await store.close();
  return EXIT_OK;
}
