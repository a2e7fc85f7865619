/** `callscope stats`: the analyze summary, computed by SQL from the store. */
import { storeSummary } from '../../analyze/store-summary.js';
import { migrate } from '../../ingest/schema/migrate.js';
import type { Store } from '../../ingest/store/client.js';
import { type Command, parseCommand } from '../command.js';
import { UsageError } from '../config.js';
import { EXIT_OK } from '../errors.js';
import {
  COMMON,
  COMMON_HELP,
  databaseOf,
  EXIT_CODES_HELP,
  STORE_FLAGS,
  STORE_HELP,
  timeOf,
  ttlDaysOf,
} from '../flags.js';
import { formatSummary } from '../report.js';
import { storeFor } from '../store.js';

export const statsCommand: Command = {
  name: 'stats',
  summary: 'the analyze summary of stored data (a run, or a time range and node), by SQL',
  help: `Usage: callscope stats [--json] [--run ID|latest|all] [--since T] [--until T] [--node NAME] [store options]

The summary \`analyze\` prints, computed by SQL from the store. Without a scope it covers the latest
capture run. Data that came through \`ingest\` (Kafka, HEP) has no capture run: summarise it by time
range and capture node instead.

  --run ID|latest|all    one capture run, the latest (default without --since/--until/--node), or all
  --since T, --until T   events captured from T (inclusive) to T (exclusive): ISO 8601
                         (2026-12-06T10:00:00Z) or an age back from now (15m, 2h, 7d)
  --node NAME            events of one capture node (HEP node name / --node-name of the agent)

${STORE_HELP}
${COMMON_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(this, argv, {
      ...COMMON,
      ...STORE_FLAGS,
      run: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      node: { type: 'string' },
    });
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger } = parsed;
    const since = timeOf(settings, 'since');
    const until = timeOf(settings, 'until');
    if (since && until && since >= until) throw new UsageError('--since must be before --until');
    const node = settings.string('node');
    const scoped = since !== undefined || until !== undefined || node !== undefined;
    const which = settings.string('run', scoped ? 'all' : 'latest');
    const database = databaseOf(settings);
    const store = await storeFor(settings, logger, { mustExist: true });
    try {
      // Reading needs the tables to exist: an empty store reports zeros rather than an error.
      await migrate(store.client, { database, ttlDays: ttlDaysOf(settings), logger });
      const runId =
        which === 'all' ? undefined : which === 'latest' ? await latestRun(store, database) : which;
      const summary = await storeSummary(store.client, { database, runId, since, until, node });
      process.stdout.write(
        values.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`,
      );
      return EXIT_OK;
    } finally {
      await store.close();
    }
  },
};

/** The most recently stored capture run, or undefined (then everything stored is summarised). */
async function latestRun(store: Store, database: string): Promise<string | undefined> {
  const rs = await store.client.query({
    query: 'SELECT run_id FROM {db:Identifier}.capture_runs ORDER BY updated_at DESC LIMIT 1',
    query_params: { db: database },
    format: 'JSONEachRow',
  });
  const rows = await rs.json<{ run_id: string }>();
  return rows[0]?.run_id;
}
