/**
 * The store part of `npm run bench` (see docs/PERFORMANCE.md for the house rules):
 *
 * 1. Pipeline → embedded store: the SIP events of a generated capture (decoded by our pipeline) →
 *    `StoreWriter` (default batches, Native blocks) → the embedded store this process owns, straight
 *    into the engine (`Store.inserter`), as `callscope run` writes. Beside it, the peer: chDB's own
 *    `INSERT … FROM INFILE … FORMAT Native` of the very same blocks, in a fresh data directory with
 *    the schema of `migrate`, in a child process (test/bench/store-child.ts). Ours is timed as
 *    `callscope run` works (ingestFile's loop: read, decode, each read chunk to the writer) and the
 *    same loop without the writer: the difference is the store's share. Also the split of that
 *    share: row encoding (eventId included), and the same pre-encoded blocks through the inserter.
 * 2. Kafka end to end: `EventProducer` → librdkafka's mock cluster → `EventConsumer` → `StoreSink`
 *    (retransmissions marked, StoreWriter, each chunk stored before its commit), as `callscope ingest`
 *    runs it: partitions consumed concurrently, their chunks sharing one flush (`coalesced`). Beside
 *    it the sink as first shipped (`per-chunk`: one partition at a time, one INSERT per chunk).
 * 3. Capture-to-queryable latency at 20,000 events/s: each event a unique Call-ID, sent at its time
 *    through Kafka (as in 2, both sinks) and, separately, straight into a `StoreWriter` (default
 *    maxDelayMs, the in-process inserter); one event in 20 is tracked (its Call-ID marked), and a
 *    poller asks the store every 50 ms for the tracked rows sent since the oldest unseen one. At the
 *    end every event sent is counted in the store.
 *
 * Everything runs in this process (producer, consumer, writer, the embedded store); the mock broker
 * and the peer run in child processes. Rates are best of the runs; "per CPU-s" divides by the CPU
 * time of the whole process (all threads, chDB's included), the least run. `node
 * dist/test/bench/store.js [--quick] [--json] [--only pipeline,kafka,latency]` runs it alone.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { analyzeFile } from '../../analyze/analyze.js';
import { generateCapture } from '../../capture/generator/generate.js';
import { drive } from '../../core/drive.js';
import { type CaptureEvent, HEP_PROTO_SIP } from '../../core/event.js';
import { silentLogger } from '../../core/log.js';
import { tuneRuntime } from '../../core/runtime.js';
import { type EventSink, emptySinkStats } from '../../core/sink.js';
import { EventIds } from '../../ingest/event-id.js';
import { createKafka } from '../../ingest/kafka/client.js';
import { EventProducer } from '../../ingest/kafka/producer.js';
import { KafkaSource } from '../../ingest/kafka/source.js';
import type { NativeBlock } from '../../ingest/native-block.js';
import { type EventRowSinks, emptyRowSinks, encodeEvent } from '../../ingest/rows.js';
import { migrate } from '../../ingest/schema/migrate.js';
import { columnNames, DATA_TABLES, type EventTableName } from '../../ingest/schema/tables.js';
import { IngestSip } from '../../ingest/sip.js';
import { openStore, type Store } from '../../ingest/store/client.js';
import { StoreSink } from '../../ingest/store-sink.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, StoreWriter } from '../../ingest/writer.js';
import {
  haveMockKafka,
  type MockKafka,
  mockKafkaUnavailableReason,
  startMockKafka,
} from '../oracle/kafka-mock.js';
import type { PeerBatch, PeerJob, PeerMode, PeerResult } from './store-child.js';

export interface StoreBenchOptions {
  log: (line: string) => void;
  /** Smaller data and shorter latency runs (≈ 3 minutes instead of ≈ 8). */
  quick?: boolean;
  /** Parts to run (default all). */
  only?: ReadonlyArray<'pipeline' | 'kafka' | 'latency'>;
}

export interface MachineFigures {
  cores: number;
  cpu: string;
  node: string;
  /** 1-minute load average when the benchmark started (the machine is shared). */
  loadAverage: number;
}

export interface RateFigures {
  /** Rows or events moved per run. */
  count: number;
  /** Least wall time of the runs. */
  seconds: number;
  perSecond: number;
  /** Least CPU time of the runs: the whole process, all its threads (chDB's included). */
  cpuSeconds: number;
  perCpuSecond: number;
  /** Every run's wall and CPU seconds, in order. */
  runs: number[];
  cpuRuns: number[];
}

export interface PipelineFigures {
  sipEvents: number;
  /** Native bytes of the blocks. */
  rowBytes: number;
  batches: number;
  /**
   * The pipeline into the store, as `callscope run` does it (ingestFile's loop): read + decode, each
   * read chunk's events to StoreWriter → HTTP → chDB; from the first read to flush() resolved.
   */
  pipeline: RateFigures;
  /** The same loop without the writer: read + decode only. */
  decodeOnly: RateFigures;
  /** The store's share: pipeline − decode (wall and CPU). The per-core target applies to this. */
  store: { seconds: number; perSecond: number; cpuSeconds: number; perCpuSecond: number };
  /** chDB's INSERT FROM INFILE of the same Native blocks (child process, fresh data directory). */
  peer: (RateFigures & { engine: string }) | { error: string };
  /** Ours / peer: store share vs chDB raw insert, by wall rate and by rate per CPU-second. */
  ratio: number | null;
  ratioPerCpu: number | null;
  /** Where our time goes, µs per event. */
  split: {
    /** encodeEvent of freshly decoded events into TsvBuffers with the writer's batch cuts, eventId included: main thread. */
    encodeUs: number;
    /** The same, process CPU: V8's garbage-collector threads add to the main thread. */
    encodeCpuUs: number;
    /** eventId alone (best of 3). */
    eventIdUs: number;
    /** The pre-encoded batches through @clickhouse/client → HTTP → engine: process CPU. */
    httpAndEngineCpuUs: number;
    /** The engine alone: the peer's CPU. */
    engineCpuUs: number | null;
    /** httpAndEngine − engine: client, HTTP server, body copies. */
    httpCpuUs: number | null;
    /** The store's share of the pipeline: CPU, and wall. */
    storeCpuUs: number;
    storeWallUs: number;
    /** store − encode − httpAndEngine, CPU (what the parts do not explain: writer bookkeeping, noise). */
    restCpuUs: number;
  };
  insertOnly: RateFigures;
  target: { eventsPerCpuSecond: number; met: boolean };
}

