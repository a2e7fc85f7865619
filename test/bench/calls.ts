/**
 * The calls part of `npm run bench` (docs/PERFORMANCE.md, "Calls"):
 *
 * 1. The call engine on parsed messages: the SIP events of a generated capture (every outcome, B2BUA
 *    legs, proxies; no RTP), each parsed and handed to a CallSink (records counted by the KPI counter,
 *    as `analyze` does), minus the same passes parsing only: the engine's share (warm, best of three,
 *    alternated). Beside it, from the same run: the parser alone, the whole file through the driver
 *    into the engine (read, decode, SIP detection and parsing, the engine), and `tshark -q -z
 *    sip,stat` on the same file, which only counts messages.
 * 2. Memory per open call and a Call-ID flood, in a child `node --expose-gc`: N INVITEs with distinct
 *    Call-IDs and no answer (every call open), heap growth between two full GCs over N; then 1,000,000
 *    Call-IDs against the default bound of 200,000 open calls: the heap stays flat past the bound and
 *    the rest is counted as evicted.
 * 3. KPI queries over 1,000,000 stored calls in the embedded store: the engine's records of (1),
 *    multiplied in SQL to a million rows, then the summary, KPIs by VM, peer and hour, and the
 *    destinations, each best of three, against `SELECT count() FROM calls FINAL` (the floor of any
 *    query that reads the table as its newest versions).
 *
 * `node dist/test/bench/calls.js [--quick] [--json]` runs it alone.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { AlertEvaluator, ruleValues } from '../../analyze/alerts/evaluator.js';
import { type AlertRule, type AlertRules, loadRules } from '../../analyze/alerts/rules.js';
import { analyzeFile } from '../../analyze/analyze.js';
import { CallKpiCounter } from '../../analyze/calls/kpis.js';
import { CallSink } from '../../analyze/calls/sink.js';
import { storedCallsSummary, storedDestinations, storedKpisBy } from '../../analyze/calls/stored-kpis.js';
import { buildLadder } from '../../analyze/ladder/build.js';
import { ladderInputFromStore } from '../../analyze/ladder/gather.js';
import { EVERY_OUTCOME, generateCapture } from '../../capture/generator/generate.js';
import { SipParser } from '../../capture/sip/parser.js';
import { FileSource } from '../../capture/sources.js';
import type { CallRecord } from '../../core/call.js';
import { drive } from '../../core/drive.js';
import { type CaptureEvent, HEP_PROTO_SIP } from '../../core/event.js';
import { tuneRuntime } from '../../core/runtime.js';
import type { SipMessage } from '../../core/sip-message.js';
import { migrate } from '../../ingest/schema/migrate.js';
import { openStore } from '../../ingest/store/client.js';
import { DEFAULT_DATABASE } from '../../ingest/store/embedded.js';
import { StoreWriter } from '../../ingest/writer.js';
import { allQueries, OPENING_VARS, runQuery } from '../dashboards-sql.js';

export interface CallsBenchFigures {
  engine: {
    calls: number;
    messages: number;
    /** The engine's share: parse (with the fields the engine reads) and the engine, minus parsing. */
    engineMessagesPerSec: number;
    /** Parsing with the fields read, and the engine: what a message costs from bytes to call state. */
    parseAndEngineMessagesPerSec: number;
    /** The file read, decoded, parsed and through the engine. */
    analyzeWithEngineMessagesPerSec: number;
    parserMessagesPerSec: number;
    tsharkMessagesPerSec: number | null;
    /** A sum over the fields read while parsing (keeps the reads from being optimised away). */
    fieldsRead: number;
  };
  memory: { openCalls: number; bytesPerOpenCall: number; flood: FloodFigures } | null;
  /** One call's ladder read back from the store of a million calls. */
  ladder: { storedMessages: number; messages: number; ms: number };
  /** Every dashboard query over that store: the slowest three for a 6-hour and a 24-hour view. */
  dashboards: {
    queries: number;
    slowest6h: Array<{ query: string; ms: number; rows: number }>;
    slowest24h: Array<{ query: string; ms: number; rows: number }>;
  };
  /** One evaluation of 50 alert rules whose windows hold every stored call. */
  alerts: AlertsBenchFigures;
  kpis: {
    storedCalls: number;
    countFinalMs: number;
    summaryMs: number;
    byVmMs: number;
    byPeerMs: number;
    byHourMs: number;
    destinationsMs: number;
  };
}

