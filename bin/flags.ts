/**
 * The flags callscope's commands share, their help text, and how settings (flags, CALLSCOPE_*
 * environment, --config file) become the options of sources and sinks. A command picks the groups it
 * takes; its --help shows exactly those.
 */
import { hostname } from 'node:os';
import { DEFAULT_HEURISTIC_WINDOW_MS, type LinkOptions } from '../analyze/calls/linker.js';
import { RtpSpool } from '../capture/rtp-spool.js';
import type { CaptureOptions, InterfaceSourceOptions } from '../capture/sources.js';
import { createLogger, type Logger, type LogLevel } from '../core/log.js';
import { DEFAULT_GROUP_ID, DEFAULT_TOPIC } from '../ingest/kafka/constants.js';
import { MAX_TTL_DAYS } from '../ingest/schema/ddl.js';
import { DEFAULT_DATA_DIR } from '../ingest/store/client.js';
import { type Settings, UsageError } from './config.js';
import { ProgressLine } from './progress.js';

export const COMMON = {
  json: { type: 'boolean' },
  'stats-interval': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'node-name': { type: 'string' },
  'capture-id': { type: 'string' },
  config: { type: 'string' },
} as const;

export const COMMON_HELP = `Common options:
  --json                 machine-readable output on stdout
  --log-level LEVEL      debug, info, warn, error, silent (warn; info for a live capture,
                         ingest and store, whose statistics lines are info)  env CALLSCOPE_LOG_LEVEL
  --stats-interval S     live capture, ingest, store: a statistics line every S seconds (60; 0 none)
  --log-format FORMAT    json (default when not a terminal) or text    env CALLSCOPE_LOG_FORMAT
  --node-name NAME       capture node name carried in events           env CALLSCOPE_NODE_NAME
  --capture-id N         HEP capture agent id                          env CALLSCOPE_CAPTURE_ID
  --config FILE          JSON file with the same settings (camelCase)  env CALLSCOPE_CONFIG
  -h, --help             this help
`;

export const MEDIA_FLAGS = {
  'no-progress': { type: 'boolean' },
  'rtp-heuristic': { type: 'string' },
  'report-interval': { type: 'string' },
  'rtp-idle-timeout': { type: 'string' },
} as const;

export const MEDIA_HELP = `Media options:
  --rtp-heuristic on|off find RTP no SDP announced by its headers (on)  env CALLSCOPE_RTP_HEURISTIC
  --report-interval S    seconds between a stream's quality reports (10) env CALLSCOPE_REPORT_INTERVAL
  --rtp-idle-timeout S   a stream silent this long has ended (60)      env CALLSCOPE_RTP_IDLE_TIMEOUT
  --no-progress          no progress line on the terminal
`;

export const RTP_SPOOL_FLAGS = {
  'save-rtp': { type: 'string' },
  'save-rtp-max-mb': { type: 'string' },
  'save-rtp-call-mb': { type: 'string' },
  'save-rtp-max-age': { type: 'string' },
} as const;

export const RTP_SPOOL_HELP = `RTP spool (the media of each call, for \`callscope export --rtp-dir\`):
  --save-rtp DIR         keep every RTP, RTCP and T.38 packet bound to a call in DIR/DAY/CALL.pcap
  --save-rtp-max-mb N    all files together at most N MiB; the least recently written go first (1024)
  --save-rtp-call-mb N   one call's file at most N MiB; past it its packets are dropped, counted (50)
  --save-rtp-max-age H   files not written for H hours are deleted (24)
`;