/** `coalesced`: StoreSink as `callscope ingest` uses it; `per-chunk`: one flush per chunk, as first shipped. */
export type SinkKind = 'per-chunk' | 'coalesced';

export interface KafkaFigures {
  sink: SinkKind;
  events: number;
  partitions: number;
  producerBatchSize: number;
  partitionsConsumedConcurrently: number;
  groupJoinMs: number;
  /** From the first send to the moment the last row was stored. */
  endToEnd: RateFigures;
  /** From the first send until producer.flush() resolved (Kafka acknowledged everything). */
  produceSeconds: number;
  storedRows: number;
  exact: boolean;
  consumer: { messages: number; written: number; commits: number; sinkFailures: number; sinkCalls: number };
  /** INSERTs the writer made (its acknowledged batches), and events per INSERT. */
  inserts: number;
  eventsPerInsert: number;
  target: { eventsPerSecond: number; met: boolean };
}

export interface LatencyFigures {
  path: 'kafka' | 'direct';
  sink: SinkKind | null;
  /** The capture side's producer linger (Kafka path only). */
  producerLingerMs: number | null;
  ratePerSecond: number;
  durationSec: number;
  sent: number;
  /** Tracked events (one in TRACK_EVERY) seen by the poller: the latency sample. */
  seen: number;
  /** Events (of all sent) not in the store 30 s after the last send, plus tracked ones never seen. */
  missing: number;
  /** Achieved send rate (events/s over the sending period). */
  achievedRate: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  pollIntervalMs: number;
  meanPollMs: number;
  inserts: number;
  target: { p99Ms: number; met: boolean };
}

type Part<T> = T | { skipped: string } | { error: string };

export interface StoreBenchFigures {
  machine: MachineFigures;
  quick: boolean;
  pipeline: Part<PipelineFigures> | null;
  kafka: { perChunk: Part<KafkaFigures>; coalesced: Part<KafkaFigures> } | null;
  latency: {
    kafkaPerChunk: Part<LatencyFigures>;
    kafkaCoalesced: Part<LatencyFigures>;
    direct: Part<LatencyFigures>;
  } | null;
}

// ---------------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

function round(n: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const load = () => round(loadavg()[0] ?? 0, 1);

/** Rejects after `ms` with a message naming `what`; the timer never keeps the process alive. */
export function timeBox<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface Run {
  seconds: number;
  cpuSeconds: number;
}

function rateOf(count: number, runs: readonly Run[]): RateFigures {
  const seconds = Math.min(...runs.map((r) => r.seconds));
  const cpuSeconds = Math.min(...runs.map((r) => r.cpuSeconds));
  return {
    count,
    seconds: round(seconds, 3),
    perSecond: Math.round(count / seconds),
    cpuSeconds: round(cpuSeconds, 3),
    perCpuSecond: Math.round(count / cpuSeconds),
    runs: runs.map((r) => round(r.seconds, 3)),
    cpuRuns: runs.map((r) => round(r.cpuSeconds, 3)),
  };
}

function runLine(what: string, count: number, unit: string, run: Run): string {
  return `  ${what}: ${fmt(count / run.seconds)} ${unit}/s (${run.seconds.toFixed(2)} s; ${fmt(count / run.cpuSeconds)} ${unit}/CPU-s)`;
}

function machine(): MachineFigures {
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.versions.node,
    loadAverage: load(),
  };
}

