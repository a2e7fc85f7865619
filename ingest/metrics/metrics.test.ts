/**
 * The metrics registry (metrics.ts): its exposition passes promtool's own check, hostile label values
 * included; each call is counted once however often the calls job computes it (twice over the same
 * store, in pieces, after a restart, with a start that moves, then a rebuild), always equal to the
 * store's settled edge calls; label values stay bounded.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../../analyze/analyze.js';
import { CallAnalysis } from '../../analyze/calls/analysis.js';
import { CallsJob, rebuildCalls } from '../../analyze/calls/job.js';
import { EVERY_OUTCOME, generateCapture, OUTCOMES } from '../../capture/generator/generate.js';
import type { CallRecord } from '../../core/call.js';
import type { CaptureEvent } from '../../core/event.js';
import { GROUP_TIMING, startKafkaTarget, testLogger } from '../../test/kafka/fixtures.js';
import { KAFKA, needs, removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { createKafka } from '../kafka/client.js';
import { KafkaSink } from '../kafka/sink.js';
import { KafkaSource } from '../kafka/source.js';
import { migrate } from '../schema/migrate.js';
import { openTestStore, type TestStore } from '../schema/test-store.js';
import { StoreSink } from '../store-sink.js';
import { CallscopeMetrics, eventTypeOf, LabelBounds, MAX_LABEL_LENGTH, OTHER } from './metrics.js';

const SAMPLE = fileURLToPath(new URL('../../capture/sample/calls.pcap', import.meta.url));

let store: TestStore;
let events: CaptureEvent[];
let records: CallRecord[];
let lastMs: number;

beforeAll(async () => {
  store = await openTestStore();
  events = [];
  const analysis = new CallAnalysis({ keepRecords: true });
  const summary = await analyzeFile(SAMPLE, { onEvent: (e) => events.push(e), sinks: [analysis.sink] });
  lastMs = Math.trunc(Date.parse(summary.lastPacketTime!));
  await analysis.finish(lastMs);
  records = analysis.records;
}, 60_000);

afterAll(async () => {
  await store?.close();
});

/** A metric's samples: label set → value (histograms: the _count sample per label set). */
async function samples(
  metrics: CallscopeMetrics,
  name: string,
): Promise<Array<[Record<string, unknown>, number]>> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const got = await metric.get();
  return got.values
    .filter((v) => !('metricName' in v) || v.metricName === undefined || v.metricName === `${name}_count`)
    .map((v) => [v.labels as Record<string, unknown>, v.value]);
}

async function callsByOutcome(metrics: CallscopeMetrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [labels, value] of await samples(metrics, 'callscope_calls_total'))
    out[String(labels.outcome)] = (out[String(labels.outcome)] ?? 0) + value;
  return out;
}

/** What the acceptance query asks of the store: settled edge calls by outcome. */
async function storedByOutcome(database: string): Promise<Record<string, number>> {
  const rs = await store.client.query({
    query: `SELECT outcome, count() AS n FROM {db:Identifier}.calls FINAL WHERE is_edge AND NOT open GROUP BY outcome`,
    query_params: { db: database },
    format: 'JSONEachRow',
  });
  const out: Record<string, number> = {};
  for (const r of await rs.json<{ outcome: string; n: string }>()) out[r.outcome] = Number(r.n);
  return out;
}

async function storedPddSamples(database: string): Promise<number> {
  const rs = await store.client.query({
    query: `SELECT count() AS n FROM {db:Identifier}.calls FINAL WHERE is_edge AND NOT open AND pdd_ms IS NOT NULL`,
    query_params: { db: database },
    format: 'JSONEachRow',
  });
  return Number((await rs.json<{ n: string }>())[0]!.n);
}

const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

async function freshSink(database: string, runId = 'r1'): Promise<StoreSink> {
  await migrate(store.client, { database, ttlDays: 0 });
  return new StoreSink(store.client, { database, runId, maxRows: 100 });
}