interface FloodFigures {
  callIds: number;
  maxOpenCalls: number;
  open: number;
  evicted: number;
  heapAfterBoundMb: number;
  heapAtEndMb: number;
  messagesPerSec: number;
}

async function bestAsync(runs: number, f: () => Promise<unknown>): Promise<number> {
  let ms = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
}

/** The engine over the events, closed at the end; its records. */
async function runEngine(events: readonly CaptureEvent[], parser: SipParser): Promise<CallRecord[]> {
  const records: CallRecord[] = [];
  const counter = new CallKpiCounter();
  const sink = new CallSink({
    onRecord: (r) => {
      counter.add(r);
      records.push(r);
    },
  });
  for (const e of events) {
    const parsed = parser.parse(e.payload, 0, e.payload.length);
    if (parsed.ok) sink.add({ ...e, sip: parsed.message });
  }
  await sink.close();
  counter.summary();
  return records;
}

/** An INVITE with its own Call-ID, To user and branch, as the wire carries it. */
function invite(n: number): Buffer {
  return Buffer.from(
    `INVITE sip:${1000 + (n % 9000)}@10.0.1.2 SIP/2.0\r\n` +
      `Via: SIP/2.0/UDP 10.0.1.1:5060;branch=z9hG4bK${n.toString(36)}x\r\n` +
      'Max-Forwards: 70\r\n' +
      `From: <sip:caller@10.0.1.1>;tag=${n.toString(36)}\r\n` +
      `To: <sip:${1000 + (n % 9000)}@10.0.1.2>\r\n` +
      `Call-ID: flood-${n.toString(36)}-${(n * 2654435761) % 4294967296}@10.0.1.1\r\n` +
      'CSeq: 1 INVITE\r\nContact: <sip:caller@10.0.1.1:5060>\r\nContent-Length: 0\r\n\r\n',
    'latin1',
  );
}

function inviteEvent(parser: SipParser, n: number, t0Ns: bigint): CaptureEvent {
  const raw = invite(n);
  const parsed = parser.parse(raw, 0, raw.length);
  if (!parsed.ok) throw new Error('the bench INVITE does not parse');
  return {
    timestampNs: t0Ns + BigInt(n) * 100_000n,
    ipFamily: 4,
    ipProtocol: 17,
    transport: 'udp',
    srcIp: '10.0.1.1',
    dstIp: '10.0.1.2',
    srcPort: 5060,
    dstPort: 5060,
    vlan: null,
    protoType: HEP_PROTO_SIP,
    captureId: 0,
    nodeName: '',
    correlationId: '',
    payload: raw,
    sip: parsed.message,
    retransmission: false,
  };
}

/** In the child (`--state N`): heap per open call, then the flood against the default bound. */
function stateChild(n: number, flood: number): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  const heap = () => {
    gc();
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const parser = new SipParser();
  const t0Ns = 1_700_000_000_000_000_000n;
  let sink = new CallSink({ onRecord: () => {}, maxOpenCalls: n + 1 });
  for (let i = 0; i < 1000; i++) sink.add(inviteEvent(parser, 10_000_000 + i, t0Ns));
  const before = heap();
  for (let i = 0; i < n; i++) sink.add(inviteEvent(parser, i, t0Ns));
  const after = heap();
  const open = sink.callStats().open;
  const bytesPerOpenCall = Math.round((after - before) / n);
  sink = new CallSink({ onRecord: () => {} });
  const bound = 200_000;
  let heapAfterBound = 0;
  const start = performance.now();
  for (let i = 0; i < flood; i++) {
    sink.add(inviteEvent(parser, i, t0Ns));
    if (i === Math.min(flood - 1, bound + 100_000)) heapAfterBound = heap();
  }
  const elapsed = performance.now() - start;
  const stats = sink.callStats();
  const figures: CallsBenchFigures['memory'] = {
    openCalls: open,
    bytesPerOpenCall,
    flood: {
      callIds: flood,
      maxOpenCalls: bound,
      open: stats.open,
      evicted: stats.evicted,
      heapAfterBoundMb: Math.round(heapAfterBound / 1048576),
      heapAtEndMb: Math.round(heap() / 1048576),
      // Includes parsing each INVITE and the two forced GCs: a floor, not the engine's rate.
      messagesPerSec: Math.round(flood / (elapsed / 1000)),
    },
  };
  process.stdout.write(JSON.stringify(figures));
}