async function countFinal(client: ClickHouseClient, database: string): Promise<number> {
  const result = await client.query({
    query: `SELECT count() AS n FROM ${database}.sip_messages FINAL`,
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ n: number | string }>();
  return Number(rows[0]?.n ?? 0);
}

/** Drops a database the benchmark made, so that its background merges stop taking CPU from later runs. */
async function drop(client: ClickHouseClient, database: string): Promise<void> {
  await client.command({ query: `DROP DATABASE IF EXISTS ${database} SYNC` }).catch(() => {});
}

// ---------------------------------------------------------------------------------------------------
// The events: SIP of a generated capture, decoded by our pipeline

/** ≈ 6.8 SIP messages per call with the default outcome mix: 30,000 calls give 204,600 events. */
export function generateSipCapture(dir: string, calls: number): string {
  const pcap = join(dir, `sip-${calls}calls.pcap`);
  generateCapture({ output: pcap, seed: 7, calls, callsPerSecond: 100, vms: 16, rtp: { enabled: false } });
  return pcap;
}

/**
 * Up to `limit` SIP events of the capture. `plain`: without the parsed message (what Kafka carries),
 * so that holding 100,000 of them keeps the heap, and with it every garbage collection, small.
 */
export async function loadSipEvents(pcap: string, limit: number, plain: boolean): Promise<CaptureEvent[]> {
  const events: CaptureEvent[] = [];
  await analyzeFile(pcap, {
    onEvent: (e) => {
      if (e.protoType !== HEP_PROTO_SIP || events.length >= limit) return;
      events.push(plain ? plainEvent(e) : e);
    },
  });
  return events;
}

function plainEvent(e: CaptureEvent): CaptureEvent {
  return {
    timestampNs: e.timestampNs,
    ipFamily: e.ipFamily,
    ipProtocol: e.ipProtocol,
    transport: e.transport,
    srcIp: e.srcIp,
    dstIp: e.dstIp,
    srcPort: e.srcPort,
    dstPort: e.dstPort,
    vlan: e.vlan,
    protoType: e.protoType,
    captureId: e.captureId,
    nodeName: e.nodeName,
    correlationId: e.correlationId,
    payload: e.payload,
    retransmission: e.retransmission,
  };
}

// ---------------------------------------------------------------------------------------------------
// Part 1: pipeline → embedded store, and chDB's raw insert of the same bytes

// StoreWriter's defaults: the batches below are the ones it sends.
const WRITER_MAX_ROWS = DEFAULT_MAX_ROWS;
const WRITER_MAX_BYTES = DEFAULT_MAX_BYTES;

interface EncodedBatch {
  table: EventTableName;
  data: Buffer;
  rows: number;
  token: string;
}

function newSinks(): EventRowSinks {
  return emptyRowSinks();
}

/**
 * The batches StoreWriter would send (same row bytes, same cuts: full at its default rows or bytes,
 * checked before each event), each with a deduplication token over its event ids.
 */
class BatchBuilder {
  readonly batches: EncodedBatch[] = [];
  private sinks = newSinks();
  private ids: bigint[] = [];
  private rows = 0;
  private readonly context = { runId: '', ids: new EventIds() };

  constructor(private readonly tag: string) {}

  add(event: CaptureEvent): void {
    const s = this.sinks;
    if (
      this.rows >= WRITER_MAX_ROWS ||
      s.sip_messages.length + s.media_reports.length + s.rtcp_reports.length >= WRITER_MAX_BYTES
    ) {
      this.cut();
    }
    const encoded = encodeEvent(event, this.sinks, this.context);
    this.rows += encoded.rows;
    this.ids.push(encoded.eventId);
  }

  finish(): EncodedBatch[] {
    this.cut();
    return this.batches;
  }

  private cut(): void {
    const idBytes = Buffer.allocUnsafe(8 * this.ids.length);
    this.ids.forEach((id, i) => {
      idBytes.writeBigUInt64BE(id, 8 * i);
    });
    for (const [table, sink] of Object.entries(this.sinks) as Array<[EventTableName, NativeBlock]>) {
      if (sink.rows === 0) continue;
      const token = createHash('sha256').update(idBytes).update(`\0${table}\0${this.tag}`).digest('hex');
      this.batches.push({ table, rows: sink.rows, data: sink.take(), token: `bench-${token.slice(0, 32)}` });
    }
    this.sinks = newSinks();
    this.ids = [];
    this.rows = 0;
  }
}

function encodeAll(events: readonly CaptureEvent[], tag: string): EncodedBatch[] {
  const builder = new BatchBuilder(tag);
  for (const e of events) builder.add(e);
  return builder.finish();
}

/** Least wall and least process CPU (V8's garbage-collector threads included) of `runs` calls. */
function bestOf(runs: number, fn: () => void): Run {
  let seconds = Number.POSITIVE_INFINITY;
  let cpuSeconds = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    seconds = Math.min(seconds, (performance.now() - t0) / 1000);
    cpuSeconds = Math.min(cpuSeconds, cpuSecondsSince(cpu0));
  }
  return { seconds, cpuSeconds };
}

/**
 * ingestFile's loop over the capture: after each read chunk its SIP events go to the writer, and
 * reading resumes once the writer took them; with `database` null, the same loop without a writer.
 */
async function streamRun(
  store: Store,
  pcap: string,
  database: string | null,
): Promise<Run & { events: number }> {
  if (database !== null) await migrate(store.client, { database, ttlDays: 0 });
  const writer =
    database === null ? null : new StoreWriter(store.client, { database, inserter: store.inserter });
  let events = 0;
  // The SIP events of each read chunk go to the writer; the driver reads on once it took them.
  const sipToWriter: EventSink = {
    name: 'sip-writer',
    write: async (batch) => {
      const sip = batch.filter((e) => e.protoType === HEP_PROTO_SIP);
      events += sip.length;
      if (writer !== null) await writer.write(sip);
    },
    flush: async () => writer?.flush(),
    close: async () => writer?.close(),
    stats: () => emptySinkStats(),
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    await analyzeFile(pcap, { sinks: [sipToWriter] });
  } finally {
    await writer?.close().catch(() => {});
  }
  const run = { seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuSecondsSince(cpu0), events };
  if (database !== null) {
    const stored = await countFinal(store.client, database);
    await drop(store.client, database);
    if (stored !== events)
      throw new Error(`pipeline run into ${database}: ${stored} rows stored of ${events}`);
  }
  return run;
}

/** The pre-encoded blocks, inserted as StoreWriter inserts them (Store.inserter), without encoding. */
async function insertOnlyRun(store: Store, database: string, batches: readonly EncodedBatch[]): Promise<Run> {
  await migrate(store.client, { database, ttlDays: 0 });
  const columns = new Map(DATA_TABLES.map((t) => [t.name, columnNames(t) as [string, ...string[]]]));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const b of batches) {
    await store.inserter.insert({
      table: `${database}.${b.table}`,
      columns: columns.get(b.table) ?? [],
      data: [b.data],
      settings: { insert_deduplicate: 1, insert_deduplication_token: b.token, async_insert: 0 },
    });
  }
  const run = { seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuSecondsSince(cpu0) };
  const stored = await countFinal(store.client, database);
  await drop(store.client, database);
  const rows = batches.reduce((a, b) => a + b.rows, 0);
  if (stored !== rows) throw new Error(`insert run into ${database}: ${stored} rows stored of ${rows}`);
  return run;
}

