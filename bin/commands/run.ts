/**
 * `callscope run`: capture → store in one process. The source is a file or a live interface; the
 * sinks are the store (embedded chDB or a ClickHouse server) and the summary; the run's record goes to
 * capture_runs at the end (ingest/run.ts).
 */
import { type StoreCaptureResult, storeCapture } from '../../ingest/run.js';
import { ALERT_FLAGS, ALERT_HELP, type AlertService, alertRulesOf, liveAlerts } from '../alerts.js';
import { captureInputFor } from '../capture-source.js';
import { type Command, parseCommand } from '../command.js';
import { cutShortExit, EXIT_OK } from '../errors.js';
import {
  COMMON,
  COMMON_HELP,
  captureOptionsOf,
  databaseOf,
  EXIT_CODES_HELP,
  LINK_FLAGS,
  LINK_HELP,
  LIVE_FLAGS,
  LIVE_HELP,
  linkOf,
  MEDIA_FLAGS,
  MEDIA_HELP,
  METRICS_FLAGS,
  METRICS_HELP,
  metricsListenOf,
  RTP_SPOOL_FLAGS,
  RTP_SPOOL_HELP,
  rtpSpoolOf,
  STORE_FLAGS,
  STORE_HELP,
  statsIntervalOf,
  storeBatchRowsOf,
  ttlDaysOf,
} from '../flags.js';
import { startMetrics } from '../metrics.js';
import { storeFor } from '../store.js';
import { VM_FLAGS, VM_HELP, vmReport, vmSourceFor } from '../vms.js';

