/**
 * Kafka at scale (issue 15): capture → topic → `callscope ingest` → store, with the ingest side as the
 * product's own processes.
 *
 * 1. Producer alone: `EventProducer` (the capture side's, spool and all) sending N SIP events to a
 *    fresh topic, per compression codec kafkajs has here (none, gzip; lz4/zstd/snappy need codec
 *    packages this project does not ship), with the bytes of the produce requests.
 * 2. End to end: one or two `callscope ingest` processes (consumer group, `--calls-job off`) on a
 *    topic of P partitions; once the group is stable this process produces N events (as `callscope
 *    capture` would) and the rate is N over the time from the first send to the moment every row is
 *    in the store(s) (`count()` polled every 50 ms, then `count() … FINAL` checked exact). Stores:
 *    `own` (each consumer its own embedded store, rows counted across both) or `shared` (one
 *    `callscope store` process, the consumers write to it over HTTP with `--clickhouse`).
 * 3. Drain: the same, but the consumers are stopped (SIGSTOP) while the topic is filled, then let go
 *    (SIGCONT): the consumer side alone, without the producer competing for the 2 cores.
 *
 * Every process's CPU time is read from /proc, so each figure says where the cores went (producer =
 * this process, broker = the mock, consumers, store). Runs alternate between setups; medians are
 * reported. `node dist/test/bench/kafka.js [--quick] [--json] [--runs N] [--events N]
 * [--only produce,e2e,drain] [--cpu-prof DIR]` runs it alone.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import type { CaptureEvent } from '../../core/event.js';
import { silentLogger } from '../../core/log.js';
import { tuneRuntime } from '../../core/runtime.js';
import { createKafka } from '../../ingest/kafka/client.js';
import { EventProducer, type ProducerCompression } from '../../ingest/kafka/producer.js';
import {
  haveMockKafka,
  type MockKafka,
  mockKafkaUnavailableReason,
  startMockKafka,
} from '../oracle/kafka-mock.js';
import { generateSipCapture, loadSipEvents, timeBox } from './store.js';

export type KafkaBenchPart = 'produce' | 'e2e' | 'drain';

export interface ConsumerSetup {
  consumers: 1 | 2;
  store: 'own' | 'shared';
}

export interface KafkaScaleBenchOptions {
  log: (line: string) => void;
  quick?: boolean;
  /** Runs of each setup, alternated (default 3; quick 1). */
  runs?: number;
  /** SIP events per run (default 200,000; quick 50,000). */
  events?: number;
  /** Partitions of the events topic (default 16). */
  partitions?: number;
  only?: KafkaBenchPart[];
  compressions?: ProducerCompression[];
  setups?: ConsumerSetup[];
  /** Producer settings of the end-to-end and drain runs (default: EventProducer's). */
  producer?: { batchSize?: number; lingerMs?: number; compression?: ProducerCompression };
  /** Consumers run with --cpu-prof, profiles written here. */
  cpuProfileDir?: string;
  /** Extra arguments for every `callscope ingest`. */
  ingestArgs?: string[];
  /** `callscope ingest --session-timeout` (default 6,000 ms; null: not passed, for older builds). */
  sessionTimeoutMs?: number | null;
}

export interface CpuSplit {
  /** CPU seconds of each process over the measured period. */
  producer: number;
  broker: number;
  consumers: number;
  store: number;
  /** Sum over wall × cores: how busy the machine was (1 = every core all the time). */
  busy: number;
}

export interface ProduceFigures {
  compression: ProducerCompression;
  events: number;
  /** Medians over the runs. */
  perSecond: number;
  seconds: number;
  runs: number[];
  /** Bytes of the produce requests (what crosses the network), per event. */
  requestBytes: number;
  bytesPerEvent: number;
  /** This process's CPU (encoding, batching, compression in libuv's pool) per event, µs. */
  cpuUsPerEvent: number;
  brokerCpuUsPerEvent: number;
}

export interface ScaleFigures {
  mode: 'e2e' | 'drain';
  consumers: number;
  store: 'own' | 'shared';
  partitions: number;
  events: number;
  perSecond: number;
  seconds: number;
  runs: number[];
  exact: boolean;
  storedRows: number;
  /** Median CPU µs per event, by process. */
  cpuUsPerEvent: CpuSplit;
  groupStableMs: number;
  target: { eventsPerSecond: number; met: boolean };
}