export interface AlertsBenchFigures {
  rules: number;
  callsInWindow: number;
  /** One evaluation of every rule (best of three), and per rule. */
  evaluationMs: number;
  perRuleMs: number;
  /** count() FINAL over the calls: the floor of a query reading the table's newest versions. */
  countFinalMs: number;
  /** Rules still over 1 s ... the slowest three rules' queries alone. */
  slowest: Array<{ rule: string; ms: number }>;
}

/**
 * 50 rules: the shipped defaults, then their call rules again with other groupings and thresholds,
 * every window wide enough to hold the whole store (the issue's "1M calls per window").
 */
function benchRules(spanMs: number): AlertRules {
  const defaults = loadRules();
  const callKpis = new Set(['failed-call-ratio', 'asr-drop', 'pdd-p95', 'silence']);
  const rules: AlertRule[] = defaults.rules.map((r) => ({ ...r, windowMs: spanMs }));
  const groupings = ['callee_vm', 'caller_vm', 'vm', 'callee_ip', 'caller_ip', 'node'];
  for (let i = 0; rules.length < 50; i++) {
    const base = defaults.rules.filter((r) => callKpis.has(r.kpi))[i % 5]!;
    if (base === undefined) break;
    const by = groupings[i % groupings.length]!;
    rules.push({
      ...base,
      name: `${base.name}-${i}`,
      by: [by],
      windowMs: spanMs,
      threshold: base.threshold * (1 + (i % 3) / 10),
    });
  }
  return { ...defaults, delayMs: 0, rules };
}

async function benchAlerts(
  client: ClickHouseClient,
  database: string,
  storedCalls: number,
  countFinalMs: number,
  log: (line: string) => void,
): Promise<AlertsBenchFigures> {
  const [{ first, last }] = await (
    await client.query({
      query: `SELECT toUnixTimestamp64Milli(min(start)) AS first, toUnixTimestamp64Milli(max(start)) AS last FROM ${database}.calls`,
      format: 'JSONEachRow',
    })
  ).json<{ first: string; last: string }>();
  const at = Number(last) + 1000;
  const rules = benchRules(at - Number(first) + 1000);
  const evaluator = new AlertEvaluator({ client, database, rules });
  const evaluationMs = await bestAsync(3, () => evaluator.evaluate(at));
  const perRule: Array<{ rule: string; ms: number }> = [];
  for (const rule of rules.rules)
    perRule.push({
      rule: rule.name,
      ms: Math.round(await bestAsync(1, () => ruleValues(client, database, rules, rule, at))),
    });
  perRule.sort((a, b) => b.ms - a.ms);
  const figures: AlertsBenchFigures = {
    rules: rules.rules.length,
    callsInWindow: storedCalls,
    evaluationMs: Math.round(evaluationMs),
    perRuleMs: Math.round(evaluationMs / rules.rules.length),
    countFinalMs: Math.round(countFinalMs),
    slowest: perRule.slice(0, 3),
  };
  log(
    `alerts: ${figures.rules} rules over ${storedCalls} calls in their windows: one evaluation ${figures.evaluationMs} ms ` +
      `(target < 1,000 ms; ${figures.perRuleMs} ms per rule, count() FINAL ${figures.countFinalMs} ms); slowest ` +
      figures.slowest.map((r) => `${r.rule} ${r.ms} ms`).join(', '),
  );
  return figures;
}

