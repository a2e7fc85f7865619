/**
 * The call engine against our generator's ground truth, call by call, field by field: the committed
 * sample (capture/sample), and a capture with every outcome the generator writes (answered, callee
 * hangs up, busy, cancelled, rejected 603/404, redirected 302, failed 500/408/503, no answer, 407
 * then answered, re-INVITEs with a 488, B2BUA legs linked by X-CID and Session-ID, a stateful proxy,
 * a proxy's failover). The truth is written by the generator as it writes the packets; the engine
 * only reads the capture.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVERY_OUTCOME, generateCapture, OUTCOMES } from '../../capture/generator/generate.js';
import type { CallTruth, GroundTruth } from '../../capture/generator/truth.js';
import { FileSource } from '../../capture/sources.js';
import type { CallRecord } from '../../core/call.js';
import { drive } from '../../core/drive.js';
import type { CaptureEvent } from '../../core/event.js';
import { CallbackSink } from '../../core/sink.js';
import { sipEvent } from '../../test/fixtures/sip-events.js';
import { CaptureSummary } from '../summary.js';
import { CallAnalysis } from './analysis.js';
import type { CallsSummary } from './kpis.js';

const SAMPLE = fileURLToPath(new URL('../../capture/sample/calls.pcap', import.meta.url));
const SAMPLE_TRUTH = fileURLToPath(new URL('../../capture/sample/calls.truth.json', import.meta.url));

interface Case {
  truth: GroundTruth;
  records: Map<string, CallRecord>;
  calls: CallsSummary;
}

async function analyse(file: string, truth: GroundTruth): Promise<Case> {
  const summary = new CaptureSummary({ calls: { keepRecords: true } });
  const result = await drive(new FileSource(file), summary.sinks);
  const { calls } = await summary.of(result.source);
  return { truth, records: new Map(summary.calls.records.map((r) => [r.callId, r])), calls };
}

/** A no-answer call whose Timer B falls after the capture's last packet is still in progress there. */
function cutShort(t: CallTruth, truth: GroundTruth): boolean {
  return t.recordOutcome === 'noAnswer' && t.endMs > truth.lastPacket! * 1000;
}

/** The record the truth describes, in the record's own terms. */
function expectedRecord(t: CallTruth, truth: GroundTruth) {
  const short = cutShort(t, truth);
  return {
    callId: t.callId,
    outcome: short ? 'inProgress' : t.recordOutcome,
    finalStatus: t.finalStatus,
    endedBy: short ? 'unknown' : t.endedBy,
    reasonPhrase: t.reasonPhrase,
    reason: t.reason,
    fromTag: t.fromTag,
    toTag: t.toTag,
    linkedCallIds: t.linkedCallIds,
    edgeCallId: t.edgeCallId,
    linkedBy: t.linkedBy,
    correlation: t.correlation,
    inviteTransactions: t.inviteTransactions,
    authChallenges: t.authChallenges,
    reInvites: t.reInvites,
    reInvitesRejected: t.reInvitesRejected,
    retransmissions: t.retransmissions,
    messages: t.distinctMessages,
    byeAnswered: t.byeAnswered,
    // Branch starts at the capture's resolution in the truth; whole ms (rounded down) in the record.
    hops: t.hopPath.map((h) => ({
      ...h,
      branches: h.branches.map((b) => ({ ...b, start: Math.floor(b.start) })),
    })),
  };
}

function checkCalls(c: Case): void {
  const { truth, records } = c;
  expect([...records.keys()].sort()).toEqual(truth.calls.map((t) => t.callId).sort());
  for (const t of truth.calls) {
    const r = records.get(t.callId)!;
    const where = `${t.callId} (${t.outcome})`;
    const { hops, ...rest } = expectedRecord(t, truth);
    expect(r, where).toMatchObject(rest);
    expect(r.hops, where).toEqual(hops);
    // Times at the capture's resolution; the record's are whole ms.
    const near = (a: number | null, b: number | null) =>
      a === null || b === null
        ? expect(a, where).toBe(b)
        : expect(Math.abs(a - b), where).toBeLessThanOrEqual(1);
    near(r.start, t.startMs);
    near(r.ringing, t.ringingMs);
    near(r.answer, t.answerMs);
    if (!cutShort(t, truth)) {
      near(r.end, t.endMs);
      near(r.pddMs, t.pddMs);
      near(r.setupMs, t.setupMs);
      near(r.ringMs, t.ringMs);
      expect(Math.abs(r.billsec - t.billsec), where).toBeLessThanOrEqual(0.002);
      expect(Math.abs(r.durationSec - t.durationSec), where).toBeLessThanOrEqual(0.002);
    }
    expect(r.from, where).toBe(/sip:([^@]+)@/.exec(t.from)![1]);
    expect(r.to, where).toBe(/sip:([^@]+)@/.exec(t.to)![1]);
  }
}