export interface KafkaScaleFigures {
  machine: { cores: number; cpu: string; node: string; loadAverage: number };
  produce: ProduceFigures[];
  e2e: ScaleFigures[];
  drain: ScaleFigures[];
}

const HERE = dirname(fileURLToPath(import.meta.url));
const CALLSCOPE = join(HERE, '..', '..', 'bin', 'callscope.js');
const TICK = 100; // /proc clock ticks per second on Linux
const TARGET = 50_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const round = (n: number, digits = 0) => Math.round(n * 10 ** digits) / 10 ** digits;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** CPU seconds a process used so far (user + system, its threads included), from /proc. */
function procCpu(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICK;
  } catch {
    return 0;
  }
}

/** The mock broker's pid: our child named mock-cluster (startMockKafka does not expose it). */
function mockPid(): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && comm.startsWith('mock-cluster')) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

function selfCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

// ---------------------------------------------------------------------------------------------------
// Child processes: `callscope ingest` and `callscope store`

interface Child {
  process: ChildProcess;
  /** JSON lines of stdout. */
  out: Record<string, unknown>[];
  /** JSON log lines of stderr. */
  logs: Record<string, unknown>[];
  stderrTail: string;
  exited: Promise<number | null>;
  waitFor(
    pred: (line: Record<string, unknown>) => boolean,
    what: string,
    ms?: number,
  ): Promise<Record<string, unknown>>;
}

function startChild(args: string[], nodeFlags: string[] = []): Child {
  const proc = spawn(process.execPath, ['--max-semi-space-size=64', ...nodeFlags, CALLSCOPE, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Record<string, unknown>[] = [];
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderrTail = '';
  const child: Child = {
    process: proc,
    out,
    logs,
    get stderrTail() {
      return stderrTail;
    },
    exited: new Promise((resolve) => proc.on('exit', (code) => resolve(code))),
    waitFor(pred, what, ms = 60_000) {
      return timeBox(
        what,
        ms,
        new Promise((resolve, reject) => {
          const check = () => {
            const hit = [...out, ...logs].find(pred);
            if (hit) {
              waiters.delete(check);
              resolve(hit);
            } else if (proc.exitCode !== null || proc.signalCode !== null) {
              waiters.delete(check);
              reject(new Error(`${what}: child exited (${proc.exitCode ?? proc.signalCode}): ${stderrTail}`));
            }
          };
          waiters.add(check);
          check();
        }),
      );
    },
  } as Child;
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON
    }
    notify();
  });
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    stderrTail = `${stderrTail}${line}\n`.slice(-3000);
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON
    }
    notify();
  });
  proc.on('exit', notify);
  return child;
}

async function stopChild(child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill('SIGCONT');
  child.process.kill('SIGTERM');
  const timer = setTimeout(() => child.process.kill('SIGKILL'), 20_000);
  await child.exited;
  clearTimeout(timer);
}

function clientOf(url: string): ClickHouseClient {
  return createClient({ url, log: { level: ClickHouseLogLevel.OFF }, request_timeout: 60_000 });
}

