/**
 * Commands that use the store: `run` (file → store in one process), `stats` (the analyze summary,
 * computed by SQL from the store), `store` (serve the embedded store over the ClickHouse HTTP interface).
 * Every one reaches the store through @clickhouse/client: a ClickHouse URL selects server mode, otherwise
 * the embedded chDB store owns `--data-dir`.
 */
import { parseArgs } from 'node:util';
import type { AnalyzeInterfaceOptions } from '../capture/analyze.js';
import { LiveCaptureError, loadPcap } from '../capture/live/binding.js';
import { readLinkState } from '../capture/live/link.js';
import type { CaptureTotals } from '../capture/live/stats.js';
import type { Logger } from '../core/log.js';
import { ingestFile, ingestInterface } from '../ingest/run.js';
import { MAX_TTL_DAYS } from '../ingest/schema/ddl.js';
import { migrate } from '../ingest/schema/migrate.js';
import { storeSummary } from '../ingest/stats.js';
import { DEFAULT_DATA_DIR, openStore, type Store } from '../ingest/store/client.js';
import { EmbeddedStore } from '../ingest/store/embedded.js';
import {
  COMMON,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_UNUSABLE_INPUT,
  loggerFor,
  MEDIA_FLAGS,
  pipelineOptionsOf,
  progressFor,
} from './common.js';
import { Settings, UsageError } from './config.js';
import { formatInt } from './progress.js';
import { formatSummary } from './report.js';
import { VM_FLAGS, type VmSource, vmReport, vmSourceFor } from './vms.js';

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

/** Flags of live capture (run, capture). */
export const LIVE_OPTIONS = {
  interface: { type: 'string', short: 'i' },
  filter: { type: 'string' },
  snaplen: { type: 'string' },
  'buffer-size': { type: 'string' },
  'no-promisc': { type: 'boolean' },
  immediate: { type: 'boolean' },
  duration: { type: 'string' },
  'health-interval': { type: 'string' },
  'max-queued-events': { type: 'string' },
} as const;

export const LIVE_HELP = `Live capture options (run, capture; instead of --pcap):
  --interface IFACE      capture on this interface (libpcap; needs root or CAP_NET_RAW)
                                                                        env CALLSCOPE_INTERFACE
  --filter BPF           capture filter, tcpdump syntax (none)         env CALLSCOPE_FILTER
  --snaplen N            bytes kept per packet (262144)
  --buffer-size BYTES    kernel capture buffer (33554432 = 32 MiB)
  --no-promisc           do not put the interface in promiscuous mode
  --immediate            libpcap immediate mode (lower latency, far fewer packets per buffer byte)
  --duration S           stop after S seconds (default: until SIGINT/SIGTERM)
  --health-interval S    capture-health record and log line every S seconds (10)
  --max-queued-events N  events that may wait for the sink before they are dropped (100000)
  SIGINT/SIGTERM stop the capture, flush everything to the sink and exit 0 with the summary.
`;

/** Which source a capture command reads: exactly one of --pcap and --interface. */
export function sourceOf(settings: Settings, command: string): { pcap?: string; interface?: string } {
  const pcap = settings.string('pcap');
  const iface = settings.string('interface');
  if (pcap && iface) throw new UsageError(`${command} takes --pcap FILE or --interface IFACE, not both`);
  if (!pcap && !iface) throw new UsageError(`${command} needs --pcap FILE or --interface IFACE`);
  return pcap ? { pcap } : { interface: iface };
}

/** --duration at most (a year; the capture re-arms its timer past Node's 2^31-1 ms limit). */
export const MAX_DURATION_SEC = 365 * 86_400;
/** --health-interval bounds, seconds. */
export const MIN_HEALTH_INTERVAL_SEC = 1;
export const MAX_HEALTH_INTERVAL_SEC = 86_400;