/** The KPIs from the truth, each end-to-end call once (at its edge leg). */
function checkKpis(c: Case): void {
  const { truth, calls } = c;
  const edges = truth.calls.filter((t) => t.edgeCallId === t.callId);
  const outcomeOf = (t: CallTruth) => expectedRecord(t, truth).outcome;
  const n = (f: (t: CallTruth) => boolean) => edges.filter(f).length;
  const completed = n((t) => outcomeOf(t) !== 'inProgress');
  const answered = n((t) => outcomeOf(t) === 'answered');
  const failed = n((t) => outcomeOf(t) === 'failed' || outcomeOf(t) === 'noAnswer');
  const redirected = n((t) => outcomeOf(t) === 'redirected');
  const seer = n((t) => outcomeOf(t) === 'answered' || [480, 486, 600, 603].includes(t.finalStatus ?? 0));
  const r = (a: number, b: number) => Math.round((a / b) * 1e6) / 1e6;
  expect(calls.attempts).toBe(edges.length);
  expect(calls.legs).toBe(truth.calls.length - edges.length);
  expect(calls.answered).toBe(answered);
  expect(calls.failed).toBe(failed);
  for (const o of Object.keys(calls.outcomes) as Array<keyof CallsSummary['outcomes']>)
    expect(calls.outcomes[o], o).toBe(n((t) => outcomeOf(t) === o));
  expect(calls.kpis.asr).toBe(r(answered, completed));
  expect(calls.kpis.ser).toBe(r(answered, completed - redirected));
  expect(calls.kpis.seer).toBe(r(seer, completed - redirected));
  expect(calls.kpis.failedRatio).toBe(r(failed, completed));
  expect(calls.kpis.ner).toBe(r(completed - failed, completed));
  const billsec = edges.filter((t) => outcomeOf(t) === 'answered').map((t) => t.billsec);
  expect(calls.kpis.acdSec).toBeCloseTo(billsec.reduce((a, b) => a + b, 0) / billsec.length, 2);
}

describe('calls from the sample capture', () => {
  let c: Case;
  beforeAll(async () => {
    c = await analyse(SAMPLE, JSON.parse(readFileSync(SAMPLE_TRUTH, 'utf8')));
  });
  it('one record per generated call, each as the ground truth has it', () => checkCalls(c));
  it('each call counted once in the KPIs', () => {
    checkKpis(c);
    expect(c.calls.peakPending).toBeGreaterThan(0);
    expect(c.calls.peakConcurrent).toBeGreaterThan(0);
  });
});

describe('calls from events as other paths deliver them', () => {
  let events: CaptureEvent[];
  let expected: CallRecord[];
  const recordsOf = async (list: CaptureEvent[], endMs: number) => {
    const analysis = new CallAnalysis({ keepRecords: true });
    for (const e of list) analysis.sink.add(e);
    await analysis.finish(endMs);
    return analysis.records.sort((a, b) => a.start - b.start);
  };
  let endMs: number;
  beforeAll(async () => {
    events = [];
    const result = await drive(new FileSource(SAMPLE), [new CallbackSink((e) => events.push(e))]);
    endMs = Math.trunc(result.source.lastTimestamp! * 1000);
    expected = await recordsOf(events, endMs);
  });
  it('without retransmission flags (HEP and Kafka do not carry them): the same records', async () => {
    expect(
      await recordsOf(
        events.map((e) => ({ ...e, retransmission: false })),
        endMs,
      ),
    ).toEqual(expected);
  });
  it('every SIP message captured twice (two capture points, 1 ms apart): the same records', async () => {
    const twice = events.flatMap((e) =>
      e.sip === undefined ? [e] : [e, { ...e, captureId: 2, timestampNs: e.timestampNs + 1_000_000n }],
    );
    expect(await recordsOf(twice, endMs)).toEqual(expected);
  });
});