/** chDB's own insert of `batches` (FROM INFILE, Native) in a child process. */
async function peerRuns(
  dir: string,
  batches: readonly EncodedBatch[],
  runs: number,
  timeoutMs: number,
): Promise<PeerResult> {
  const blockFile = join(dir, 'peer.native');
  const layout: PeerBatch[] = [];
  let offset = 0;
  for (const b of batches) {
    layout.push({ table: b.table, offset, length: b.data.length, rows: b.rows, token: b.token });
    offset += b.data.length;
  }
  writeFileSync(
    blockFile,
    Buffer.concat(
      batches.map((b) => b.data),
      offset,
    ),
  );
  const job: PeerJob = { dataDir: join(dir, 'peer-store'), blockFile, runs, batches: layout };
  const jobFile = join(dir, 'peer-job.json');
  writeFileSync(jobFile, JSON.stringify(job));
  const script = join(dirname(fileURLToPath(import.meta.url)), 'store-child.js');
  let child: ChildProcess | undefined;
  try {
    const output = new Promise<string>((resolve, reject) => {
      const c = spawn(process.execPath, [script, jobFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      let out = '';
      let err = '';
      c.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      c.stderr?.on('data', (d: Buffer) => {
        err = (err + d.toString()).slice(-2000);
      });
      c.on('error', reject);
      c.on('exit', (code, signal) => {
        const line = out.trim().split('\n').pop() ?? '';
        if (line.startsWith('{')) resolve(line);
        else reject(new Error(`peer child exited (code ${code}, signal ${signal}): ${err.trim()}`));
      });
    });
    return JSON.parse(await timeBox('chDB insert (child process)', timeoutMs, output)) as PeerResult;
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(blockFile, { force: true });
    rmSync(job.dataDir, { recursive: true, force: true });
  }
}

async function pipelinePart(
  store: Store,
  pcap: string,
  dir: string,
  quick: boolean,
  log: (line: string) => void,
): Promise<PipelineFigures> {
  // The batches the writer sends, made while decoding (the events are not kept: a heap holding
  // 200,000 parsed messages would make every garbage collection, ours and the peer's view of it, dearer).
  const builder = new BatchBuilder('peer');
  await analyzeFile(pcap, {
    onEvent: (e) => {
      if (e.protoType === HEP_PROTO_SIP) builder.add(e);
    },
  });
  const batches = builder.finish();
  const n = batches.reduce((a, b) => a + b.rows, 0);
  const rowBytes = batches.reduce((a, b) => a + b.data.length, 0);

  // Encoding alone, on the first 20,000 events, freshly decoded each time: the first encode of a
  // message also decodes its lazy SIP fields (From/To URIs, Via, Reason), as in the pipeline.
  let sample: CaptureEvent[] = [];
  const cold: Run[] = [];
  for (let i = 0; i < 3; i++) {
    sample = await loadSipEvents(pcap, 20_000, false);
    cold.push(bestOf(1, () => encodeAll(sample, 'cold')));
  }
  const encode = {
    seconds: Math.min(...cold.map((r) => r.seconds)),
    cpuSeconds: Math.min(...cold.map((r) => r.cpuSeconds)),
  };
  // One hasher for all, as the writer has (eventId() makes one per call).
  const ids = new EventIds();
  const id = bestOf(3, () => {
    for (const e of sample) ids.of(e);
  });
  const sampled = sample.length;
  const perSample = (seconds: number) => round((1e6 * seconds) / sampled, 2);
  sample = [];
  log(
    `  row encoding: ${perSample(encode.seconds)} µs/event on the main thread, ${perSample(encode.cpuSeconds)} µs CPU ` +
      `with the garbage collector's threads (of which eventId ${perSample(id.seconds)} µs); ` +
      `${batches.length} batches, ${(rowBytes / n).toFixed(0)} Native bytes/row`,
  );

  // Ours before and after the peer (docs/PERFORMANCE.md: a slow patch must not fall on one side only).
  const runs = quick ? 2 : 3;
  const pipelineRuns: Run[] = [];
  const decodeRuns: Run[] = [];
  const insertRuns: Run[] = [];
  const ours = async (i: number) => {
    const p = await streamRun(store, pcap, `bench_pipeline_${i}`);
    if (p.events !== n) throw new Error(`pipeline run ${i + 1} saw ${p.events} SIP events, expected ${n}`);
    pipelineRuns.push(p);
    log(runLine(`pipeline → StoreWriter → store run ${i + 1}`, n, 'events', p));
    const d = await streamRun(store, pcap, null);
    decodeRuns.push(d);
    log(runLine(`same loop, decode only run ${i + 1}`, n, 'events', d));
    const b = await insertOnlyRun(store, `bench_insert_${i}`, batches);
    insertRuns.push(b);
    log(runLine(`pre-encoded blocks via the inserter run ${i + 1}`, n, 'rows', b));
  };
  await ours(0);
  let peer: PipelineFigures['peer'];
  try {
    const result = await peerRuns(dir, batches, runs, quick ? 240_000 : 900_000);
    if (result.error !== undefined) throw new Error(result.error);
    const byMode = (mode: PeerMode) => result.runs.filter((r) => r.mode === mode);
    for (const [i, r] of result.runs.entries()) {
      if (r.rows !== n || r.stored !== n) {
        throw new Error(`peer run ${i + 1} (${r.mode}) wrote ${r.rows} rows, stored ${r.stored} of ${n}`);
      }
      log(runLine(`chDB INSERT FROM INFILE FORMAT Native run ${i + 1}`, n, 'rows', r));
    }
    peer = { ...rateOf(n, byMode('infile')), engine: result.engine };
  } catch (error) {
    peer = { error: message(error) };
    log(`  chDB insert: ${peer.error}`);
  }
  for (let i = 1; i < runs; i++) await ours(i);

  const pipeline = rateOf(n, pipelineRuns);
  const decodeOnly = rateOf(n, decodeRuns);
  const insertOnly = rateOf(n, insertRuns);
  const storeSeconds = Math.max(1e-9, pipeline.seconds - decodeOnly.seconds);
  const storeCpu = Math.max(1e-9, pipeline.cpuSeconds - decodeOnly.cpuSeconds);
  const storeShare = {
    seconds: round(storeSeconds, 3),
    perSecond: Math.round(n / storeSeconds),
    cpuSeconds: round(storeCpu, 3),
    perCpuSecond: Math.round(n / storeCpu),
  };
  const peerOk = 'perSecond' in peer ? peer : null;
  const us = (seconds: number) => round((1e6 * seconds) / n, 2);
  const engineCpuUs = peerOk ? us(peerOk.cpuSeconds) : null;
  const encodeCpuUs = perSample(encode.cpuSeconds);
  return {
    sipEvents: n,
    rowBytes,
    batches: batches.length,
    pipeline,
    decodeOnly,
    store: storeShare,
    peer,
    ratio: peerOk ? round(storeShare.perSecond / peerOk.perSecond, 2) : null,
    ratioPerCpu: peerOk ? round(storeShare.perCpuSecond / peerOk.perCpuSecond, 2) : null,
    split: {
      encodeUs: perSample(encode.seconds),
      encodeCpuUs,
      eventIdUs: perSample(id.seconds),
      httpAndEngineCpuUs: us(insertOnly.cpuSeconds),
      engineCpuUs,
      httpCpuUs: engineCpuUs === null ? null : round(us(insertOnly.cpuSeconds) - engineCpuUs, 2),
      storeCpuUs: us(storeCpu),
      storeWallUs: us(storeSeconds),
      restCpuUs: round(us(storeCpu) - encodeCpuUs - us(insertOnly.cpuSeconds), 2),
    },
    insertOnly,
    target: { eventsPerCpuSecond: 100_000, met: storeShare.perCpuSecond >= 100_000 },
  };
}

// ---------------------------------------------------------------------------------------------------
// Part 2: Kafka end to end

interface IngestSide {
  source: KafkaSource;
  sink: StoreSink;
  stop: () => Promise<void>;
  /** Chunks delivered (each a write and a flush of the sink). */
  deliveries: () => number;
  joinMs: number;
  concurrency: number;
  /** Called after every stored chunk, with the events stored so far. */
  onStored: (fn: (events: number) => void) => void;
}

/**
 * The ingest side, `callscope ingest`'s: a StoreSink (retransmissions marked, each chunk written and
 * stored before the consumer commits it). `coalesced` is how it ships: the partitions of a fetch are
 * consumed concurrently and their chunks share one flush (one INSERT). `per-chunk` is how it first
 * shipped, kept for comparison: one partition at a time, each chunk its own flush and INSERT.
 */
async function startIngest(
  mock: MockKafka,
  store: Store,
  topic: string,
  database: string,
  kind: SinkKind,
  partitions: number,
): Promise<IngestSide> {
  await migrate(store.client, { database, ttlDays: 0 });
  let listener: (events: number) => void = () => {};
  let deliveries = 0;
  const sink = new StoreSink(store.client, { database, coalesceMs: kind === 'per-chunk' ? 0 : undefined });
  const concurrency = kind === 'coalesced' ? partitions : 1;
  let joined: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    joined = resolve;
  });
  const source = new KafkaSource({
    kafka: createKafka({
      brokers: mock.bootstrap,
      logger: silentLogger,
      kafkaLogLevel: 'nothing',
      clientId: 'bench-ingest',
    }),
    topic,
    groupId: `bench-${topic}`,
    logger: silentLogger,
    partitionsConsumedConcurrently: concurrency,
    onStart: () => joined(),
    onDelivered: (_events, _context, total) => {
      deliveries++;
      listener(total);
    },
  });
  const stopping = new AbortController();
  const driven = drive(source, [sink], { signal: stopping.signal });
  const stop = async () => {
    stopping.abort();
    await driven;
  };
  const t0 = performance.now();
  try {
    // The mock's first join takes ~3 s.
    await timeBox('consumer group join', 60_000, Promise.race([started, driven.then(() => undefined)]));
  } catch (error) {
    await stop().catch(() => {});
    await sink.close().catch(() => {});
    throw error;
  }
  return {
    source,
    sink,
    stop,
    deliveries: () => deliveries,
    joinMs: Math.round(performance.now() - t0),
    concurrency,
    onStored: (fn) => {
      listener = fn;
    },
  };
}