/** Live capture settings from the flags (validated), for analyzeInterface / ingestInterface. */
export function liveOptionsOf(
  settings: Settings,
  values: { 'no-promisc'?: boolean; immediate?: boolean },
): Pick<AnalyzeInterfaceOptions, 'capture' | 'durationSec'> & { maxQueuedEvents: number } {
  const whole = (name: string, fallback: number, min: number, max: number): number => {
    const n = settings.number(name, fallback);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new UsageError(`--${name} must be a whole number ${min}..${max}, got ${n}`);
    return n;
  };
  const duration = settings.string('duration');
  let durationSec: number | undefined;
  if (duration !== undefined) {
    durationSec = Number(duration);
    if (!(durationSec > 0 && durationSec <= MAX_DURATION_SEC))
      throw new UsageError(
        `--duration must be a number of seconds > 0 and <= ${MAX_DURATION_SEC} (a year), got "${duration}"`,
      );
  }
  const health = settings.number('health-interval', 10);
  if (!(health >= MIN_HEALTH_INTERVAL_SEC && health <= MAX_HEALTH_INTERVAL_SEC))
    throw new UsageError(
      `--health-interval must be ${MIN_HEALTH_INTERVAL_SEC}..${MAX_HEALTH_INTERVAL_SEC} seconds (1 s to a day), got ${health}`,
    );
  return {
    durationSec,
    maxQueuedEvents: whole('max-queued-events', 100_000, 1, 100_000_000),
    capture: {
      filter: settings.string('filter'),
      snaplen: whole('snaplen', 262_144, 64, 262_144),
      bufferSize: whole('buffer-size', 32 << 20, 65_536, 2 ** 31 - 1),
      promiscuous: !values['no-promisc'],
      immediate: Boolean(values.immediate),
      healthIntervalMs: Math.round(health * 1000),
    },
  };
}

/**
 * Fails fast, before a store or Kafka is opened: the pcap package must load and the interface exist.
 * Throws LiveCaptureError (see liveErrorExit).
 */
export function checkLiveSource(iface: string): void {
  loadPcap();
  const link = readLinkState(iface);
  if (link !== null && !link.exists && iface !== 'any')
    throw new LiveCaptureError(`cannot capture on ${iface}: no such interface`, 'open-failed');
}

/** A LiveCaptureError as a message and exit code (2: the interface cannot be opened), else null. */
export function liveErrorExit(error: unknown): number | null {
  if (!(error instanceof LiveCaptureError)) return null;
  process.stderr.write(`callscope: ${error.message}\n`);
  return error.reason === 'pcap-missing' ? EXIT_FAILURE : EXIT_UNUSABLE_INPUT;
}

/**
 * An AbortSignal that SIGINT or SIGTERM aborts (the capture then stops and flushes); a second signal
 * exits at once. `dispose` removes the handlers.
 */
