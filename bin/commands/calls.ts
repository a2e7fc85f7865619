/**
 * `callscope calls`: one row per call, from the store's calls table or straight from a capture file,
 * filtered as a NOC asks (failed, by outcome, user, VM, peer, Call-ID, time), as a table, JSON or CSV.
 * `--rebuild` computes a run's (or a time range's) calls again from the stored messages.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { CallAnalysis } from '../../analyze/calls/analysis.js';
import { type CallFilter, callMatches, callWhere } from '../../analyze/calls/filter.js';
import { rebuildCalls } from '../../analyze/calls/job.js';
import {
  type CallView,
  callCsvHeader,
  callCsvRow,
  callTableHeader,
  callTableRow,
  callView,
} from '../../analyze/calls/view.js';
import { FileSource } from '../../capture/sources.js';
import { CALL_OUTCOMES, type CallOutcome } from '../../core/call.js';
import { drive } from '../../core/drive.js';
import { callFromRow, callSelectList } from '../../ingest/call-rows.js';
import { qualifiedName } from '../../ingest/schema/ddl.js';
import { migrate } from '../../ingest/schema/migrate.js';
import { StoreSink } from '../../ingest/store-sink.js';
import { type Command, parseCommand } from '../command.js';
import { type Settings, UsageError } from '../config.js';
import { EXIT_OK } from '../errors.js';
import {
  COMMON,
  COMMON_HELP,
  captureOptionsOf,
  databaseOf,
  EXIT_CODES_HELP,
  LINK_FLAGS,
  LINK_HELP,
  linkOf,
  STORE_FLAGS,
  STORE_HELP,
  timeOf,
  ttlDaysOf,
} from '../flags.js';
import { storeFor } from '../store.js';

export const FILTER_FLAGS = {
  since: { type: 'string' },
  until: { type: 'string' },
  run: { type: 'string' },
  node: { type: 'string' },
  failed: { type: 'boolean' },
  outcome: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  vm: { type: 'string' },
  peer: { type: 'string' },
  'call-id': { type: 'string' },
  legs: { type: 'boolean' },
} as const;

export const FILTER_HELP = `Which calls (every condition given must hold):
  --since T, --until T   calls that started from T (inclusive) to T (exclusive): ISO 8601 or an age
                         back from now (15m, 2h, 7d)
  --run ID               calls of one capture run (\`callscope run\`)
  --node NAME            calls seen by one capture node
  --failed               the NOC's failed calls: failed (5xx, 408, other non-user 4xx) or no answer
  --outcome O            ${CALL_OUTCOMES.join(', ')}
  --from USER, --to USER From / To user part
  --vm ID                calls with a side on this VM; --peer IP: with this address on a side
  --call-id ID           the call with this Call-ID, every leg of it
  --legs                 every B2BUA leg, not only the leg where each call entered (the edge)
`;

/** The filter the flags name. */
export function filterOf(settings: Settings, values: { failed?: boolean; legs?: boolean }): CallFilter {
  const since = timeOf(settings, 'since');
  const until = timeOf(settings, 'until');
  if (since && until && since >= until) throw new UsageError('--since must be before --until');
  const outcome = settings.string('outcome');
  if (outcome !== undefined && !CALL_OUTCOMES.includes(outcome as CallOutcome))
    throw new UsageError(`--outcome must be one of ${CALL_OUTCOMES.join(', ')}, got "${outcome}"`);
  return {
    since,
    until,
    runId: settings.string('run'),
    node: settings.string('node'),
    failed: Boolean(values.failed),
    outcome: outcome as CallOutcome | undefined,
    from: settings.string('from'),
    to: settings.string('to'),
    vm: settings.string('vm'),
    peer: settings.string('peer'),
    callId: settings.string('call-id'),
    legs: Boolean(values.legs),
  };
}

/** The calls of the filter from the store, newest first. */
async function storedViews(
  client: ClickHouseClient,
  database: string,
  filter: CallFilter,
  limit: number,
): Promise<CallView[]> {
  const where = callWhere(filter);
  const result = await client.query({
    query: `SELECT ${callSelectList()} FROM ${qualifiedName(database, 'calls')} FINAL WHERE ${where.sql}
            ORDER BY start DESC, call_id ${limit > 0 ? 'LIMIT {limit:UInt64}' : ''}`,
    query_params: { ...where.params, limit },
    format: 'JSONEachRow',
  });
  return (await result.json<Record<string, unknown>>()).map((row) => {
    const v = callFromRow(row);
    return callView(v.record, v.open);
  });
}