async function startProducer(
  mock: MockKafka,
  topic: string,
  spoolDir: string,
  batchSize: number,
  lingerMs = PRODUCER_LINGER_MS,
): Promise<EventProducer> {
  const producer = new EventProducer({
    kafka: createKafka({
      brokers: mock.bootstrap,
      logger: silentLogger,
      kafkaLogLevel: 'nothing',
      clientId: 'bench-capture',
    }),
    topic,
    spool: { dir: spoolDir },
    logger: silentLogger,
    batchSize,
    batchBytes: Math.max(512 * 1024, batchSize * 1024),
    lingerMs,
  });
  await producer.connect();
  return producer;
}

const PRODUCER_BATCH = 500; // EventProducer's defaults
const PRODUCER_LINGER_MS = 20;
/**
 * The mock answers a fetch with at most one producer batch per partition, so at 1,000 events/s and a
 * 20-ms linger a fetch carries ~20 events and the consumer would need 50 fetch + INSERT rounds a
 * second. A real broker hands over everything that accumulated; a 100-ms linger gives the mock's
 * fetches a similar size (and adds at most 100 ms).
 */
const COALESCED_LINGER_MS = 100;

async function kafkaPart(
  store: Store,
  mock: MockKafka,
  events: readonly CaptureEvent[],
  kind: SinkKind,
  partitions: number,
  producerBatch: number,
  dir: string,
  log: (line: string) => void,
): Promise<KafkaFigures> {
  const topic = `callscope.bench.e2e.${kind}`;
  const database = `bench_kafka_${kind.replace('-', '_')}`;
  await mock.createTopic(topic, partitions);
  const n = events.length;
  const ingest = await startIngest(mock, store, topic, database, kind, partitions);
  let producer: EventProducer | null = null;
  try {
    producer = await startProducer(mock, topic, join(dir, `spool-e2e-${kind}`), producerBatch);
    log(
      `  ${kind} sink: consumer joined in ${ingest.joinMs} ms; sending ${fmt(n)} events to ${partitions} partitions ` +
        `(producer batches of ${fmt(producerBatch)}, ${ingest.concurrency} partition(s) consumed at once)`,
    );
    let storedAt = 0;
    const allStored = new Promise<void>((resolve) => {
      ingest.onStored((stored) => {
        if (stored >= n && storedAt === 0) {
          storedAt = performance.now();
          resolve();
        }
      });
    });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (const e of events) await producer.send(e);
    await producer.flush();
    const produceSeconds = (performance.now() - t0) / 1000;
    await timeBox(`storing ${n} events from Kafka`, 300_000, allStored);
    const run = { seconds: (storedAt - t0) / 1000, cpuSeconds: cpuSecondsSince(cpu0) };
    const stored = await countFinal(store.client, database);
    const stats = ingest.source.stats();
    const endToEnd = rateOf(n, [run]);
    const inserts = ingest.sink.stats().writer.batches;
    return {
      sink: kind,
      events: n,
      partitions,
      producerBatchSize: producerBatch,
      partitionsConsumedConcurrently: ingest.concurrency,
      groupJoinMs: ingest.joinMs,
      endToEnd,
      produceSeconds: round(produceSeconds, 3),
      storedRows: stored,
      exact: stored === n,
      consumer: {
        messages: stats.messages,
        written: stats.written,
        commits: stats.commits,
        sinkFailures: stats.sinkFailures,
        sinkCalls: ingest.deliveries(),
      },
      inserts,
      eventsPerInsert: Math.round(n / Math.max(1, inserts)),
      target: { eventsPerSecond: 50_000, met: endToEnd.perSecond >= 50_000 && stored === n },
    };
  } finally {
    await ingest.stop().catch(() => {});
    await producer?.close().catch(() => {});
    await ingest.sink.close().catch(() => {});
    await drop(store.client, database);
  }
}

