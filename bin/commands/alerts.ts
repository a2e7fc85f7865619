/**
 * `callscope alerts`: the alert evaluator on its own (a service over the store, as `run` and `ingest`
 * run it), the transitions it stored, a replay of the rules over stored traffic for tuning, and a
 * check of a rules file.
 */

import { replayAlerts, shown } from '../../analyze/alerts/evaluator.js';
import { loadRules } from '../../analyze/alerts/rules.js';
import type { AlertTransition } from '../../core/alert.js';
import { qualifiedName } from '../../ingest/schema/ddl.js';
import { migrate } from '../../ingest/schema/migrate.js';
import { StoreSink } from '../../ingest/store-sink.js';
import { ALERT_FLAGS, ALERT_HELP, alertRulesOf, startAlerts } from '../alerts.js';
import { type Command, parseCommand } from '../command.js';
import { UsageError } from '../config.js';
import { EXIT_OK } from '../errors.js';
import {
  COMMON,
  COMMON_HELP,
  databaseOf,
  EXIT_CODES_HELP,
  nodeNameOf,
  STORE_FLAGS,
  STORE_HELP,
  timeOf,
  ttlDaysOf,
} from '../flags.js';
import { stopOnSignals } from '../live.js';
import { storeFor } from '../store.js';

function transitionLine(t: AlertTransition): string {
  const group = Object.entries(t.labels)
    .filter(([k]) => k !== 'alertname')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `${new Date(t.at).toISOString()}  ${t.to.padEnd(8)} ${t.rule}  ${group}  value ${shown(t.value)} (${t.attempts})${
    t.examples.length > 0 ? `  e.g. ${t.examples.slice(0, 3).join(', ')}` : ''
  }`;
}