describe('calls from a capture with every outcome', () => {
  let dir = '';
  let c: Case;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'callscope-calls-'));
    const file = join(dir, 'every-outcome.pcap');
    const truth = generateCapture({
      output: file,
      seed: 5,
      vms: 5,
      calls: 3 * OUTCOMES.length,
      callsPerSecond: 2,
      callDurationSec: 1.5,
      outcomes: EVERY_OUTCOME,
      rtp: { jitterMs: 2, lossRate: 0.01 },
    });
    c = await analyse(file, truth);
  }, 60_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('covers every outcome, B2BUA legs and proxied calls', () => {
    const outcomes = new Set(c.truth.calls.map((t) => t.outcome));
    expect([...outcomes].sort()).toEqual([...OUTCOMES].sort());
    expect(c.truth.calls.some((t) => t.linkedBy === 'x-cid')).toBe(true);
    expect(c.truth.calls.some((t) => t.hopPath.length === 2 && t.hopPath[1]!.branches.length === 2)).toBe(
      true,
    );
  });
  it('one record per Call-ID, each as the ground truth has it', () => checkCalls(c));
  it('each end-to-end call counted once, at its edge', () => checkKpis(c));
  it('B2BUA legs name each other, and the edge leg names the other', () => {
    for (const t of c.truth.calls.filter((x) => x.leg !== null)) {
      const r = c.records.get(t.callId)!;
      expect(r.linkedCallIds.length, t.callId).toBe(1);
      expect(c.records.get(r.linkedCallIds[0]!)!.linkedCallIds, t.callId).toEqual([t.callId]);
    }
  });
});

describe('B2BUA calls whose PBX refreshes the session (a re-INVITE on each leg)', () => {
  let dir = '';
  let c: Case;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'callscope-calls-refresh-'));
    const file = join(dir, 'b2bua-refresh.pcap');
    const truth = generateCapture({
      output: file,
      seed: 9,
      vms: 4,
      calls: 6,
      callsPerSecond: 2,
      callDurationSec: 1.5,
      outcomes: { b2bua: 1 },
      sessionRefresh: true,
    });
    c = await analyse(file, truth);
  }, 60_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every leg has its refresh counted as a re-INVITE', () => {
    expect(c.truth.calls).toHaveLength(12);
    for (const t of c.truth.calls) expect(t.reInvites, t.callId).toBe(1);
  });
  it('one record per leg, each as the ground truth has it', () => checkCalls(c));
  it('each end-to-end call counted once, at its edge', () => checkKpis(c));
});

describe('ringing past Timer B', () => {
  const caller = '10.9.0.1:5060';
  const callee = '10.9.0.2:5060';
  const T0 = 1_700_000_000_000;
  const invite = (t: number) =>
    sipEvent(
      [
        'INVITE sip:200@10.9.0.2 SIP/2.0',
        'Via: SIP/2.0/UDP 10.9.0.1:5060;branch=z9hG4bKring1',
        'From: <sip:100@10.9.0.1>;tag=a1',
        'To: <sip:200@10.9.0.2>',
        'Call-ID: ring-1@10.9.0.1',
        'CSeq: 1 INVITE',
        'Content-Length: 0',
      ],
      { t, src: caller, dst: callee },
    );
  const response = (status: string, t: number, toTag = true) =>
    sipEvent(
      [
        `SIP/2.0 ${status}`,
        'Via: SIP/2.0/UDP 10.9.0.1:5060;branch=z9hG4bKring1',
        'From: <sip:100@10.9.0.1>;tag=a1',
        `To: <sip:200@10.9.0.2>${toTag ? ';tag=b2' : ''}`,
        'Call-ID: ring-1@10.9.0.1',
        'CSeq: 1 INVITE',
        'Content-Length: 0',
      ],
      { t, src: callee, dst: caller },
    );
  const run = async (events: CaptureEvent[], endMs: number) => {
    const analysis = new CallAnalysis({ keepRecords: true });
    for (const e of events) analysis.sink.add(e);
    await analysis.finish(endMs);
    return analysis.records;
  };

  it('a call that rings for 50 s and is then answered is answered (Timer B stops at the 180)', async () => {
    const [r] = await run(
      [
        invite(T0),
        response('100 Trying', T0 + 5, false),
        response('180 Ringing', T0 + 300),
        response('200 OK', T0 + 50_000),
      ],
      T0 + 60_000,
    );
    expect(r).toMatchObject({
      outcome: 'answered',
      finalStatus: 200,
      ringing: T0 + 300,
      answer: T0 + 50_000,
    });
  });

  it('a call that rings and never gets a final response is no answer Timer C after its last 18x', async () => {
    const [r] = await run(
      [invite(T0), response('180 Ringing', T0 + 300), response('183 Session Progress', T0 + 20_000)],
      T0 + 400_000,
    );
    expect(r).toMatchObject({ outcome: 'noAnswer', end: T0 + 20_000 + 180_000, endedBy: 'network' });
  });

  it('only 100 Trying: no answer at Timer B, as before', async () => {
    const [r] = await run([invite(T0), response('100 Trying', T0 + 5, false)], T0 + 60_000);
    expect(r).toMatchObject({ outcome: 'noAnswer', end: T0 + 32_000 });
  });
});