describe('calls counted once', () => {
  it('two jobs over the same store, then a rebuild: the counter is the store settled edge calls', async () => {
    const database = 'metrics_calls_twice';
    const sink = await freshSink(database);
    const metrics = new CallscopeMetrics({ command: 'test' });
    const job = () =>
      new CallsJob({
        client: store.client,
        database,
        writer: sink,
        overlapSec: 0,
        onSettled: metrics.countSettledCalls,
      });
    // Half the capture, then all of it: calls go from open to settled.
    await sink.write(events.slice(0, Math.floor(events.length / 2)));
    await sink.flush();
    await job().cycle();
    const early = await storedByOutcome(database);
    expect(await callsByOutcome(metrics)).toEqual(early);
    await sink.write(events);
    await sink.flush();
    await job().cycle();
    const settled = await storedByOutcome(database);
    expect(total(settled)).toBeGreaterThan(total(early));
    expect(await callsByOutcome(metrics)).toEqual(settled);
    // A second job (a restart, another process) over the same store: nothing counted again.
    const second = job();
    await second.cycle();
    await second.cycle();
    expect(await callsByOutcome(metrics)).toEqual(settled);
    // The run's end closes the calls still open: those, and only those, count now.
    const rebuild = () =>
      rebuildCalls({
        client: store.client,
        database,
        writer: sink,
        scope: { where: 'run_id = {run:String}', params: { run: 'r1' } },
        closeAtMs: lastMs,
        runId: 'r1',
        onSettled: metrics.countSettledCalls,
      });
    await rebuild();
    const closed = await storedByOutcome(database);
    const edges = records.filter((r) => r.edgeCallId === r.callId).length;
    expect(total(closed)).toBe(edges);
    expect(await callsByOutcome(metrics)).toEqual(closed);
    await rebuild();
    await job().cycle();
    expect(await callsByOutcome(metrics)).toEqual(closed);
    // PDD: one observation per settled edge call that has one.
    const pdd = await samples(metrics, 'callscope_call_pdd_seconds');
    expect(pdd.reduce((n, [, v]) => n + v, 0)).toBe(await storedPddSamples(database));
    // Labels: a final status or "none", VMs "none" (the sample has no VM attribution).
    for (const [labels] of await samples(metrics, 'callscope_calls_total')) {
      expect(String(labels.final_status)).toMatch(/^(none|[1-6]\d\d)$/);
      expect(labels.caller_vm).toBe('none');
    }
    await sink.close();
    metrics.close();
  });

  it('legs of every outcome one Call-ID at a time, and a settled call whose start moves: counted once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'callscope-metrics-'));
    try {
      const file = join(dir, 'every.pcap');
      const truth = generateCapture({
        output: file,
        seed: 9,
        vms: 5,
        calls: 2 * OUTCOMES.length,
        callsPerSecond: 2,
        callDurationSec: 1,
        outcomes: EVERY_OUTCOME,
      });
      const all: CaptureEvent[] = [];
      await analyzeFile(file, { onEvent: (e) => all.push(e) });
      const database = 'metrics_calls_moved';
      const sink = await freshSink(database);
      const metrics = new CallscopeMetrics({ command: 'test' });
      // A proxied call's caller INVITE arrives last: the call first starts (and settles) at the proxy's forward.
      const proxied = truth.calls.find((t) => t.proxyVm !== null && t.hopPath.length === 2)!;
      const edgeInvite = all.findIndex((e) => e.sip?.callId === proxied.callId && e.sip.method === 'INVITE');
      await sink.write(all.filter((_, i) => i !== edgeInvite));
      await sink.flush();
      const job = new CallsJob({
        client: store.client,
        database,
        writer: sink,
        overlapSec: 0,
        chunkCalls: 1,
        onSettled: metrics.countSettledCalls,
      });
      await job.cycle();
      const before = await storedByOutcome(database);
      expect(await callsByOutcome(metrics)).toEqual(before);
      await sink.write([all[edgeInvite]!]);
      await sink.flush();
      await job.cycle();
      expect(job.stats().tombstones).toBe(1);
      const after = await storedByOutcome(database);
      expect(total(after)).toBe(total(before));
      // Counted once, as it was when it first settled: the late INVITE changed its outcome in the
      // store (failed → answered: the proxy's leg alone looked failed), and a counter cannot move back.
      expect(await callsByOutcome(metrics)).toEqual(before);
      expect(after).not.toEqual(before);
      // B2BUA later legs are in the store but not in the counter: edges only.
      const legs = await store.client.query({
        query: 'SELECT count() AS n FROM {db:Identifier}.calls FINAL WHERE NOT is_edge',
        query_params: { db: database },
        format: 'JSONEachRow',
      });
      expect(Number((await legs.json<{ n: string }>())[0]!.n)).toBeGreaterThan(0);
      await sink.close();
      metrics.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('events, sinks and the store', () => {
  it('counts events by type through the sink, and reads the store writer at scrape time', async () => {
    const database = 'metrics_events';
    const sink = await freshSink(database);
    const metrics = new CallscopeMetrics({ command: 'test' });
    metrics.watchSinks([sink]);
    metrics.watchStore(sink);
    await metrics.sink.write(events);
    await sink.write(events);
    await sink.flush();
    const byType: Record<string, number> = {};
    for (const e of events) byType[eventTypeOf(e.protoType)] = (byType[eventTypeOf(e.protoType)] ?? 0) + 1;
    const counted = Object.fromEntries(
      (await samples(metrics, 'callscope_events_total')).map(([l, v]) => [String(l.type), v]),
    );
    expect(counted).toEqual({ sip: 0, media: 0, rtcp: 0, log: 0, other: 0, ...byType });
    const rows = Object.fromEntries(
      (await samples(metrics, 'callscope_store_rows_total')).map(([l, v]) => [String(l.table), v]),
    );
    const stored = await store.client.query({
      query: 'SELECT count() AS n FROM {db:Identifier}.sip_messages',
      query_params: { db: database },
      format: 'JSONEachRow',
    });
    expect(rows.sip_messages).toBe(Number((await stored.json<{ n: string }>())[0]!.n));
    expect(rows.sip_messages).toBe(byType.sip);
    // The sample was captured long ago: the lag is its age, as of its newest stored event.
    const [[, lag]] = (await samples(metrics, 'callscope_ingest_lag_seconds')) as [[unknown, number]];
    expect(lag).toBeGreaterThan((Date.now() - lastMs) / 1000 - 5);
    expect(lag).toBeLessThan((Date.now() - lastMs) / 1000 + 5);
    expect(await samples(metrics, 'callscope_store_insert_errors_total')).toEqual([
      [{ reason: 'batch_lost' }, 0],
      [{ reason: 'row_quarantined' }, 0],
    ]);
    await sink.close();
    metrics.close();
    expect((await metrics.exposition()).trim()).toBe('');
  });
});

needs(KAFKA).describe('Kafka', () => {
  it('the producer spool and the consumer lag, per partition, from a real Kafka protocol broker', async () => {
    const target = await startKafkaTarget({ brokers: 1 });
    const spool = tmpDir('callscope-metrics-spool-');
    const logger = testLogger();
    const metrics = new CallscopeMetrics({ command: 'test' });
    try {
      const topic = target.name('callscope.metrics');
      await target.createTopics([{ topic, partitions: 1 }]);
      const kafka = () => createKafka({ brokers: target.brokers, logger, kafkaLogLevel: 'nothing' });
      const producer = new KafkaSink({ kafka: kafka(), topic, spool: { dir: spool }, logger });
      metrics.watchProducer(producer.producer);
      metrics.watchSinks([producer]);
      await producer.connect();
      await producer.write(events);
      await producer.flush();
      const gauge = async (name: string) => (await samples(metrics, name))[0]?.[1];
      expect(await gauge('callscope_kafka_spool_events')).toBe(producer.producer.stats().spoolSize);
      expect(await gauge('callscope_kafka_spool_bytes')).toBe(producer.producer.stats().spoolBytes);
      expect(await gauge('callscope_kafka_queued_events')).toBe(0);
      expect(await samples(metrics, 'callscope_events_delivered_total')).toEqual([
        [{ sink: 'kafka' }, events.length],
      ]);
      await producer.close();

      // 50 events a chunk: at the first chunk every message is still ahead of the consumer.
      const lags: number[] = [];
      let delivered = 0;
      const stop = new AbortController();
      const source = new KafkaSource({
        kafka: kafka(),
        topic,
        groupId: target.name('metrics'),
        logger,
        maxEventsPerWrite: 50,
        ...GROUP_TIMING,
        onDelivered: async (_n, _context, total) => {
          const lag = await samples(metrics, 'callscope_kafka_consumer_lag');
          lags.push(lag.reduce((n, [, v]) => n + v, 0));
          delivered = total;
          if (total >= events.length) stop.abort();
        },
      });
      metrics.watchConsumer(source);
      await source.run({ events: async () => {}, health: () => {} }, stop.signal);
      expect(delivered).toBe(events.length);
      expect(lags[0]).toBe(events.length);
      // The next chunk is read while the last is stored (two in flight): each later chunk sees the
      // position committed by the chunk before it, or by the one before that.
      lags.forEach((lag, i) => {
        if (i === 0) return;
        expect([events.length - 50 * i, events.length - 50 * (i - 1)]).toContain(lag);
        expect(lag).toBeLessThanOrEqual(lags[i - 1]!);
      });
      const final = await samples(metrics, 'callscope_kafka_consumer_lag');
      expect(final).toEqual([[{ topic, partition: '0' }, 0]]);
      expect(await gauge('callscope_kafka_consumed_total')).toBe(events.length);
    } finally {
      metrics.close();
      await target.stop();
      removeTmpDir(spool);
    }
  });
});

describe('label bounds', () => {
  it('folds values past a label limit into "other", cuts long ones, and counts both', async () => {
    const bounds = new LabelBounds({ vm: 3 });
    expect(['a', 'b', 'c', 'd', 'a', 'e'].map((v) => bounds.value('vm', v))).toEqual([
      'a',
      'b',
      'c',
      OTHER,
      'a',
      OTHER,
    ]);
    expect(bounds.folded).toEqual({ vm: 2 });
    // Seen again (a reason at every scrape): the same answer, not counted again.
    expect(bounds.value('vm', 'd')).toBe(OTHER);
    expect(bounds.folded).toEqual({ vm: 2 });
    const long = bounds.value('x', 'é'.repeat(70_000));
    expect(long.length).toBe(MAX_LABEL_LENGTH);
    expect(long.endsWith('…')).toBe(true);
    // A surrogate pair at the cut is not split.
    const emoji = bounds.value('y', `${'a'.repeat(MAX_LABEL_LENGTH - 3)}😀😀😀`);
    expect(emoji.length).toBeLessThanOrEqual(MAX_LABEL_LENGTH);
    expect(emoji).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])/);
    expect(bounds.value('z', 'a\x1b[31mred\x00')).toBe('a\ufffd[31mred\ufffd');
    expect(bounds.value('x', 'é'.repeat(70_000))).toBe(long);
    expect(bounds.truncated).toEqual({ x: 1, y: 1 });
  });

  it('bounds callscope_calls_total however many VMs and VM pairs come', async () => {
    const metrics = new CallscopeMetrics({
      command: 'test',
      labelLimits: { caller_vm: 5, callee_vm: 5 },
      maxCallSeries: 20,
    });
    const edge = records.find((r) => r.edgeCallId === r.callId)!;
    const many: CallRecord[] = [];
    for (let i = 0; i < 400; i++)
      many.push({
        ...edge,
        caller: { ...edge.caller, vm: `vm-${i % 40}` },
        callee: { ...edge.callee, vm: `vm-${(i * 7) % 40}` },
      });
    metrics.countSettledCalls(many);
    const series = await samples(metrics, 'callscope_calls_total');
    expect(series.reduce((n, [, v]) => n + v, 0)).toBe(400);
    // At most 6 values per VM label (5 and "other"), and 20 series plus the folded pair.
    const callers = new Set(series.map(([l]) => l.caller_vm));
    expect(callers.size).toBeLessThanOrEqual(6);
    expect(callers.has(OTHER)).toBe(true);
    expect(series.length).toBeLessThanOrEqual(21);
    const bounded = await samples(metrics, 'callscope_metrics_label_values_bounded_total');
    expect(bounded.find(([l]) => l.label === 'caller_vm' && l.action === 'folded')?.[1]).toBeGreaterThan(0);
    metrics.close();
  });
});

needs('promtool').describe('the exposition', () => {
  function promtoolCheck(text: string): { status: number | null; output: string } {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  }

  it('passes promtool check metrics, hostile VM names (quotes, newlines, 64 KB) escaped and cut', async () => {
    const metrics = new CallscopeMetrics({ command: 'test' });
    const database = 'metrics_exposition';
    const sink = await freshSink(database);
    metrics.watchSinks([sink]);
    metrics.watchStore(sink);
    await metrics.sink.write(events);
    const hostile = [
      'vm "quoted"',
      'vm\nnewline\r\n# HELP fake_metric injected\nfake_metric 1',
      `huge-${'"\\\n'.repeat(21_845)}`,
      'back\\slash',
      '\u0000nul and \u001b[2J escape',
      'ünïcødé 😀',
    ];
    expect(hostile[2]!.length).toBeGreaterThan(64_000);
    const edge = records.find((r) => r.edgeCallId === r.callId && r.pddMs !== null)!;
    metrics.countSettledCalls(
      hostile.map((vm, i) => ({
        ...edge,
        caller: { ...edge.caller, vm },
        callee: { ...edge.callee, vm: hostile[(i + 1) % hostile.length]! },
      })),
    );
    const text = await metrics.exposition();
    const { status, output } = promtoolCheck(text);
    expect(status, output).toBe(0);
    expect(output).toBe('');
    // Every sample is one line, no label value past 128 characters, nothing injected.
    const lines = text.split('\n');
    expect(lines.filter((l) => l.startsWith('fake_metric'))).toEqual([]);
    const callLines = lines.filter((l) => l.startsWith('callscope_calls_total{'));
    expect(callLines).toHaveLength(hostile.length);
    for (const line of callLines) expect(line.length).toBeLessThan(4 * (MAX_LABEL_LENGTH * 2 + 60));
    expect(text).toContain('caller_vm="vm \\"quoted\\""');
    // \r is a control character: replaced, as escape sequences are.
    expect(text).toContain('caller_vm="vm\\nnewline\ufffd\\n# HELP fake_metric injected\\nfake_metric 1"');
    expect(text).toContain('caller_vm="back\\\\slash"');
    expect(text).toContain('caller_vm="ünïcødé 😀"');
    // Every metric of the fixed list is there, with its type.
    for (const [name, type] of [
      ['callscope_events_total', 'counter'],
      ['callscope_events_skipped_total', 'counter'],
      ['callscope_events_lost_total', 'counter'],
      ['callscope_store_rows_total', 'counter'],
      ['callscope_store_insert_errors_total', 'counter'],
      ['callscope_store_retries_total', 'counter'],
      ['callscope_ingest_lag_seconds', 'gauge'],
      ['callscope_calls_total', 'counter'],
      ['callscope_call_pdd_seconds', 'histogram'],
      ['callscope_packets_total', 'counter'],
      ['callscope_capture_drops_total', 'counter'],
      ['callscope_kafka_spool_bytes', 'gauge'],
      ['callscope_kafka_spool_events', 'gauge'],
      ['callscope_kafka_consumer_lag', 'gauge'],
    ])
      expect(text).toContain(`# TYPE ${name} ${type}\n`);
    await sink.close();
    metrics.close();
  });
});