async function count(client: ClickHouseClient, final: boolean): Promise<number> {
  const result = await client.query({
    query: `SELECT count() AS n FROM callscope.sip_messages${final ? ' FINAL' : ''}`,
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ n: number | string }>();
  return Number(rows[0]?.n ?? 0);
}

async function countAll(clients: readonly ClickHouseClient[], final: boolean): Promise<number> {
  const counts = await Promise.all(clients.map((c) => count(c, final).catch(() => 0)));
  return counts.reduce((a, b) => a + b, 0);
}

// ---------------------------------------------------------------------------------------------------
// The producer (capture side)

interface Produced {
  seconds: number;
  requestBytes: number;
  cpu: number;
}

/** A kafkajs client like createKafka's whose sockets are kept, to count the bytes the producer sent. */
function countingKafka(bootstrap: string): { kafka: Kafka; bytesWritten: () => number } {
  const sockets: Socket[] = [];
  const kafka = new Kafka({
    clientId: 'bench-capture',
    brokers: bootstrap.split(','),
    connectionTimeout: 3000,
    requestTimeout: 10_000,
    logLevel: logLevel.NOTHING,
    socketFactory: ({ host, port, onConnect }) => {
      const socket = netConnect({ host, port }, onConnect);
      socket.setKeepAlive(true, 60_000);
      sockets.push(socket);
      return socket;
    },
  });
  return { kafka, bytesWritten: () => sockets.reduce((n, s) => n + s.bytesWritten, 0) };
}

async function produce(
  mock: MockKafka,
  topic: string,
  events: readonly CaptureEvent[],
  spoolDir: string,
  settings: { batchSize?: number; lingerMs?: number; compression?: ProducerCompression },
): Promise<Produced & { producer: EventProducer }> {
  const client = countingKafka(mock.bootstrap);
  const producer = new EventProducer({
    kafka: client.kafka,
    topic,
    spool: { dir: spoolDir },
    logger: silentLogger,
    ...settings,
  });
  await producer.connect();
  const cpu0 = selfCpu();
  const t0 = performance.now();
  for (const e of events) await producer.send(e);
  await producer.flush();
  const seconds = (performance.now() - t0) / 1000;
  return { producer, seconds, requestBytes: client.bytesWritten(), cpu: selfCpu() - cpu0 };
}

async function produceRun(
  events: readonly CaptureEvent[],
  compression: ProducerCompression,
  partitions: number,
  dir: string,
  settings: KafkaScaleBenchOptions['producer'],
): Promise<Produced & { brokerCpu: number }> {
  const mock = await startMockKafka({ brokers: 1 });
  try {
    const topic = 'callscope.bench.produce';
    await mock.createTopic(topic, partitions);
    const pid = mockPid();
    const b0 = procCpu(pid);
    const p = await produce(mock, topic, events, join(dir, `spool-${compression}-${Date.now()}`), {
      ...settings,
      compression,
    });
    const brokerCpu = procCpu(pid) - b0;
    await p.producer.close();
    return { seconds: p.seconds, requestBytes: p.requestBytes, cpu: p.cpu, brokerCpu };
  } finally {
    await mock.stop();
  }
}

// ---------------------------------------------------------------------------------------------------
// End to end and drain

interface ScaleRun {
  seconds: number;
  stored: number;
  exact: boolean;
  cpu: CpuSplit;
  groupStableMs: number;
  /** e2e: from the first send until Kafka acknowledged the last event. */
  produceSeconds: number;
}

function assignmentsOf(child: Child): number[] | null {
  for (let i = child.logs.length - 1; i >= 0; i--) {
    const l = child.logs[i];
    if (l.msg === 'kafka consumer: joined group') {
      const p = String(l.partitions ?? '');
      return p === '' ? [] : p.split(',').map(Number);
    }
  }
  return null;
}

async function scaleRun(
  mode: 'e2e' | 'drain',
  setup: ConsumerSetup,
  events: readonly CaptureEvent[],
  partitions: number,
  dir: string,
  options: KafkaScaleBenchOptions,
  runNo: number,
): Promise<ScaleRun> {
  const n = events.length;
  const base = join(dir, `${mode}-${setup.consumers}-${setup.store}-${runNo}`);
  mkdirSync(base, { recursive: true });
  const mock = await startMockKafka({ brokers: 1 });
  const children: Child[] = [];
  const clients: ClickHouseClient[] = [];
  let producer: EventProducer | null = null;
  try {
    const topic = 'callscope.events';
    await mock.createTopic(topic, partitions);
    await mock.createTopic(`${topic}.dlq`, 1);
    const brokerPid = mockPid();
    let storeChild: Child | null = null;
    let storeUrl: string | null = null;
    if (setup.store === 'shared') {
      storeChild = startChild([
        'store',
        '--data-dir',
        join(base, 'store'),
        '--port',
        '0',
        '--json',
        '--log-level',
        'warn',
      ]);
      children.push(storeChild);
      const ready = await storeChild.waitFor((l) => typeof l.url === 'string', 'callscope store', 120_000);
      storeUrl = String(ready.url);
    }
    const consumers: Child[] = [];
    for (let i = 0; i < setup.consumers; i++) {
      const profile = options.cpuProfileDir
        ? [
            '--cpu-prof',
            '--cpu-prof-dir',
            options.cpuProfileDir,
            '--cpu-prof-name',
            `ingest-${mode}-${setup.consumers}${setup.store}-${runNo}-${i}.cpuprofile`,
          ]
        : [];
      const c = startChild(
        [
          'ingest',
          '--kafka',
          mock.bootstrap,
          '--topic',
          topic,
          '--partitions',
          String(partitions),
          ...(storeUrl ? ['--clickhouse', storeUrl] : ['--data-dir', join(base, `store-${i}`)]),
          '--ttl-days',
          '0',
          '--calls-job',
          'off',
          '--json',
          '--log-level',
          'info',
          '--log-format',
          'json',
          '--stats-interval',
          '0',
          // The mock makes a rebalance wait the session timeout minus a second (CONTEXT.md).
          ...(options.sessionTimeoutMs === null
            ? []
            : ['--session-timeout', String(options.sessionTimeoutMs ?? 6000)]),
          ...(options.ingestArgs ?? []),
        ],
        profile,
      );
      children.push(c);
      consumers.push(c);
    }
    const t0 = performance.now();
    const readies = await Promise.all(
      consumers.map((c) =>
        c.waitFor((l) => typeof l.store === 'string' && 'kafka' in l, 'callscope ingest ready', 120_000),
      ),
    );
    const urls = storeUrl ? [storeUrl] : readies.map((r) => String(r.store));
    for (const u of urls) clients.push(clientOf(u));
    // Stable group: every partition assigned once, to members that all have some.
    await timeBox(
      'stable consumer group',
      120_000,
      (async () => {
        for (;;) {
          const a = consumers.map(assignmentsOf);
          if (a.every((x) => x !== null && x.length > 0)) {
            const all = a.flatMap((x) => x!);
            if (all.length === partitions && new Set(all).size === partitions) return;
          }
          await sleep(50);
        }
      })(),
    );
    const groupStableMs = Math.round(performance.now() - t0);
    if (mode === 'drain') for (const c of consumers) c.process.kill('SIGSTOP');

    const pids = {
      broker: brokerPid,
      consumers: consumers.map((c) => c.process.pid),
      store: storeChild?.process.pid,
    };
    const cpuNow = () => ({
      producer: selfCpu(),
      broker: procCpu(pids.broker),
      consumers: pids.consumers.reduce<number>((s, p) => s + procCpu(p), 0),
      store: procCpu(pids.store),
    });
    let cpu0 = cpuNow();
    let start = performance.now();
    let producing: Promise<unknown>;
    producer = new EventProducer({
      kafka: createKafka({
        brokers: mock.bootstrap,
        logger: silentLogger,
        kafkaLogLevel: 'nothing',
        clientId: 'bench-capture',
      }),
      topic,
      spool: { dir: join(base, 'spool') },
      logger: silentLogger,
      ...options.producer,
    });
    await producer.connect();
    const p = producer;
    let producedAt = 0;
    const sendAll = async () => {
      for (const e of events) await p.send(e);
      await p.flush();
      producedAt = performance.now();
    };
    if (mode === 'drain') {
      await sendAll();
      cpu0 = cpuNow();
      start = performance.now();
      for (const c of consumers) c.process.kill('SIGCONT');
      producing = Promise.resolve();
    } else {
      producing = sendAll();
    }
    let stored = 0;
    let end = 0;
    await timeBox(
      `storing ${n} events`,
      600_000,
      (async () => {
        for (;;) {
          stored = await countAll(clients, false);
          if (stored >= n) {
            end = performance.now();
            return;
          }
          for (const c of consumers)
            if (c.process.exitCode !== null) throw new Error(`ingest exited: ${c.stderrTail}`);
          await sleep(50);
        }
      })(),
    );
    await producing;
    const c1 = cpuNow();
    const seconds = (end - start) / 1000;
    const cpu = {
      producer: c1.producer - cpu0.producer,
      broker: c1.broker - cpu0.broker,
      consumers: c1.consumers - cpu0.consumers,
      store: c1.store - cpu0.store,
      busy: 0,
    };
    cpu.busy = round(
      (cpu.producer + cpu.broker + cpu.consumers + cpu.store) / (seconds * availableParallelism()),
      2,
    );
    const exactRows = await countAll(clients, true);
    const produceSeconds = mode === 'e2e' ? (producedAt - start) / 1000 : 0;
    return { seconds, stored: exactRows, exact: exactRows === n, cpu, groupStableMs, produceSeconds };
  } finally {
    await producer?.close().catch(() => {});
    for (const c of clients) await c.close().catch(() => {});
    // Consumers first (they flush into the store), the store process last.
    for (const c of [...children].reverse()) await stopChild(c).catch(() => {});
    await mock.stop();
    rmSync(base, { recursive: true, force: true });
  }
}

function scaleFigures(
  mode: 'e2e' | 'drain',
  setup: ConsumerSetup,
  partitions: number,
  n: number,
  runs: ScaleRun[],
): ScaleFigures {
  const seconds = median(runs.map((r) => r.seconds));
  const us = (f: (c: CpuSplit) => number) => round((median(runs.map((r) => f(r.cpu))) / n) * 1e6, 1);
  const perSecond = Math.round(n / seconds);
  const exact = runs.every((r) => r.exact);
  return {
    mode,
    consumers: setup.consumers,
    store: setup.store,
    partitions,
    events: n,
    perSecond,
    seconds: round(seconds, 3),
    runs: runs.map((r) => Math.round(n / r.seconds)),
    exact,
    storedRows: runs.at(-1)?.stored ?? 0,
    cpuUsPerEvent: {
      producer: us((c) => c.producer),
      broker: us((c) => c.broker),
      consumers: us((c) => c.consumers),
      store: us((c) => c.store),
      busy: round(median(runs.map((r) => r.cpu.busy)), 2),
    },
    groupStableMs: Math.round(median(runs.map((r) => r.groupStableMs))),
    target: { eventsPerSecond: TARGET, met: perSecond >= TARGET && exact },
  };
}

function scaleLine(f: ScaleFigures): string {
  const c = f.cpuUsPerEvent;
  return (
    `  ${f.mode.padEnd(5)} ${f.consumers} consumer(s), ${f.store === 'own' ? 'own store each' : 'one shared store'}: ` +
    `${fmt(f.perSecond)} events/s median (runs ${f.runs.map(fmt).join(', ')}), ${f.exact ? 'exact' : 'NOT EXACT'}; ` +
    `CPU µs/event producer ${c.producer}, broker ${c.broker}, consumers ${c.consumers}${f.store === 'shared' ? `, store ${c.store}` : ''}; ` +
    `cores busy ${Math.round(c.busy * 100)} %   target ≥ 50,000/s: ${f.target.met ? 'met' : 'MISSED'}`
  );
}

// ---------------------------------------------------------------------------------------------------

export async function runKafkaScaleBench(options: KafkaScaleBenchOptions): Promise<KafkaScaleFigures> {
  const { log } = options;
  const quick = options.quick ?? false;
  const runs = options.runs ?? (quick ? 1 : 3);
  const n = options.events ?? (quick ? 50_000 : 200_000);
  const partitions = options.partitions ?? 16;
  const parts = new Set<KafkaBenchPart>(options.only ?? ['produce', 'e2e', 'drain']);
  const compressions = options.compressions ?? ['none', 'gzip'];
  const setups = options.setups ?? [
    { consumers: 1, store: 'own' },
    { consumers: 2, store: 'own' },
    { consumers: 2, store: 'shared' },
  ];
  const machine = {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.versions.node,
    loadAverage: round(loadavg()[0] ?? 0, 1),
  };
  const figures: KafkaScaleFigures = { machine, produce: [], e2e: [], drain: [] };
  log(
    `kafka scale bench — ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, load ${machine.loadAverage}`,
  );
  if (!haveMockKafka()) {
    log(`  skipped: no mock Kafka: ${mockKafkaUnavailableReason()}`);
    return figures;
  }
  const dir = mkdtempSync(join(tmpdir(), 'callscope-kafka-bench-'));
  try {
    const pcap = generateSipCapture(dir, Math.ceil(n / 6.5));
    const events = await loadSipEvents(pcap, n, true);
    log(
      `  ${fmt(events.length)} SIP events, ${partitions} partitions, ${runs} run(s) of each setup, alternated`,
    );

    if (parts.has('produce')) {
      const byCodec = new Map<ProducerCompression, (Produced & { brokerCpu: number })[]>();
      for (let r = 0; r < runs; r++) {
        for (const c of compressions) {
          const run = await timeBox(
            `produce ${c}`,
            300_000,
            produceRun(events, c, partitions, dir, options.producer),
          );
          byCodec.set(c, [...(byCodec.get(c) ?? []), run]);
        }
      }
      for (const c of compressions) {
        const rs = byCodec.get(c)!;
        const seconds = median(rs.map((r) => r.seconds));
        const bytes = median(rs.map((r) => r.requestBytes));
        const f: ProduceFigures = {
          compression: c,
          events: events.length,
          perSecond: Math.round(events.length / seconds),
          seconds: round(seconds, 3),
          runs: rs.map((r) => Math.round(events.length / r.seconds)),
          requestBytes: bytes,
          bytesPerEvent: round(bytes / events.length, 1),
          cpuUsPerEvent: round((median(rs.map((r) => r.cpu)) / events.length) * 1e6, 1),
          brokerCpuUsPerEvent: round((median(rs.map((r) => r.brokerCpu)) / events.length) * 1e6, 1),
        };
        figures.produce.push(f);
        log(
          `  produce ${c.padEnd(9)} ${fmt(f.perSecond)} events/s median (runs ${f.runs.map(fmt).join(', ')}); ` +
            `${fmt(f.requestBytes)} request bytes (${f.bytesPerEvent} B/event); CPU µs/event producer ${f.cpuUsPerEvent}, broker ${f.brokerCpuUsPerEvent}`,
        );
      }
    }

    for (const mode of ['e2e', 'drain'] as const) {
      if (!parts.has(mode)) continue;
      const results = setups.map(() => [] as ScaleRun[]);
      for (let r = 0; r < runs; r++) {
        for (let i = 0; i < setups.length; i++) {
          const run = await timeBox(
            `${mode} ${setups[i].consumers}/${setups[i].store}`,
            900_000,
            scaleRun(mode, setups[i], events, partitions, dir, options, r),
          );
          log(
            `    run ${r + 1} ${mode} ${setups[i].consumers}/${setups[i].store}: ${fmt(events.length / run.seconds)} events/s, ` +
              `${run.exact ? 'exact' : `NOT EXACT (${run.stored})`}, ${mode === 'e2e' ? `produced in ${run.produceSeconds.toFixed(2)} s, ` : ''}` +
              `busy ${Math.round(run.cpu.busy * 100)} % (load ${round(loadavg()[0] ?? 0, 1)}), group stable in ${run.groupStableMs} ms`,
          );
          results[i].push(run);
        }
      }
      for (let i = 0; i < setups.length; i++) {
        const f = scaleFigures(mode, setups[i], partitions, events.length, results[i]);
        figures[mode].push(f);
        log(scaleLine(f));
      }
    }
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  tuneRuntime();
  const args = process.argv.slice(2);
  const value = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const list = (flag: string) =>
    value(flag)
      ?.split(',')
      .filter((x) => x !== '');
  const setups = list('--setups')?.map((s) => {
    const [c, store] = s.split('/');
    return { consumers: Number(c) as 1 | 2, store: (store ?? 'own') as 'own' | 'shared' };
  });
  const producer = {
    batchSize: value('--batch') ? Number(value('--batch')) : undefined,
    lingerMs: value('--linger') ? Number(value('--linger')) : undefined,
    compression: value('--compression') as ProducerCompression | undefined,
  };
  runKafkaScaleBench({
    log: (line) => process.stderr.write(`${line}\n`),
    quick: args.includes('--quick'),
    runs: value('--runs') ? Number(value('--runs')) : undefined,
    events: value('--events') ? Number(value('--events')) : undefined,
    partitions: value('--partitions') ? Number(value('--partitions')) : undefined,
    only: list('--only') as KafkaBenchPart[] | undefined,
    compressions: list('--compressions') as ProducerCompression[] | undefined,
    setups,
    producer,
    cpuProfileDir: value('--cpu-prof'),
    ingestArgs: list('--ingest-args'),
    sessionTimeoutMs: args.includes('--no-session-timeout') ? null : undefined,
  })
    .then((figures) => {
      if (args.includes('--json')) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    })
    .finally(() => setTimeout(() => process.exit(), 5000).unref());
}