describe('media silence', () => {
  const T0 = 1_700_000_000_000;
  const msg = (lines: string[], t: number, src: string, dst: string) =>
    sipEvent([...lines, 'Content-Length: 0'], { t, src, dst });
  const a = '10.8.0.1:5060';
  const b = '10.8.0.2:5060';
  const dialog = (id: string, t: number) => [
    msg(
      [
        'INVITE sip:2@10.8.0.2 SIP/2.0',
        `Via: SIP/2.0/UDP 10.8.0.1:5060;branch=z9hG4bK${id}`,
        'From: <sip:1@x>;tag=f',
        'To: <sip:2@x>',
        `Call-ID: ${id}`,
        'CSeq: 1 INVITE',
      ],
      t,
      a,
      b,
    ),
    msg(
      [
        'SIP/2.0 200 OK',
        `Via: SIP/2.0/UDP 10.8.0.1:5060;branch=z9hG4bK${id}`,
        'From: <sip:1@x>;tag=f',
        'To: <sip:2@x>;tag=t',
        `Call-ID: ${id}`,
        'CSeq: 1 INVITE',
      ],
      t + 100,
      b,
      a,
    ),
    msg(
      [
        'ACK sip:2@10.8.0.2 SIP/2.0',
        `Via: SIP/2.0/UDP 10.8.0.1:5060;branch=z9hG4bK${id}ack`,
        'From: <sip:1@x>;tag=f',
        'To: <sip:2@x>;tag=t',
        `Call-ID: ${id}`,
        'CSeq: 1 ACK',
      ],
      t + 110,
      a,
      b,
    ),
  ];
  const stream = (src: string, ssrc: number) => ({
    src,
    srcPort: 4000,
    dst: src === '10.8.0.1' ? '10.8.0.2' : '10.8.0.1',
    dstPort: 4000,
    ssrc,
    codec: 'PCMU',
    packets: 1000,
    lost: 0,
    lossPercent: 0,
    maxJitterMs: 1,
    meanJitterMs: 0.5,
    mos: 4.4,
  });

  it('an answered call without BYE is closed a minute after all its streams went idle, and says so', async () => {
    const analysis = new CallAnalysis({ keepRecords: true });
    for (const e of dialog('silent-1', T0)) analysis.sink.add(e);
    analysis.sink.addMedia('silent-1', false, null, stream('10.8.0.1', 1), T0 + 10_000);
    analysis.sink.addMedia('silent-1', false, null, stream('10.8.0.2', 2), T0 + 10_000);
    analysis.sink.addMedia('silent-1', true, 'idle', stream('10.8.0.1', 1), T0 + 40_000);
    analysis.sink.addMedia('silent-1', true, 'idle', stream('10.8.0.2', 2), T0 + 41_000);
    // Another call's messages move the clock past the silence.
    for (const e of dialog('other-1', T0 + 102_000)) analysis.sink.add(e);
    expect(analysis.records.map((r) => r.callId)).toEqual(['silent-1']);
    expect(analysis.records[0]).toMatchObject({
      outcome: 'answered',
      closedBy: 'media-silence',
      endedBy: 'timeout',
      end: T0 + 41_000,
    });
    expect(analysis.records[0]!.streams).toHaveLength(2);
    expect(analysis.sink.callStats().mediaSilence).toBe(1);
  });

  it('one stream still running (one-way silence) keeps the call open', async () => {
    const analysis = new CallAnalysis({ keepRecords: true });
    for (const e of dialog('oneway-1', T0)) analysis.sink.add(e);
    analysis.sink.addMedia('oneway-1', false, null, stream('10.8.0.1', 1), T0 + 10_000);
    analysis.sink.addMedia('oneway-1', false, null, stream('10.8.0.2', 2), T0 + 10_000);
    analysis.sink.addMedia('oneway-1', true, 'idle', stream('10.8.0.1', 1), T0 + 40_000);
    for (const e of dialog('other-2', T0 + 300_000)) analysis.sink.add(e);
    expect(analysis.records).toHaveLength(0);
    await analysis.finish(T0 + 400_000);
    expect(analysis.records.find((r) => r.callId === 'oneway-1')).toMatchObject({
      closedBy: 'end-of-capture',
    });
  });
});