function kafkaLine(k: KafkaFigures): string {
  return (
    `  ${k.sink.padEnd(10)} capture → Kafka → ingest → store: ${fmt(k.endToEnd.perSecond)} events/s ` +
    `(${k.endToEnd.seconds.toFixed(2)} s, ${fmt(k.endToEnd.perCpuSecond)} events/CPU-s; produced in ${k.produceSeconds.toFixed(2)} s; ` +
    `${fmt(k.inserts)} INSERTs, ${fmt(k.eventsPerInsert)} events each); ${fmt(k.storedRows)}/${fmt(k.events)} rows ` +
    `${k.exact ? 'exact' : 'NOT EXACT'}   target ≥ 50,000/s: ${k.target.met ? 'met' : 'MISSED'}`
  );
}

// ---------------------------------------------------------------------------------------------------
// Part 3: capture-to-queryable latency at 20,000 events/s

const POLL_MS = 50;
const RATE = 20_000;
/** One event in this many is tracked: polling for all 20,000 a second would load the store itself. */
const TRACK_EVERY = 20;

/** A SIP event like `template`, with its Call-ID header rewritten to `callId` and the time given. */
function withCallId(template: CaptureEvent, callId: string, timestampNs: bigint): CaptureEvent {
  const text = template.payload.toString('latin1');
  const rewritten = text.replace(/^(?:Call-ID|i)[ \t]*:[^\r\n]*/im, `Call-ID: ${callId}`);
  return {
    timestampNs,
    ipFamily: template.ipFamily,
    ipProtocol: template.ipProtocol,
    transport: template.transport,
    srcIp: template.srcIp,
    dstIp: template.dstIp,
    srcPort: template.srcPort,
    dstPort: template.dstPort,
    vlan: template.vlan,
    protoType: template.protoType,
    captureId: template.captureId,
    nodeName: template.nodeName,
    correlationId: callId,
    payload: Buffer.from(rewritten, 'latin1'),
    retransmission: false,
  };
}

/** Nearest rank. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * Sends RATE events/s for `durationSec` through `submit` (each event a new Call-ID, its time the send
 * time), while a poller asks the store every 50 ms for what it holds. An event's latency: start of the first poll that saw it − its send
 * time (a query reads the parts committed when it starts, so this bounds the commit from above).
 */
async function measureLatency(
  path: LatencyFigures['path'],
  sink: SinkKind | null,
  client: ClickHouseClient,
  database: string,
  templates: readonly CaptureEvent[],
  submit: (event: CaptureEvent) => Promise<void>,
  durationSec: number,
  inserts: () => number,
): Promise<LatencyFigures> {
  const total = Math.round(durationSec * RATE);
  const sentAt = new Float64Array(total);
  const sentNs = new BigInt64Array(total);
  const latency: number[] = [];
  const pending = new Map<string, number>();
  const tag = `${path}-${sink ?? 'writer'}-${process.pid}-${Date.now().toString(36)}`;
  let sending = true;
  let stop = false;
  let polls = 0;
  let pollMs = 0;

  // By time, not by a list of Call-IDs: a query with thousands of IN values is itself slow enough to
  // hold the store back. Rows from the oldest pending event's time on: the pending ones that became
  // visible, plus a few already seen (visibility is not in send order across partitions).
  const poller = (async () => {
    while (!stop) {
      const t = performance.now();
      const oldest = pending.values().next();
      if (!oldest.done) {
        const since = sentNs[oldest.value]!;
        const result = await client.query({
          query: `SELECT call_id FROM ${database}.sip_messages WHERE time >= fromUnixTimestamp64Nano(toInt64(${since})) AND endsWith(call_id, '-t')`,
          format: 'JSONEachRow',
        });
        for (const row of await result.json<{ call_id: string }>()) {
          const i = pending.get(row.call_id);
          if (i === undefined) continue;
          latency.push(t - sentAt[i]!);
          pending.delete(row.call_id);
        }
        polls++;
        pollMs += performance.now() - t;
      } else if (!sending) {
        return;
      }
      await sleep(Math.max(1, POLL_MS - (performance.now() - t)));
    }
  })();

  const start = performance.now();
  let sent = 0;
  try {
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - start) * RATE) / 1000) + 1);
      while (sent < due) {
        const now = performance.now();
        const tracked = sent % TRACK_EVERY === 0;
        const callId = `bench-latency-${tag}-${sent}${tracked ? '-t' : ''}`;
        const ns = BigInt(Math.round((performance.timeOrigin + now) * 1000)) * 1000n;
        const event = withCallId(templates[sent % templates.length]!, callId, ns);
        sentAt[sent] = now;
        sentNs[sent] = ns;
        if (tracked) pending.set(callId, sent);
        sent++;
        await submit(event);
      }
      await sleep(Math.max(1, start + (sent * 1000) / RATE - performance.now()));
    }
  } finally {
    sending = false;
  }
  const sendSeconds = (performance.now() - start) / 1000;
  // What is not visible 30 s after the last send is reported missing.
  await timeBox('latency poller', 30_000, poller).catch(() => {
    stop = true;
  });
  stop = true;
  // Every event sent, tracked or not, must be in the store by now.
  const counted = await client.query({
    query: `SELECT count() AS n FROM ${database}.sip_messages WHERE startsWith(call_id, 'bench-latency-${tag}-')`,
    format: 'JSONEachRow',
  });
  const [row] = await counted.json<{ n: string | number }>();
  const missing = total - Number(row?.n ?? 0) + pending.size;
  const sorted = [...latency].sort((a, b) => a - b);
  const p99 = percentile(sorted, 99);
  return {
    path,
    sink,
    producerLingerMs: null,
    ratePerSecond: RATE,
    durationSec,
    sent: total,
    seen: latency.length,
    missing,
    achievedRate: Math.round(total / sendSeconds),
    p50Ms: round(percentile(sorted, 50)),
    p95Ms: round(percentile(sorted, 95)),
    p99Ms: round(p99),
    maxMs: round(sorted[sorted.length - 1] ?? Number.NaN),
    meanMs: round(latency.reduce((a, b) => a + b, 0) / Math.max(1, latency.length)),
    pollIntervalMs: POLL_MS,
    meanPollMs: round(pollMs / Math.max(1, polls), 1),
    inserts: inserts(),
    target: { p99Ms: 2000, met: missing === 0 && p99 <= 2000 },
  };
}