export const alertsCommand: Command = {
  name: 'alerts',
  summary: 'alert rules over the store: run them, list what fired, replay them over past traffic',
  help: `Usage: callscope alerts [--alert-rules FILE] [store options]              evaluate until SIGINT
       callscope alerts --list [--since T] [--until T] [--json]             stored transitions
       callscope alerts --evaluate --since T --until T [--json]             replay over stored data
       callscope alerts --check [FILE]                                       validate a rules file

Alert rules (docs/ALERTS.md) judge KPIs of the stored calls and messages: the failed-call ratio per
VM and peer (each call counted once), ASR against last week, PDD p95, streams with low MOS, a VM gone
silent, OPTIONS peers not answering, REGISTER failures, capture drops, ingest lag, VIP failovers.
Alone, this command is the evaluator as \`run --interface\` and \`ingest\` run it: every interval each
rule is evaluated, every transition (pending, firing, resolved) is stored in the alerts table with
example Call-IDs, and alerts are delivered to Alertmanager and webhooks.

  --list                 the transitions stored in the alerts table (newest last)
  --evaluate             replay the rules at every interval from --since to --until over what the
                         store holds, and print each transition (nothing is stored or sent): the
                         same transitions a live evaluator gave over the same data
  --check                validate the rules file (--alert-rules, or FILE) and list its rules
  --since T, --until T   ISO 8601 or an age (15m, 2h, 7d)

${ALERT_HELP}
${STORE_HELP}
${COMMON_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(
      this,
      argv,
      {
        ...COMMON,
        ...STORE_FLAGS,
        ...ALERT_FLAGS,
        list: { type: 'boolean' },
        evaluate: { type: 'boolean' },
        check: { type: 'boolean' },
        since: { type: 'string' },
        until: { type: 'string' },
      },
      { optional: 'rules file' },
      (s) =>
        s.string('list') === undefined &&
        s.string('evaluate') === undefined &&
        s.string('check') === undefined,
    );
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger, file: named } = parsed;
    const modes = [values.list, values.evaluate, values.check].filter(Boolean).length;
    if (modes > 1) throw new UsageError('choose one of --list, --evaluate, --check');
    if (values.check) {
      const file = named ?? settings.string('alert-rules');
      const rules = file === undefined ? loadRules() : loadRules(file);
      if (values.json) process.stdout.write(`${JSON.stringify(rules, null, 2)}\n`);
      else
        process.stdout.write(
          `${rules.rules.length} rules OK (every ${rules.intervalMs / 1000} s, windows end ${rules.delayMs / 1000} s back)\n` +
            rules.rules
              .map(
                (r) =>
                  `  ${r.name.padEnd(28)} ${r.kpi.padEnd(19)} by ${r.by.join(',') || '-'}  ${r.direction} ${r.threshold}` +
                  ` (resolve ${r.resolve}) over ${r.windowMs / 1000} s, ≥ ${r.minAttempts}, for ${r.forMs / 1000} s`,
              )
              .join('\n') +
            '\n',
        );
      return EXIT_OK;
    }
    if (named !== undefined)
      throw new UsageError(`a rules file is named with --alert-rules (or --check FILE)`);
    const rules = alertRulesOf(settings, 'on')!;
    const database = databaseOf(settings);
    const store = await storeFor(settings, logger, { mustExist: values.list || values.evaluate });
    try {
      await migrate(store.client, { database, ttlDays: ttlDaysOf(settings), logger });
      if (values.evaluate) {
        const since = timeOf(settings, 'since');
        const until = timeOf(settings, 'until') ?? new Date();
        if (since === undefined) throw new UsageError('--evaluate needs --since');
        if (until.getTime() - since.getTime() > 31 * 86_400_000)
          throw new UsageError('--evaluate covers at most 31 days at a time');
        const transitions = await replayAlerts(
          store.client,
          database,
          rules,
          since.getTime(),
          until.getTime(),
        );
        if (values.json) process.stdout.write(`${JSON.stringify(transitions, null, 2)}\n`);
        else
          process.stdout.write(transitions.map(transitionLine).join('\n') + (transitions.length ? '\n' : ''));
        return EXIT_OK;
      }
      if (values.list) {
        const since = timeOf(settings, 'since');
        const until = timeOf(settings, 'until');
        const result = await store.client.query({
          query: `SELECT toUnixTimestamp64Milli(time) AS at, rule, fingerprint, state AS to, previous_state AS from,
                    toUnixTimestamp64Milli(active_since) AS activeSince, value, attempts, threshold,
                    labels, annotations, examples, evaluator
                  FROM ${qualifiedName(database, 'alerts')}
                  WHERE time >= fromUnixTimestamp64Milli({since:Int64}) AND time < fromUnixTimestamp64Milli({until:Int64})
                  ORDER BY time, rule, fingerprint LIMIT 1 BY time, rule, fingerprint, state LIMIT 100000`,
          query_params: { since: since?.getTime() ?? 0, until: until?.getTime() ?? 8_000_000_000_000 },
          format: 'JSONEachRow',
        });
        const rows = (await result.json<Record<string, unknown>>()).map(
          (r): AlertTransition => ({
            rule: String(r.rule),
            fingerprint: String(r.fingerprint),
            from: r.from as AlertTransition['from'],
            to: r.to as AlertTransition['to'],
            at: Number(r.at),
            activeSince: Number(r.activeSince),
            value: r.value === null ? null : Number(r.value),
            attempts: Number(r.attempts),
            threshold: Number(r.threshold),
            labels: r.labels as Record<string, string>,
            annotations: r.annotations as Record<string, string>,
            examples: r.examples as string[],
          }),
        );
        if (values.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        else process.stdout.write(rows.map(transitionLine).join('\n') + (rows.length ? '\n' : ''));
        return EXIT_OK;
      }
      const stop = stopOnSignals(logger);
      const writer = new StoreSink(store.client, { database, logger, inserter: store.inserter });
      const service = startAlerts({
        rules,
        client: store.client,
        database,
        writer,
        logger,
        name: `${nodeNameOf(settings)}/alerts`,
      });
      process.stdout.write(
        values.json
          ? `${JSON.stringify({ rules: rules.rules.length, intervalMs: rules.intervalMs, store: store.displayUrl })}\n`
          : `callscope alerts: ${rules.rules.length} rules every ${rules.intervalMs / 1000} s over ${store.displayUrl}; Ctrl-C stops\n`,
      );
      await new Promise<void>((resolve) =>
        stop.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      stop.dispose();
      await service.stop();
      await writer.close();
      return EXIT_OK;
    } finally {
      await store.close();
    }
  },
};