export function stopOnSignals(logger: Logger): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const on = (name: NodeJS.Signals) => () => {
    if (controller.signal.aborted) {
      process.stderr.write(`callscope: second ${name}: exiting without flushing\n`);
      process.exit(130);
    }
    logger.info('stopping the capture', { signal: name });
    controller.abort();
  };
  const onInt = on('SIGINT');
  const onTerm = on('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}

/** A progress line for a live capture on a terminal's stderr (unless --no-progress). */
export function liveProgressFor(
  label: string,
  values: { 'no-progress'?: boolean },
): { update: (totals: CaptureTotals, elapsedSec: number) => void; done: () => void } {
  const enabled = Boolean(process.stderr.isTTY) && !values['no-progress'];
  let drawn = false;
  let lastPackets = 0;
  let lastAt = 0;
  return {
    update: (t, elapsedSec) => {
      if (!enabled) return;
      const rate = elapsedSec > lastAt ? (t.packets - lastPackets) / (elapsedSec - lastAt) : 0;
      lastPackets = t.packets;
      lastAt = elapsedSec;
      const clock = new Date(elapsedSec * 1000).toISOString().slice(11, 19);
      const line =
        `${label} ${clock}  ${formatInt(t.packets)} packets  ${formatInt(rate)}/s  ` +
        `${(t.bytes / 1048576).toFixed(1)} MiB  dropped ${formatInt(t.droppedKernel + t.droppedOverload)}` +
        (t.reopenings > 0 ? `  reopened ${t.reopenings}` : '');
      process.stderr.write(`\r${line.slice(0, (process.stderr.columns ?? 120) - 1)}\x1b[K`);
      drawn = true;
    },
    done: () => {
      if (drawn) process.stderr.write('\r\x1b[K');
      drawn = false;
    },
  };
}

/** The VM source (if any) and then the store, the first closed again if the second fails. */
async function openVmsAndStore(
  settings: Settings,
  logger: Logger,
): Promise<{ vms: VmSource | null; store: Store }> {
  const vms = await vmSourceFor(settings, logger);
  try {
    return { vms, store: await storeFor(settings, logger) };
  } catch (error) {
    await vms?.close();
    throw error;
  }
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
      ...LIVE_OPTIONS,
      ...MEDIA_FLAGS,
      ...VM_FLAGS,
    },
  });
  if (values.help) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length > 0)
    throw new UsageError(`run takes no positional arguments (use --pcap FILE or --interface IFACE)`);
  const settings = new Settings(values);
  const source = sourceOf(settings, 'run');
  if (source.interface !== undefined) return runLive(source.interface, settings, values);
  const pcap = source.pcap as string;
  const logger = loggerFor(settings);
  const progress = progressFor('run', values);
  const { vms, store } = await openVmsAndStore(settings, logger);
  try {
    const result = await ingestFile(pcap, {
      ...pipelineOptionsOf(settings, logger, vms),
      inventory: vms ?? undefined,
      store,
      database: databaseOf(settings),
      ttlDays: ttlDaysOf(settings),
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
      vms: vmReport(vms),
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
    await vms?.close();
  }
}

async function runLive(
  iface: string,
  settings: Settings,
  values: { json?: boolean; 'no-progress'?: boolean; 'no-promisc'?: boolean; immediate?: boolean },
): Promise<number> {
  const live = liveOptionsOf(settings, values);
  const logger = loggerFor(settings);
  try {
    checkLiveSource(iface);
  } catch (error) {
    const code = liveErrorExit(error);
    if (code !== null) return code;
    throw error;
  }
  const { vms, store } = await openVmsAndStore(settings, logger);
  const progress = liveProgressFor('run', values);
  const stop = stopOnSignals(logger);
  try {
    const result = await ingestInterface(iface, {
      ...pipelineOptionsOf(settings, logger, vms),
      inventory: vms ?? undefined,
      store,
      database: databaseOf(settings),
      ttlDays: ttlDaysOf(settings),
      ...live,
      signal: stop.signal,
      onProgress: (totals, elapsed) => progress.update(totals, elapsed),
    });
    progress.done();
    const s = result.summary;
    const out = {
      runId: result.runId,
      interface: iface,
      store: { mode: store.mode, url: store.displayUrl, database: databaseOf(settings) },
      packets: s.packets,
      sipMessages: s.sip.messages,
      rtpStreams: s.rtp.streams.length,
      capture: s.capture,
      events: result.writer.events,
      droppedEvents: result.droppedEvents,
      rows: result.writer.rowsByTable,
      healthRows: result.healthRows,
      batches: result.writer.batches,
      retries: result.writer.retries,
      skipped: result.writer.skippedByReason,
      vms: vmReport(vms),
    };
    const c = s.capture;
    process.stdout.write(
      values.json
        ? `${JSON.stringify(out, null, 2)}\n`
        : `captured ${iface}: ${out.packets} packets (kernel: ${c?.received ?? 0} received, ` +
            `${c?.droppedKernel ?? 0} dropped; ${c?.reopenings ?? 0} reopenings), ${out.sipMessages} SIP messages → ` +
            `${result.writer.rows} rows (${Object.entries(out.rows)
              .map(([t, n]) => `${t} ${n}`)
              .join(
                ', ',
              )}, capture_health ${result.healthRows}) in ${store.mode} store ${store.displayUrl}, ` +
            `run ${result.runId}${result.droppedEvents > 0 ? `; ${result.droppedEvents} events DROPPED (store too slow)` : ''}\n`,
    );
    return EXIT_OK;
  } catch (error) {
    const code = liveErrorExit(error);
    if (code !== null) return code;
    throw error;
  } finally {
    stop.dispose();
    progress.done();
    await store.close();
    await vms?.close();
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
