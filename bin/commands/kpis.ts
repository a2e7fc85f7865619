/**
 * `callscope kpis`: the call KPIs of the store's calls (each call once, at its edge), over the calls
 * a filter names, overall or per VM, peer, node, hour or proxy destination.
 */
import type { CallFilter } from '../../analyze/calls/filter.js';
import type { CallKpis, CallsSummary } from '../../analyze/calls/kpis.js';
import {
  type DestinationGroup,
  type KpiGroup,
  type KpiGrouping,
  storedCallsSummary,
  storedDestinations,
  storedKpisBy,
} from '../../analyze/calls/stored-kpis.js';
import { migrate } from '../../ingest/schema/migrate.js';
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
  ttlDaysOf,
} from '../flags.js';
import { formatInt } from '../progress.js';
import { formatCallsSummary } from '../report.js';
import { storeFor } from '../store.js';
import { FILTER_FLAGS, FILTER_HELP, filterOf } from './calls.js';

const GROUPINGS: readonly KpiGrouping[] = ['vm', 'peer', 'node', 'hour', 'destination'];

const pct = (r: number | null) => (r === null ? 'n/a' : `${(r * 100).toFixed(1)}%`);

function groupLine(g: KpiGroup): string {
  const k: CallKpis = g.kpis;
  const key = `${g.key || '(unknown)'}${g.direction === null ? '' : ` ${g.direction}`}`;
  return (
    `${key.padEnd(28)} ${formatInt(g.attempts).padStart(8)} ${formatInt(g.answered).padStart(8)} ` +
    `${formatInt(g.failed).padStart(7)} ${pct(k.asr).padStart(6)} ${pct(k.ner).padStart(6)} ` +
    `${pct(k.failedRatio).padStart(7)} ${(k.acdSec === null ? 'n/a' : k.acdSec.toFixed(1)).padStart(7)} ` +
    `${(k.pddMs.p95 === null ? 'n/a' : String(k.pddMs.p95)).padStart(8)}`
  );
}

function destinationLine(d: DestinationGroup): string {
  const statuses = Object.entries(d.finalStatus)
    .map(([s, n]) => `${s} ${formatInt(n)}`)
    .join(', ');
  return (
    `${d.destination.padEnd(28)} ${formatInt(d.branches).padStart(8)} ${formatInt(d.answered).padStart(8)} ` +
    `${formatInt(d.failovers).padStart(9)} ${formatInt(d.unanswered).padStart(10)}  ${statuses}`
  );
}

export const kpisCommand: Command = {
  name: 'kpis',
  summary: 'call KPIs (ASR, SER, SEER, NER, ISA, SCR, ACD, PDD, failed-call ratio, peaks) from the store',
  help: `Usage: callscope kpis [filters] [--by vm|peer|node|hour|destination] [--json] [store options]

The KPIs of the stored calls, each call counted once where it entered (its edge leg): attempts,
answered, failed, every outcome, ASR, SER, SEER, NER, ISA, SCR, ACD, PDD (mean, p50, p95, max), the
failed-call ratio, the peaks of answered calls up at once, attempts waiting and calls per second
(docs/CALLS.md has every formula). --by splits them: per VM or peer address (each as caller, "out",
and as callee, "in"), per capture node, per hour, or per destination behind a proxy (INVITE branches
it got, answered, failed over, never answered).

${FILTER_HELP}
  --by G                 vm, peer, node, hour or destination

${STORE_HELP}
${COMMON_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(this, argv, {
      ...COMMON,
      ...STORE_FLAGS,
      ...FILTER_FLAGS,
      by: { type: 'string' },
    });
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger } = parsed;
    const by = settings.string('by') as KpiGrouping | undefined;
    if (by !== undefined && !GROUPINGS.includes(by))
      throw new UsageError(`--by must be one of ${GROUPINGS.join(', ')}, got "${by}"`);
    const filter: CallFilter = filterOf(settings, values);
    const database = databaseOf(settings);
    const store = await storeFor(settings, logger, { mustExist: true });
    try {
      await migrate(store.client, { database, ttlDays: ttlDaysOf(settings), logger });
      let out: CallsSummary | KpiGroup[] | DestinationGroup[];
      let text: string[];
      if (by === undefined) {
        const summary = await storedCallsSummary(store.client, database, filter);
        out = summary;
        text = formatCallsSummary(summary);
      } else if (by === 'destination') {
        const groups = await storedDestinations(store.client, database, filter);
        out = groups;
        text = [
          `${'DESTINATION'.padEnd(28)} ${'BRANCHES'.padStart(8)} ${'ANSWERED'.padStart(8)} ${'FAILOVERS'.padStart(9)} ${'UNANSWERED'.padStart(10)}  FINAL STATUSES`,
          ...groups.map(destinationLine),
        ];
      } else {
        const groups = await storedKpisBy(store.client, database, filter, by);
        out = groups;
        text = [
          `${by.toUpperCase().padEnd(28)} ${'ATTEMPTS'.padStart(8)} ${'ANSWERED'.padStart(8)} ${'FAILED'.padStart(7)} ${'ASR'.padStart(6)} ${'NER'.padStart(6)} ${'FAILED%'.padStart(7)} ${'ACD s'.padStart(7)} ${'PDD p95'.padStart(8)}`,
          ...groups.map(groupLine),
        ];
      }
      process.stdout.write(values.json ? `${JSON.stringify(out, null, 2)}\n` : `${text.join('\n')}\n`);
      return EXIT_OK;
    } finally {
      await store.close();
    }
  },
};