async function kafkaLatency(
  store: Store,
  mock: MockKafka,
  kind: SinkKind,
  templates: readonly CaptureEvent[],
  durationSec: number,
  dir: string,
  log: (line: string) => void,
): Promise<LatencyFigures> {
  const topic = `callscope.bench.latency.${kind}`;
  const database = `bench_latency_${kind.replace('-', '_')}`;
  const partitions = 6; // `callscope capture/ingest --partitions` default
  await mock.createTopic(topic, partitions);
  const ingest = await startIngest(mock, store, topic, database, kind, partitions);
  let producer: EventProducer | null = null;
  try {
    const lingerMs = kind === 'coalesced' ? COALESCED_LINGER_MS : PRODUCER_LINGER_MS;
    producer = await startProducer(mock, topic, join(dir, `spool-latency-${kind}`), PRODUCER_BATCH, lingerMs);
    log(
      `  ${kind} sink: consumer joined in ${ingest.joinMs} ms; sending ${fmt(RATE)} events/s for ${durationSec} s (producer linger ${lingerMs} ms)`,
    );
    const p = producer;
    const figures = await measureLatency(
      'kafka',
      kind,
      store.client,
      database,
      templates,
      (e) => p.send(e),
      durationSec,
      () => ingest.sink.stats().writer.batches,
    );
    return { ...figures, producerLingerMs: lingerMs };
  } finally {
    await ingest.stop().catch(() => {});
    await producer?.close().catch(() => {});
    await ingest.sink.close().catch(() => {});
    await drop(store.client, database);
  }
}

async function directLatency(
  store: Store,
  templates: readonly CaptureEvent[],
  durationSec: number,
): Promise<LatencyFigures> {
  const database = 'bench_latency_direct';
  await migrate(store.client, { database, ttlDays: 0 });
  // default maxDelayMs (1 s), straight into the engine as `callscope run` writes
  const writer = new StoreWriter(store.client, { database, inserter: store.inserter });
  // A capture hands the writer parsed SIP; these events are built from payloads, so parse them here.
  const sip = new IngestSip();
  try {
    return await measureLatency(
      'direct',
      null,
      store.client,
      database,
      templates,
      (e) => writer.write(sip.prepare([e])),
      durationSec,
      () => writer.stats.batches,
    );
  } finally {
    await writer.close().catch(() => {});
    await drop(store.client, database);
  }
}

function latencyLine(f: LatencyFigures): string {
  return (
    `p50 ${fmt(f.p50Ms)} ms, p95 ${fmt(f.p95Ms)} ms, p99 ${fmt(f.p99Ms)} ms, max ${fmt(f.maxMs)} ms ` +
    `(${fmt(f.seen)} tracked events seen, ${fmt(f.missing)} of ${fmt(f.sent)} missing after 30 s; sent at ${fmt(f.achievedRate)}/s; ` +
    `${fmt(f.inserts)} INSERTs; polls took ${f.meanPollMs} ms)   target p99 ≤ 2,000 ms: ${f.target.met ? 'met' : 'MISSED'}`
  );
}

// ---------------------------------------------------------------------------------------------------

async function attempt<T>(what: string, log: (line: string) => void, fn: () => Promise<T>): Promise<Part<T>> {
  try {
    return await fn();
  } catch (error) {
    log(`  ${what} failed: ${message(error)}`);
    return { error: message(error) };
  }
}