export async function runCallsBench(options: {
  log: (line: string) => void;
  quick?: boolean;
}): Promise<CallsBenchFigures> {
  const { log } = options;
  const quick = options.quick ?? false;
  const dir = mkdtempSync(join(tmpdir(), 'callscope-calls-bench-'));
  try {
    // 1. The engine.
    const pcap = join(dir, 'calls.pcap');
    const calls = quick ? 4000 : 20_000;
    generateCapture({
      output: pcap,
      seed: 11,
      vms: 16,
      calls,
      callsPerSecond: 100,
      callDurationSec: 5,
      outcomes: EVERY_OUTCOME,
      rtp: { enabled: false },
    });
    // The SIP events as the capture hands them over, kept without their parsed messages: each timed
    // pass parses every message again, so that what the engine allocates dies young as it would in a
    // stream (a million held parsed messages would make the collector's work the figure).
    const events: CaptureEvent[] = [];
    await analyzeFile(pcap, { onEvent: (e) => e.sip && events.push({ ...e, sip: undefined }) });
    const parser = new SipParser();
    // The parser decodes header fields on first access: the parse-only pass reads the fields the
    // engine reads (Call-ID, CSeq, Vias, From/To with tags and users, Reason, agents, SDP), so that
    // decoding them is charged to parsing in both passes, and the difference is the engine's own work.
    let touched = 0;
    const readFields = (m: SipMessage) => {
      touched +=
        (m.callId?.length ?? 0) +
        (m.cseq?.seq ?? 0) +
        m.via.length +
        (m.via[0]?.branch?.length ?? 0) +
        (m.from?.tag?.length ?? 0) +
        (m.to?.tag?.length ?? 0) +
        (m.to?.uri?.user?.length ?? 0) +
        (m.from?.uri?.user?.length ?? 0) +
        (m.userAgent?.length ?? 0) +
        (m.server?.length ?? 0) +
        (m.reason === null ? 0 : 1) +
        (m.sdp === null ? 0 : m.sdp.media.length);
    };
    const pass = (withEngine: boolean) => async () => {
      const counter = new CallKpiCounter();
      const sink = new CallSink({ onRecord: (r) => counter.add(r) });
      for (const e of events) {
        const parsed = parser.parse(e.payload, 0, e.payload.length);
        if (!parsed.ok) continue;
        readFields(parsed.message);
        // The event as the capture makes it, in both passes.
        const event = { ...e, sip: parsed.message };
        if (withEngine) sink.add(event);
      }
      await sink.close();
      counter.summary();
    };
    await pass(true)();
    let withEngineMs = Number.POSITIVE_INFINITY;
    let parseMs = Number.POSITIVE_INFINITY;
    // Alternated, so that the machine's drift falls on both.
    for (let i = 0; i < 5; i++) {
      withEngineMs = Math.min(withEngineMs, await bestAsync(1, pass(true)));
      parseMs = Math.min(parseMs, await bestAsync(1, pass(false)));
    }
    const engine = { ms: Math.max(1, withEngineMs - parseMs), value: await runEngine(events, parser) };
    // The file read, decoded and parsed through the driver into the engine, as `analyze` runs it.
    const fileMs = await bestAsync(2, async () => {
      const sink = new CallSink({ onRecord: () => {} });
      await drive(new FileSource(pcap), [sink]);
      await sink.close();
    });
    let tshark: number | null = null;
    if (spawnSync('sh', ['-c', 'command -v tshark']).status === 0) {
      const t0 = performance.now();
      spawnSync('tshark', ['-n', '-q', '-r', pcap, '-z', 'sip,stat'], { stdio: 'ignore' });
      tshark = performance.now() - t0;
    }
    const engineFigures = {
      calls: engine.value.length,
      messages: events.length,
      engineMessagesPerSec: Math.round(events.length / (engine.ms / 1000)),
      parseAndEngineMessagesPerSec: Math.round(events.length / (withEngineMs / 1000)),
      analyzeWithEngineMessagesPerSec: Math.round(events.length / (fileMs / 1000)),
      parserMessagesPerSec: Math.round(events.length / (parseMs / 1000)),
      tsharkMessagesPerSec: tshark === null ? null : Math.round(events.length / (tshark / 1000)),
      fieldsRead: touched,
    };
    log(
      `calls engine: ${engineFigures.calls} records from ${engineFigures.messages} SIP messages, ` +
        `the engine's share ${engineFigures.engineMessagesPerSec} messages/s, parse + engine ${engineFigures.parseAndEngineMessagesPerSec}/s, ` +
        `file → engine ${engineFigures.analyzeWithEngineMessagesPerSec}/s ` +
        `(our SIP parser on the same messages, the engine's fields read, ` +
        `${engineFigures.parserMessagesPerSec}/s; tshark sip,stat ${engineFigures.tsharkMessagesPerSec ?? 'n/a'}/s` +
        `${tshark === null ? '' : `; file → engine ×${(engineFigures.analyzeWithEngineMessagesPerSec / engineFigures.tsharkMessagesPerSec!).toFixed(1)} of tshark`})`,
    );

    // 2. Memory, in a child with --expose-gc.
    let memory: CallsBenchFigures['memory'] = null;
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', fileURLToPath(import.meta.url), '--state', String(quick ? 20_000 : 100_000)],
      { encoding: 'utf8', maxBuffer: 1 << 20 },
    );
    if (child.status === 0) {
      memory = JSON.parse(child.stdout) as CallsBenchFigures['memory'];
      log(
        `calls memory: ${memory!.bytesPerOpenCall} bytes per open call (${memory!.openCalls} open); ` +
          `flood of ${memory!.flood.callIds} Call-IDs: ${memory!.flood.open} open at the bound, ` +
          `${memory!.flood.evicted} evicted, heap ${memory!.flood.heapAfterBoundMb} MB past the bound and ` +
          `${memory!.flood.heapAtEndMb} MB at the end, ${memory!.flood.messagesPerSec} INVITEs/s parsed and tracked`,
      );
    } else log(`calls memory: the child failed: ${child.stderr.slice(-500)}`);

    // 3. KPI queries over a million stored calls.
    const store = await openStore({ dataDir: join(dir, 'store') });
    try {
      // The dashboards' database (their queries name unqualified tables, as the datasource's default).
      const database = DEFAULT_DATABASE;
      await migrate(store.client, { database, ttlDays: 0 });
      const writer = new StoreWriter(store.client, { database, runId: 'bench' });
      const records = engine.value;
      await writer.writeCalls(
        records.map((record) => ({ record, open: false, deadline: record.end ?? record.start })),
        [],
        1n,
      );
      // The capture's SIP messages too, parsed again in slices (a ladder reads them back).
      for (let i = 0; i < events.length; i += 10_000) {
        const slice: CaptureEvent[] = [];
        for (const e of events.slice(i, i + 10_000)) {
          const parsed = parser.parse(e.payload, 0, e.payload.length);
          if (parsed.ok) slice.push({ ...e, sip: parsed.message });
        }
        await writer.write(slice);
      }
      await writer.close();
      // At least a million calls and ten million SIP messages (the dashboards' target store).
      const copies = Math.max(
        Math.ceil((quick ? 200_000 : 1_000_000) / records.length),
        Math.ceil((quick ? 2_000_000 : 10_000_000) / events.length),
      );
      // Each copy its own Call-IDs, an hour later: as many calls as a busy day's.
      await store.client.command({
        query: `INSERT INTO ${database}.calls SELECT * REPLACE (
            concat(call_id, '#', toString(copy)) AS call_id,
            if(edge_call_id = '', '', concat(edge_call_id, '#', toString(copy))) AS edge_call_id,
            start + toIntervalHour(copy) AS start)
          FROM ${database}.calls ARRAY JOIN range(1, {copies:UInt32}) AS copy`,
        query_params: { copies },
      });
      // The messages likewise, a few copies per INSERT (each must finish within the client's timeout);
      // the originals picked in a subquery: a WHERE would read the copy's call_id alias.
      for (let from = 1; from < copies; from += 6)
        await store.client.command({
          query: `INSERT INTO ${database}.sip_messages SELECT * REPLACE (
              concat(call_id, '#', toString(copy)) AS call_id,
              time + toIntervalHour(copy) AS time,
              event_id + copy AS event_id)
            FROM (SELECT * FROM ${database}.sip_messages WHERE position(call_id, '#') = 0)
            ARRAY JOIN range({from:UInt32}, {to:UInt32}) AS copy`,
          query_params: { from, to: Math.min(copies, from + 6) },
          clickhouse_settings: { max_partitions_per_insert_block: '10000' },
        });
      const count = await store.client.query({
        query: `SELECT count() AS n FROM ${database}.calls FINAL`,
        format: 'JSONEachRow',
      });
      const storedCalls = Number((await count.json<{ n: string }>())[0]!.n);
      const query = (q: string) => async () =>
        (await store.client.query({ query: q, format: 'JSONEachRow' })).json();
      const kpis = {
        storedCalls,
        countFinalMs: await bestAsync(3, query(`SELECT count() FROM ${database}.calls FINAL`)),
        summaryMs: await bestAsync(3, () => storedCallsSummary(store.client, database)),
        byVmMs: await bestAsync(3, () => storedKpisBy(store.client, database, {}, 'vm')),
        byPeerMs: await bestAsync(3, () => storedKpisBy(store.client, database, {}, 'peer')),
        byHourMs: await bestAsync(3, () => storedKpisBy(store.client, database, {}, 'hour')),
        destinationsMs: await bestAsync(3, () => storedDestinations(store.client, database, {})),
      };
      // One call's ladder (both legs of a B2BUA call, a copy in the middle of the store).
      const b2bua = records.find((r) => r.linkedBy !== null) ?? records[0]!;
      const ladderCallId = `${b2bua.callId}#${Math.floor(copies / 2)}`;
      let ladderMessages = 0;
      const ladderMs = await bestAsync(3, async () => {
        const ladder = buildLadder(await ladderInputFromStore(store.client, database, ladderCallId));
        ladderMessages = ladder.messages.length;
      });
      const storedMessages = await store.client.query({
        query: `SELECT count() AS n FROM ${database}.sip_messages`,
        format: 'JSONEachRow',
      });
      const ladderFigures = {
        storedMessages: Number((await storedMessages.json<{ n: string }>())[0]!.n),
        messages: ladderMessages,
        ms: Math.round(ladderMs),
      };
      log(
        `ladder of one call (${ladderMessages} messages, ${b2bua.linkedBy === null ? 'one leg' : 'two legs'}) from a store of ${storedCalls} calls and ${ladderFigures.storedMessages} SIP messages: ${ladderFigures.ms} ms (target < 300 ms)`,
      );
      for (const k of Object.keys(kpis) as Array<keyof typeof kpis>)
        if (k !== 'storedCalls') kpis[k] = Math.round(kpis[k]);
      log(
        `calls KPIs over ${storedCalls} stored calls: summary ${kpis.summaryMs} ms, by VM ${kpis.byVmMs} ms, ` +
          `by peer ${kpis.byPeerMs} ms, by hour ${kpis.byHourMs} ms, destinations ${kpis.destinationsMs} ms; ` +
          `count() FINAL ${kpis.countFinalMs} ms (summary ×${(kpis.summaryMs / Math.max(1, kpis.countFinalMs)).toFixed(1)} of it)`,
      );
      // Every dashboard query (panels and variables) over the store, as Grafana would send it for a
      // 6-hour view in the middle of the stored days and for a 24-hour one, the call detail on the
      // ladder's call: best of 2 each; the slowest three of each range are kept.
      const [{ first }] = await (
        await store.client.query({
          query: `SELECT toUnixTimestamp(min(start)) AS first FROM ${database}.calls`,
          format: 'JSONEachRow',
        })
      ).json<{ first: string }>();
      const middle = (Number(first) + Math.floor(copies / 2) * 3600) * 1000;
      const dashboards: CallsBenchFigures['dashboards'] = { queries: 0, slowest6h: [], slowest24h: [] };
      for (const [hours, key] of [
        [6, 'slowest6h'],
        [24, 'slowest24h'],
      ] as const) {
        const ctx = {
          from: new Date(middle),
          to: new Date(middle + hours * 3_600_000),
          intervalSec: hours * 6,
          vars: { ...OPENING_VARS, call_id: ladderCallId },
        };
        const timed: Array<{ query: string; ms: number; rows: number }> = [];
        for (const q of allQueries()) {
          let rows = 0;
          const ms = await bestAsync(2, async () => {
            rows = (await runQuery(store.client, q, ctx)).rows.length;
          });
          timed.push({ query: `${q.dashboard} / ${q.title}`, ms: Math.round(ms), rows });
        }
        timed.sort((a, b) => b.ms - a.ms);
        dashboards.queries = timed.length;
        dashboards[key] = timed.slice(0, 3);
        log(
          `dashboards, ${timed.length} queries over ${hours} h of the store: slowest ${timed
            .slice(0, 3)
            .map((t) => `${t.query} ${t.ms} ms (${t.rows} rows)`)
            .join('; ')} (target < 1 s each)`,
        );
      }
      const alerts = await benchAlerts(store.client, database, storedCalls, kpis.countFinalMs, log);
      return { engine: engineFigures, memory, kpis, ladder: ladderFigures, dashboards, alerts };
    } finally {
      await store.close();
    }
  } finally {
    // CALLSCOPE_BENCH_KEEP_STORE=1 keeps the million-call store for measuring queries against it.
    if (process.env.CALLSCOPE_BENCH_KEEP_STORE) log(`kept the store in ${join(dir, 'store')}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  tuneRuntime();
  const state = process.argv.indexOf('--state');
  const flood = process.argv.indexOf('--flood');
  if (state > 0)
    stateChild(Number(process.argv[state + 1]), flood > 0 ? Number(process.argv[flood + 1]) : 1_000_000);
  else {
    const json = process.argv.includes('--json');
    const figures = await runCallsBench({
      log: (line) => {
        if (!json) process.stderr.write(`${line}\n`);
      },
      quick: process.argv.includes('--quick'),
    });
    if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  }
}