export const runCommand: Command = {
  name: 'run',
  summary: 'capture (a file or an interface) → store in one process',
  help: `Usage: callscope run --pcap FILE | --interface IFACE [--json] [options]

Capture → store in one process: decode the file (or capture live on the interface until SIGINT/SIGTERM
or --duration) and write every SIP message, media report, HEP log and, live, the capture's health into
the store (embedded chDB in --data-dir unless --clickhouse URL). The summary of the run is stored in
capture_runs, and its calls in the calls table (live: kept current as the capture goes, within
seconds); \`callscope stats\` prints the summary, \`callscope calls\` and \`callscope kpis\` the calls.

${LIVE_HELP}
${STORE_HELP}  --store-batch-rows N   rows that make a store batch full (default: the writer's); the store
                         sink holds two batches at most: a file waits, a live queue fills beyond
                         them (docs/BACKPRESSURE.md)
${COMMON_HELP}
${MEDIA_HELP}
${RTP_SPOOL_HELP}${VM_HELP}
${LINK_HELP}
${METRICS_HELP}
${ALERT_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(
      this,
      argv,
      {
        ...COMMON,
        ...STORE_FLAGS,
        'store-batch-rows': { type: 'string' },
        ...LIVE_FLAGS,
        ...MEDIA_FLAGS,
        ...RTP_SPOOL_FLAGS,
        ...VM_FLAGS,
        ...LINK_FLAGS,
        ...METRICS_FLAGS,
        ...ALERT_FLAGS,
      },
      0,
      (s) => s.string('interface') !== undefined,
    );
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger } = parsed;
    const database = databaseOf(settings);
    const ttlDays = ttlDaysOf(settings);
    const metricsAt = metricsListenOf(settings);
    // The alert rules are read first: a mistake in them stops the command before it opens anything.
    const alertRules = settings.string('interface') !== undefined ? alertRulesOf(settings) : null;
    const input = captureInputFor('run', settings, values, logger);
    let metrics: Awaited<ReturnType<typeof startMetrics>> = null;
    try {
      metrics = await startMetrics(metricsAt, 'run', logger);
      const vms = await vmSourceFor(settings, logger);
      try {
        const store = await storeFor(settings, logger);
        const spool = rtpSpoolOf(settings, logger);
        let alerts: AlertService | null = null;
        try {
          // Live: the alert rules run over the store as it fills (a file run is replayed: alerts --evaluate).
          if (input.live)
            alerts = await liveAlerts(alertRules, settings, store.client, database, ttlDays, logger, 'run');
          const options = captureOptionsOf(settings, logger, vms, spool);
          const result = await storeCapture(input.source(options), {
            metrics: metrics?.metrics,
            ...options,
            store,
            database,
            ttlDays,
            inventory: vms ?? undefined,
            maxQueuedEvents: input.maxQueuedEvents,
            storeBatchRows: storeBatchRowsOf(settings),
            signal: input.signal,
            statsIntervalMs: input.live ? statsIntervalOf(settings) : 0,
            link: linkOf(settings),
            // Live: the calls table follows the capture (a call visible within seconds of its last message).
            callsIntervalMs: input.live ? 2000 : undefined,
          });
          input.done();
          spool?.close();
          const s = result.summary;
          const w = result.writer;
          const flow = flowReport(result);
          const out = {
            runId: result.runId,
            [input.live ? 'interface' : 'file']: input.name,
            store: { mode: store.mode, url: store.displayUrl, database },
            packets: s.packets,
            sipMessages: s.sip.messages,
            rtpStreams: s.rtp.streams.length,
            calls: { attempts: s.calls.attempts, ...result.calls },
            capture: s.capture,
            events: w.events,
            stored: result.store.delivered,
            skipped: result.store.skipped,
            lost: result.store.lost,
            droppedEvents: result.droppedEvents,
            backpressure: flow,
            rows: w.rowsByTable,
            healthRows: result.healthRows,
            batches: w.batches,
            retries: w.retries,
            rtpSpool: spool?.stats() ?? null,
            vms: vmReport(vms),
            metrics: metrics?.address ?? null,
          };
          if (values.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          else {
            const rows = Object.entries(w.rowsByTable)
              .filter(([, n]) => n > 0)
              .map(([t, n]) => `${t} ${n}`)
              .join(', ');
            const skipped = Object.entries(result.store.skipped)
              .map(([why, n]) => `${n} ${why}`)
              .join(', ');
            const c = s.capture;
            const kernel = c
              ? ` (kernel: ${c.received} received, ${c.droppedKernel} dropped; ${c.reopenings} reopenings)`
              : '';
            process.stdout.write(
              `${input.live ? 'captured' : 'stored'} ${input.name}: ${s.packets} packets${kernel}, ` +
                `${s.sip.messages} SIP messages, ${s.calls.attempts} calls → ${w.rows} rows (${rows || 'none'}` +
                `${input.live ? `, capture_health ${result.healthRows}` : ''}) in ${store.mode} store ` +
                `${store.displayUrl}, run ${result.runId}` +
                (skipped ? `; not stored: ${skipped}` : '') +
                (result.calls.error === null
                  ? `; calls table: ${result.calls.written} calls`
                  : `; CALLS NOT COMPUTED: ${result.calls.error}`) +
                (result.droppedEvents > 0
                  ? `; ${result.droppedEvents} events DROPPED (store too slow or failed)`
                  : '') +
                `\n${flowLine(flow)}\n`,
            );
          }
          return input.live ? EXIT_OK : cutShortExit(input.name, s);
        } finally {
          spool?.close();
          await alerts?.stop();
          await store.close();
        }
      } finally {
        await vms?.close();
      }
    } finally {
      input.done();
      await metrics?.close();
    }
  },
};

/**
 * Where every event of the run went (docs/BACKPRESSURE.md): `events` (what the capture produced) =
 * `stored` + `skipped` + `lost` + `dropped` + `refused` + `pending`; `unaccounted` is the rest and is 0
 * unless something is broken. Also the bounds that gave the backpressure and how full they got.
 */
export function flowReport(result: StoreCaptureResult) {
  const store = result.store;
  const flow = result.flow;
  const sum = (counts: Record<string, number | undefined>) =>
    Object.values(counts).reduce<number>((n, v) => n + (v ?? 0), 0);
  const dropped = flow.queue?.dropped ?? {};
  const refused = flow.refused.store ?? 0;
  const accounted =
    store.delivered + sum(store.skipped) + sum(store.lost) + sum(dropped) + refused + store.pending;
  return {
    /** Events the capture produced. */
    events: flow.events,
    /** Events whose rows the store acknowledged. */
    stored: store.delivered,
    skipped: sum(store.skipped),
    lost: sum(store.lost),
    /** Live: dropped by the bounded queue, by reason ('queue full': the store could not keep up). */
    dropped,
    /** Events of writes the store sink refused (not in its accepted). */
    refused,
    pending: store.pending,
    unaccounted: flow.events - accounted,
    /** Live: the queue's bound (--max-queued-events) and high-water mark; null for a file. */
    maxQueuedEvents: flow.queue?.maxItems ?? null,
    queuePeak: flow.queue?.peak ?? null,
    /** Most events the store sink held accepted and not yet stored (its two batches at most). */
    storePendingPeak: flow.pendingPeak.store ?? 0,
    /** File: ms the reader waited for the sinks (the store mostly): the file was read that much slower. */
    waitedForSinksMs: flow.sinksWaitedMs,
  };
}

/** The flow report as one line of the text summary. */
function flowLine(f: ReturnType<typeof flowReport>): string {
  const reasons = Object.entries(f.dropped);
  const dropped = reasons.reduce((n, [, v]) => n + (v ?? 0), 0);
  const why = reasons.map(([reason, n]) => `${n} ${reason}`).join(', ');
  const parts = [
    `events: ${f.events} captured = ${f.stored} stored + ${f.skipped} skipped + ${f.lost} lost` +
      ` + ${dropped} dropped${why ? ` (${why})` : ''}` +
      (f.refused > 0 ? ` + ${f.refused} refused` : '') +
      (f.pending > 0 ? ` + ${f.pending} pending` : '') +
      (f.unaccounted !== 0 ? ` + ${f.unaccounted} UNACCOUNTED` : ''),
  ];
  if (f.maxQueuedEvents !== null) parts.push(`live queue peak ${f.queuePeak} of ${f.maxQueuedEvents}`);
  else parts.push(`read waited ${(f.waitedForSinksMs / 1000).toFixed(1)} s for the store`);
  parts.push(`store pending peak ${f.storePendingPeak}`);
  return parts.join('; ');
}