export async function runStoreBench(options: StoreBenchOptions): Promise<StoreBenchFigures> {
  const { log } = options;
  const quick = options.quick ?? false;
  const parts = new Set(options.only ?? ['pipeline', 'kafka', 'latency']);
  const m = machine();
  const figures: StoreBenchFigures = { machine: m, quick, pipeline: null, kafka: null, latency: null };
  log(
    `store bench — ${m.cpu}, ${m.cores} cores, node ${m.node}, load average ${m.loadAverage}${quick ? ' (quick)' : ''}`,
  );

  const dir = mkdtempSync(join(tmpdir(), 'callscope-store-bench-'));
  let store: Store | null = null;
  let mock: MockKafka | null = null;
  try {
    const calls = quick ? 7_500 : 30_000;
    const t0 = performance.now();
    const pcap = generateSipCapture(dir, calls);
    log(
      `capture: ${fmt(calls)} generated calls, SIP only (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
    store = await openStore({ dataDir: join(dir, 'store') });
    const s = store;

    if (parts.has('pipeline')) {
      log(`pipeline → embedded store (load average ${load()}):`);
      const p = await attempt('pipeline part', log, () =>
        timeBox('pipeline part', quick ? 600_000 : 1_800_000, pipelinePart(s, pcap, dir, quick, log)),
      );
      figures.pipeline = p;
      if ('store' in p) {
        const peer = 'perSecond' in p.peer ? p.peer : null;
        const sp = p.split;
        log(
          `  ours  pipeline → StoreWriter → chDB (Native) ${fmt(p.pipeline.perSecond)} events/s with decoding; ` +
            `the store's share ${fmt(p.store.perSecond)} events/s, ${fmt(p.store.perCpuSecond)} events/CPU-s   ` +
            `target ≥ 100,000/s per core: ${p.target.met ? 'met' : 'MISSED'}`,
        );
        log(
          `  peer  chDB INSERT FROM INFILE, same blocks  ${peer ? `${fmt(peer.perSecond)} rows/s, ${fmt(peer.perCpuSecond)} rows/CPU-s (chDB ${peer.engine})` : `n/a (${'error' in p.peer ? p.peer.error : ''})`}`,
        );
        log(
          `  ours/peer (store share / engine's insert)    ×${p.ratio ?? 'n/a'} wall, ×${p.ratioPerCpu ?? 'n/a'} per CPU-s`,
        );
        log(
          `  where the store's ${sp.storeCpuUs} µs CPU/event go: encode ${sp.encodeCpuUs} (main thread ${sp.encodeUs}, eventId ${sp.eventIdUs}); ` +
            `insert ${sp.httpAndEngineCpuUs} (engine ${sp.engineCpuUs ?? 'n/a'}, ours around it ${sp.httpCpuUs ?? 'n/a'}); ` +
            `unexplained ${sp.restCpuUs}`,
        );
      }
    }

    // Kafka and latency events carry no parsed message (as after Kafka), which keeps the heap small.
    const events =
      parts.has('kafka') || parts.has('latency')
        ? await loadSipEvents(pcap, quick ? 30_000 : 100_000, true)
        : [];
    let kafkaSkip: string | null = null;
    if (parts.has('kafka') || parts.has('latency')) {
      if (!haveMockKafka()) kafkaSkip = `no mock Kafka: ${mockKafkaUnavailableReason()}`;
      else {
        try {
          mock = await startMockKafka({ brokers: 1 });
        } catch (error) {
          kafkaSkip = `mock Kafka did not start: ${message(error)}`;
        }
      }
    }
    const skipped = { skipped: kafkaSkip ?? 'no mock Kafka' };

    if (parts.has('kafka')) {
      log(`Kafka (librdkafka mock) end to end (load average ${load()}):`);
      if (mock === null) {
        figures.kafka = { perChunk: skipped, coalesced: skipped };
        log(`  skipped: ${kafkaSkip}`);
      } else {
        const mk = mock;
        // The first-shipped sink makes one INSERT per partition batch: a few hundred events/s against
        // the mock, so it gets fewer events. 32 partitions keep every partition far below the mock's
        // ~5 MiB retention; the row count is checked exactly anyway.
        const perChunk = await attempt('per-chunk Kafka run', log, () =>
          timeBox(
            'per-chunk Kafka run',
            420_000,
            kafkaPart(
              s,
              mk,
              events.slice(0, quick ? 8_000 : 20_000),
              'per-chunk',
              32,
              PRODUCER_BATCH,
              dir,
              log,
            ),
          ),
        );
        if ('sink' in perChunk) log(kafkaLine(perChunk));
        // The mock answers a fetch with one producer batch per partition (a broker sends up to
        // maxBytesPerPartition): producer batches of 5,000 give fetches nearer a real broker's.
        const coalesced = await attempt('coalesced Kafka run', log, () =>
          timeBox('coalesced Kafka run', 420_000, kafkaPart(s, mk, events, 'coalesced', 32, 5000, dir, log)),
        );
        if ('sink' in coalesced) log(kafkaLine(coalesced));
        figures.kafka = { perChunk, coalesced };
      }
    }

    if (parts.has('latency')) {
      const durationSec = quick ? 10 : 20;
      const templates = events.slice(0, 500);
      log(`capture-to-queryable latency at ${fmt(RATE)} events/s (load average ${load()}):`);
      const viaKafka = async (kind: SinkKind): Promise<Part<LatencyFigures>> => {
        if (mock === null) {
          log(`  through Kafka (${kind} sink): skipped: ${kafkaSkip}`);
          return skipped;
        }
        const mk = mock;
        const f = await attempt(`Kafka latency (${kind} sink)`, log, () =>
          timeBox(
            `Kafka latency (${kind} sink)`,
            180_000,
            kafkaLatency(s, mk, kind, templates, durationSec, dir, log),
          ),
        );
        if ('path' in f) log(`  through Kafka (${kind} sink): ${latencyLine(f)}`);
        return f;
      };
      const kafkaPerChunk = await viaKafka('per-chunk');
      const kafkaCoalesced = await viaKafka('coalesced');
      const direct = await attempt('direct latency', log, () =>
        timeBox('direct latency', 180_000, directLatency(s, templates, durationSec)),
      );
      if ('path' in direct) log(`  single process (StoreWriter, maxDelayMs 1 s): ${latencyLine(direct)}`);
      figures.latency = { kafkaPerChunk, kafkaCoalesced, direct };
    }
    return figures;
  } finally {
    await mock?.stop().catch(() => {});
    await store?.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  tuneRuntime();
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const onlyAt = args.indexOf('--only');
  const only =
    onlyAt >= 0
      ? ((args[onlyAt + 1] ?? '').split(',').filter((p) => p !== '') as Array<
          'pipeline' | 'kafka' | 'latency'
        >)
      : undefined;
  runStoreBench({ log: (line) => process.stderr.write(`${line}\n`), quick: args.includes('--quick'), only })
    .then((figures) => {
      if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    })
    .finally(() => {
      // kafkajs or a stuck request must not keep a finished benchmark alive.
      setTimeout(() => process.exit(), 5000).unref();
    });
}