export const callsCommand: Command = {
  name: 'calls',
  summary: 'one row per call (outcome, status, PDD, talk time, who hung up...), from the store or a capture',
  help: `Usage: callscope calls [filters] [--limit N] [--json|--csv] [--pcap FILE | store options]
       callscope calls --rebuild (--run ID | --since T [--until T]) [store options]

One row per call: when it started, who called whom, how it ended (outcome, final status, Reason,
who hung up), post-dial delay, talk time, the VMs and addresses of both sides, its hops and
branches through proxies, its linked B2BUA legs and its media streams (--json has every field;
docs/CALLS.md defines them). From the store's calls table (newest first; an open call, marked *,
may still change), or with --pcap straight from a capture file (capture order, nothing stored).

${FILTER_HELP}
Output:
  --limit N              at most N calls (100; 0 all)
  --csv                  CSV with a header row (--json: a JSON array of call objects)
  --pcap FILE            read the calls from this capture file instead of the store

  --rebuild              compute the calls of --run ID (or of the messages captured --since/--until)
                         again from the stored messages, then list them

${LINK_HELP}
${STORE_HELP}
${COMMON_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(this, argv, {
      ...COMMON,
      ...STORE_FLAGS,
      ...FILTER_FLAGS,
      ...LINK_FLAGS,
      limit: { type: 'string' },
      csv: { type: 'boolean' },
      pcap: { type: 'string' },
      rebuild: { type: 'boolean' },
    });
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger } = parsed;
    if (values.json && values.csv) throw new UsageError('--json and --csv: choose one');
    const limit = settings.number('limit', 100);
    if (!Number.isInteger(limit) || limit < 0)
      throw new UsageError(`--limit must be a whole number >= 0, got ${limit}`);
    const filter = filterOf(settings, values);
    const link = linkOf(settings);
    const pcap = settings.string('pcap');
    let views: CallView[];
    if (pcap !== undefined) {
      if (values.rebuild) throw new UsageError('--rebuild works on the store, not on --pcap');
      const analysis = new CallAnalysis({ keepRecords: true, link, logger });
      const result = await drive(
        new FileSource(pcap, captureOptionsOf(settings, logger, null)),
        [analysis.sink],
        {
          logger,
        },
      );
      const last = result.source.lastTimestamp;
      await analysis.finish(last === null ? undefined : Math.trunc(last * 1000));
      const matching = analysis.records
        .filter((r) => callMatches(filter, r))
        .sort((a, b) => a.start - b.start);
      views = (limit > 0 ? matching.slice(0, limit) : matching).map((r) => callView(r));
    } else {
      const database = databaseOf(settings);
      const store = await storeFor(settings, logger, { mustExist: true });
      try {
        await migrate(store.client, { database, ttlDays: ttlDaysOf(settings), logger });
        if (values.rebuild) {
          if (filter.runId === undefined && filter.since === undefined)
            throw new UsageError('--rebuild needs --run ID or --since T');
          const conditions: string[] = [];
          const params: Record<string, unknown> = {};
          if (filter.runId !== undefined) {
            conditions.push('run_id = {run:String}');
            params.run = filter.runId;
          }
          if (filter.since) {
            conditions.push('time >= fromUnixTimestamp64Milli({since:Int64})');
            params.since = filter.since.getTime();
          }
          if (filter.until) {
            conditions.push('time < fromUnixTimestamp64Milli({until:Int64})');
            params.until = filter.until.getTime();
          }
          // A run's calls close at its end, as they did when it was stored (a time range's stay open).
          let closeAtMs: number | undefined;
          if (filter.runId !== undefined) {
            const rs = await store.client.query({
              query: `SELECT toUnixTimestamp64Milli(last_packet_time) AS last FROM ${qualifiedName(database, 'capture_runs')}
                      FINAL WHERE run_id = {run:String} AND last_packet_time IS NOT NULL`,
              query_params: { run: filter.runId },
              format: 'JSONEachRow',
            });
            const [row] = await rs.json<{ last: string | number }>();
            if (row !== undefined) closeAtMs = Number(row.last);
          }
          const sink = new StoreSink(store.client, {
            database,
            runId: filter.runId ?? '',
            logger,
            inserter: store.inserter,
          });
          try {
            const done = await rebuildCalls({
              client: store.client,
              database,
              writer: sink,
              logger,
              link,
              scope: { where: conditions.join(' AND '), params },
              runId: filter.runId,
              closeAtMs,
            });
            logger.info('calls rebuilt', { ...done });
            process.stderr.write(
              `callscope calls: ${done.callsComputed} calls computed, ${done.versionsWritten} written, ${done.unchanged} unchanged\n`,
            );
          } finally {
            await sink.close();
          }
        }
        views = await storedViews(store.client, database, filter, limit);
      } finally {
        await store.close();
      }
    }
    if (values.json) process.stdout.write(`${JSON.stringify(views, null, 2)}\n`);
    else if (values.csv)
      process.stdout.write(`${[callCsvHeader(), ...views.map(callCsvRow)].join('\r\n')}\r\n`);
    else {
      process.stdout.write(`${[callTableHeader(), ...views.map(callTableRow)].join('\n')}\n`);
      if (views.length === limit && limit > 0)
        process.stderr.write(`(the first ${limit} calls: --limit N for more, --limit 0 for all)\n`);
    }
    return EXIT_OK;
  },
};