/** The RTP spool the flags ask for, or null; validated. The caller closes it. */
export function rtpSpoolOf(settings: Settings, logger: Logger): RtpSpool | null {
  const dir = settings.string('save-rtp');
  if (dir === undefined || dir === '') return null;
  const positive = (name: string, fallback: number) => {
    const n = settings.number(name, fallback);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a number > 0, got ${n}`);
    return n;
  };
  return new RtpSpool({
    dir,
    maxBytes: Math.round(positive('save-rtp-max-mb', 1024) * 1048576),
    maxCallBytes: Math.round(positive('save-rtp-call-mb', 50) * 1048576),
    maxAgeMs: positive('save-rtp-max-age', 24) * 3_600_000,
    logger,
  });
}

/** The call a command names, as its argument or by --call-id (the same one if both). */
export function callIdOf(settings: Settings, argument: string | undefined, command: string): string {
  const flag = settings.string('call-id');
  if (flag !== undefined && argument !== undefined && flag !== argument)
    throw new UsageError('the Call-ID is given twice, differently');
  const callId = flag ?? argument;
  if (callId === undefined || callId === '')
    throw new UsageError(`name the call: callscope ${command} CALL-ID`);
  return callId;
}

export const STORE_FLAGS = {
  clickhouse: { type: 'string' },
  'clickhouse-user': { type: 'string' },
  'clickhouse-password': { type: 'string' },
  database: { type: 'string' },
  'data-dir': { type: 'string' },
  'ttl-days': { type: 'string' },
} as const;

export const STORE_HELP = `Store options:
  --clickhouse URL       ClickHouse server (http[s]://host:8123); without it the
                         embedded store owns --data-dir                 env CALLSCOPE_CLICKHOUSE
  --clickhouse-user U    --clickhouse-password P (never logged)         env CALLSCOPE_CLICKHOUSE_USER/_PASSWORD
  --database NAME        database of callscope's tables (callscope)     env CALLSCOPE_DATABASE
  --data-dir DIR         embedded store directory (${DEFAULT_DATA_DIR})  env CALLSCOPE_DATA_DIR
  --ttl-days N           days rows are kept, 0 forever (30)             env CALLSCOPE_TTL_DAYS
`;

export const LIVE_FLAGS = {
  pcap: { type: 'string' },
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

export const LIVE_HELP = `Source (one of):
  --pcap FILE            a pcap or pcapng capture file                  env CALLSCOPE_PCAP
  --interface IFACE      capture live on this interface (libpcap; needs root or CAP_NET_RAW)
                                                                        env CALLSCOPE_INTERFACE
Live capture options:
  --filter BPF           capture filter, tcpdump syntax (none)         env CALLSCOPE_FILTER
  --snaplen N            bytes kept per packet (262144)
  --buffer-size BYTES    kernel capture buffer (33554432 = 32 MiB)
  --no-promisc           do not put the interface in promiscuous mode
  --immediate            libpcap immediate mode (lower latency, far fewer packets per buffer byte)
  --duration S           stop after S seconds (default: until SIGINT/SIGTERM)
  --health-interval S    capture-health record and log line every S seconds (10)
  --max-queued-events N  events that may wait for the sinks before they are dropped (100000)
  SIGINT/SIGTERM stop the capture, flush everything to the sinks and exit 0 with the summary.
`;

export const KAFKA_FLAGS = {
  kafka: { type: 'string' },
  topic: { type: 'string' },
  partitions: { type: 'string' },
  'hep-auth-key': { type: 'string' },
} as const;

export const KAFKA_HELP = `Split-mode options:
  --kafka BROKERS        host:port[,host:port...]                        env CALLSCOPE_KAFKA
  --topic NAME           events topic (${DEFAULT_TOPIC}); dead letters go to NAME.dlq
  --partitions N         partitions when creating the topic (6)
  --hep-auth-key KEY     HEP auth key sent (capture) or required (ingest)   env CALLSCOPE_HEP_AUTH_KEY
`;

export const GROUP_HELP = `  --group NAME           consumer group (${DEFAULT_GROUP_ID})
`;

/** Every exit code callscope returns; the README documents the same list. */
export const EXIT_CODES_HELP = `Exit codes:
  0   success (also after SIGINT/SIGTERM ends a live capture or a service)
  1   failure (a bug, or an error without a better code; the message says what)
  2   unusable input: a capture file that cannot be read from its start, an interface that cannot be captured on
  64  usage error: unknown command or flag, bad flag value
  65  a rules file (--alert-rules) with a mistake: one line names the rule and the field
  66  what was named does not exist: a --data-dir without a store, an unknown --run
  69  a service named does not answer: --ovs-db, --clickhouse, Kafka brokers
  75  in use by another process: the data directory (a running store or run), the port; try again or stop it
`;

export const LINK_FLAGS = {
  'link-callid-prefix': { type: 'string' },
  'link-callid-suffix': { type: 'string' },
  'link-heuristic-window': { type: 'string' },
} as const;

export const LINK_HELP = `B2BUA leg linking (X-CID, Session-ID and icid-value always; docs/CALLS.md):
  --link-callid-prefix P   a leg's Call-ID is P + the first leg's           env CALLSCOPE_LINK_CALLID_PREFIX
  --link-callid-suffix S   a leg's Call-ID is the first leg's + S (_b2b-1)  env CALLSCOPE_LINK_CALLID_SUFFIX
  --link-heuristic-window S  link by same user, the leg leaving where the first went, within S
                         seconds (2; 0 off); such links say "heuristic"      env CALLSCOPE_LINK_HEURISTIC_WINDOW
`;

/** How B2BUA legs are linked, from the flags. */
export function linkOf(settings: Settings): LinkOptions {
  const window = settings.number('link-heuristic-window', DEFAULT_HEURISTIC_WINDOW_MS / 1000);
  if (!(window >= 0 && window <= 60))
    throw new UsageError(`--link-heuristic-window must be 0..60 seconds, got ${window}`);
  return {
    callIdPrefix: settings.string('link-callid-prefix') || undefined,
    callIdSuffix: settings.string('link-callid-suffix') || undefined,
    heuristicWindowMs: Math.round(window * 1000),
  };
}

/** HEP carries the capture agent id as an unsigned 32-bit number. */
export function captureIdOf(settings: Settings): number {
  const id = settings.number('capture-id', 0);
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff)
    throw new UsageError(`--capture-id must be 0..4294967295, got ${id}`);
  return id;
}

/**
 * The logger the settings ask for. Long-running commands (a live capture, ingest, store) default to
 * `info`, so that their periodic statistics show; one-shot commands to `warn`.
 */
export function loggerFor(settings: Settings, defaultLevel: LogLevel = 'warn'): Logger {
  const level = settings.string('log-level', defaultLevel) as LogLevel;
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(level))
    throw new UsageError(`unknown log level "${level}"`);
  const format = settings.string('log-format', process.stderr.isTTY ? 'text' : 'json');
  if (format !== 'json' && format !== 'text') throw new UsageError(`unknown log format "${format}"`);
  return createLogger({ level, format });
}

function mediaOptions(settings: Settings): CaptureOptions['media'] {
  const heuristic = settings.string('rtp-heuristic', 'on');
  if (heuristic !== 'on' && heuristic !== 'off') {
    throw new UsageError(`--rtp-heuristic expects on or off, got "${heuristic}"`);
  }
  const seconds = (name: string, fallback: number): number => {
    const n = settings.number(name, fallback);
    if (!(n > 0)) throw new UsageError(`--${name} must be a positive number of seconds, got ${n}`);
    return n * 1000;
  };
  return {
    heuristic: heuristic === 'on',
    reportIntervalMs: seconds('report-interval', 10),
    idleTimeoutMs: seconds('rtp-idle-timeout', 60),
  };
}

/** What every decoding command (analyze, run, capture) gives its capture source. */
export function captureOptionsOf(
  settings: Settings,
  logger: Logger,
  vms: { attribution: CaptureOptions['vms'] } | null,
  spool: RtpSpool | null = null,
): CaptureOptions {
  return {
    logger,
    nodeName: nodeNameOf(settings),
    captureId: captureIdOf(settings),
    media: mediaOptions(settings),
    vms: vms?.attribution,
    onMediaPacket: spool === null ? undefined : (record, callId) => spool.add(record, callId),
  };
}

export function nodeNameOf(settings: Settings): string {
  return settings.string('node-name', '');
}

/** The hypervisor a VM inventory belongs to: the node name, else this host's name. */
export function hypervisorOf(settings: Settings): string {
  return nodeNameOf(settings) || hostname();
}

/** A progress line on a terminal's stderr unless --no-progress. */
export function progressFor(label: string, values: { 'no-progress'?: boolean }): ProgressLine {
  return new ProgressLine(label, process.stderr, Boolean(process.stderr.isTTY) && !values['no-progress']);
}

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

/**
 * `--store-batch-rows N` (run): rows that make a store batch full; undefined for the writer's default.
 * The store sink holds at most two batches (one filling, one being stored), so this bounds the events
 * it holds before the source waits (a file) or the live queue fills (docs/BACKPRESSURE.md).
 */
export function storeBatchRowsOf(settings: Settings): number | undefined {
  if (settings.string('store-batch-rows') === undefined) return undefined;
  const n = settings.number('store-batch-rows', 0);
  if (!Number.isInteger(n) || n < 1 || n > 10_000_000)
    throw new UsageError(`--store-batch-rows must be a whole number 1..10000000, got ${n}`);
  return n;
}

/** Which capture source a command reads: exactly one of --pcap and --interface. */
export function captureInputOf(settings: Settings, command: string): { pcap?: string; interface?: string } {
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

/** Live capture settings from the flags (validated). */
export function liveOptionsOf(
  settings: Settings,
  values: { 'no-promisc'?: boolean; immediate?: boolean },
): Pick<InterfaceSourceOptions, 'capture' | 'durationSec'> & { maxQueuedEvents: number } {
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

export function topicOf(settings: Settings): string {
  return settings.string('topic', DEFAULT_TOPIC);
}

export function partitionsOf(settings: Settings): number {
  const partitions = settings.number('partitions', 6);
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new UsageError('--partitions must be a positive integer');
  return partitions;
}

/** A time flag: ISO 8601, or a duration back from now (`15m`, `2h`, `7d`). */
export function timeOf(settings: Settings, name: string, now = Date.now()): Date | undefined {
  const text = settings.string(name);
  if (text === undefined) return undefined;
  const ago = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/.exec(text.trim());
  if (ago) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86_400e3 }[ago[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now - Number(ago[1]) * unit);
  }
  const ms = Date.parse(text);
  if (Number.isNaN(ms))
    throw new UsageError(
      `--${name} expects an ISO time (2026-12-06T10:00:00Z) or an age (15m, 2h, 7d), got "${text}"`,
    );
  return new Date(ms);
}

/**
 * `[HOST:]PORT` of a flag that makes callscope listen (--hep-listen, --metrics-listen); HOST defaults
 * to every IPv4 address, an IPv6 host may be in brackets. `flag` names it in the error.
 */
export function listenAddressOf(text: string, flag: string): { host: string; port: number } {
  const m = /^(?:(.*):)?(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) throw new UsageError(`${flag} expects [HOST:]PORT, got "${text}"`);
  return { host: m[1]?.replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}

export const METRICS_FLAGS = {
  'metrics-listen': { type: 'string' },
} as const;

export const METRICS_HELP = `Prometheus metrics (docs/METRICS.md):
  --metrics-listen [HOST:]PORT  serve them on http://HOST:PORT/metrics (HOST: every address); PORT 0
                         picks a free port, logged and in the --json output
                                                                        env CALLSCOPE_METRICS_LISTEN
`;

/** Where --metrics-listen asks the metrics to be served, or null (none). */
export function metricsListenOf(settings: Settings): { host: string; port: number } | null {
  const text = settings.string('metrics-listen');
  return text === undefined || text === '' ? null : listenAddressOf(text, '--metrics-listen');
}

/** `--stats-interval` in ms (0: no statistics lines). */
export function statsIntervalOf(settings: Settings): number {
  const n = settings.number('stats-interval', 60);
  if (!(n >= 0 && n <= 86_400)) throw new UsageError(`--stats-interval must be 0..86400 seconds, got ${n}`);
  return Math.round(n * 1000);
}
