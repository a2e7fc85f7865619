/** The OPTIONS probe tracker on hand-made sequences: health, state changes at capture times, bounds. */
import { describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../core/event.js';
import { responseText, sipEvent } from '../../test/fixtures/sip-events.js';
import { OptionsProbeTracker, TIMER_F_MS } from './tracker.js';

const KAM = '10.0.0.5:5060';
const PBX1 = '10.0.0.11:5060';
const PBX2 = '10.0.0.12:5060';
const T0 = 1_700_000_000_000;

function options(callId: string, o: { cseq?: number; branch?: string } = {}): string[] {
  return [
    'OPTIONS sip:10.0.0.11:5060 SIP/2.0',
    `Via: SIP/2.0/UDP 10.0.0.5:5060;branch=${o.branch ?? `z9hG4bK-${callId}`}`,
    'From: <sip:dispatcher@10.0.0.5>;tag=ds',
    'To: <sip:10.0.0.11:5060>',
    `Call-ID: ${callId}`,
    `CSeq: ${o.cseq ?? 10} OPTIONS`,
    'Max-Forwards: 70',
    'User-Agent: kamailio (5.6.3 (x86_64/linux))',
    'Content-Length: 0',
  ];
}

function answer(callId: string, status: number, o: { cseq?: number } = {}): string[] {
  return responseText({
    callId,
    cseq: o.cseq ?? 10,
    method: 'OPTIONS',
    status,
    branch: `z9hG4bK-${callId}`,
    server: 'Asterisk PBX 20.5.0',
  });
}

/** A ping every 15 s to `to`, answered `status` after 3 ms (null: never answered). */
function ping(n: number, to: string, at: number, status: number | null): CaptureEvent[] {
  const id = `ping-${to}-${n}`;
  const out = [sipEvent(options(id), { t: at, src: KAM, dst: to })];
  if (status !== null) out.push(sipEvent(answer(id, status), { t: at + 3, src: to, dst: KAM }));
  return out;
}

function run(events: CaptureEvent[], endMs?: number, opts = {}): OptionsProbeTracker {
  const tracker = new OptionsProbeTracker(opts);
  for (const e of events) tracker.add(e);
  tracker.close(endMs);
  return tracker;
}

describe('OptionsProbeTracker', () => {
  it('a peer that answers, then goes silent: up at the first answer, down when Timer F runs out', () => {
    const events: CaptureEvent[] = [];
    for (let i = 0; i < 5; i++) events.push(...ping(i, PBX1, T0 + i * 15_000, 200));
    // PBX1 dies at 70 s: the next three pings get no answer (the first one retransmitted).
    for (let i = 5; i < 8; i++) events.push(...ping(i, PBX1, T0 + i * 15_000, null));
    events.splice(
      events.length - 1,
      0,
      sipEvent(options(`ping-${PBX1}-6`), { t: T0 + 90_500, src: KAM, dst: PBX1, retransmission: true }),
    );
    const s = run(events, T0 + 140_000).summary();
    expect(s.pairs).toHaveLength(1);
    const p = s.pairs[0]!;
    expect(p).toMatchObject({
      prober: '10.0.0.5:5060',
      probed: '10.0.0.11:5060',
      sent: 8,
      answered: 5,
      failing: 3,
      timeouts: 3,
      pending: 0,
      retransmissions: 1,
      statusCounts: { '200': 5 },
      firstSent: T0,
      lastSent: T0 + 105_000,
      lastAnswerAt: T0 + 60_003,
      lastStatus: 200,
      state: 'down',
      since: T0 + 75_000 + TIMER_F_MS,
      consecutiveFailures: 3,
      maxConsecutiveFailures: 3,
      userAgent: 'kamailio (5.6.3 (x86_64/linux))',
      server: 'Asterisk PBX 20.5.0',
      transitions: [
        { at: T0 + 3, from: 'unknown', to: 'up', cause: '200' },
        { at: T0 + 75_000 + TIMER_F_MS, from: 'up', to: 'down', cause: 'timeout' },
      ],
    });
    expect(p.responseMs).toMatchObject({ count: 5, mean: 3, max: 3 });
    expect(s).toMatchObject({ sent: 8, answered: 5, failing: 3, up: 0, down: 1, unknown: 0 });
  });

  it('after Timer F: a late answer leaves the probe failed; retransmissions still count', () => {
    const id = `ping-${PBX1}-0`;
    const s = run([
      sipEvent(options(id), { t: T0, src: KAM, dst: PBX1 }),
      sipEvent(options(id), { t: T0 + 33_000, src: KAM, dst: PBX1, retransmission: true }),
      sipEvent(answer(id, 200), { t: T0 + 34_000, src: PBX1, dst: KAM }),
      sipEvent(answer(id, 200), { t: T0 + 34_500, src: PBX1, dst: KAM, retransmission: true }),
    ]).summary();
    expect(s.pairs[0]).toMatchObject({
      sent: 1,
      answered: 0,
      failing: 1,
      timeouts: 1,
      lateAnswers: 1,
      retransmissions: 2,
      state: 'down',
    });
  });

  it('probes within Timer F at the end are pending, not failing', () => {
    const s = run([...ping(0, PBX1, T0, 200), ...ping(1, PBX1, T0 + 15_000, null)]).summary();
    expect(s.pairs[0]).toMatchObject({ sent: 2, answered: 1, failing: 0, pending: 1, state: 'up' });
  });

  it('5xx and 408 are failures; 404/405 are answers from a live peer; recovery is a transition too', () => {
    const events = [
      ...ping(0, PBX2, T0, 503),
      ...ping(1, PBX2, T0 + 15_000, 408),
      ...ping(2, PBX2, T0 + 30_000, 405),
      ...ping(3, PBX2, T0 + 45_000, 200),
    ];
    const p = run(events).summary().pairs[0]!;
    expect(p).toMatchObject({
      sent: 4,
      answered: 4,
      failing: 2,
      timeouts: 0,
      statusCounts: { '200': 1, '405': 1, '408': 1, '503': 1 },
      state: 'up',
      consecutiveFailures: 0,
      maxConsecutiveFailures: 2,
      transitions: [
        { at: T0 + 3, from: 'unknown', to: 'down', cause: '503' },
        { at: T0 + 30_003, from: 'down', to: 'up', cause: '405' },
      ],
    });
  });

  it('thresholds: down after 2 failures in a row, up after 2 answers (dispatcher-style)', () => {
    const events = [
      ...ping(0, PBX1, T0, 200),
      ...ping(1, PBX1, T0 + 15_000, 200),
      ...ping(2, PBX1, T0 + 30_000, 500),
      ...ping(3, PBX1, T0 + 45_000, 200),
      ...ping(4, PBX1, T0 + 60_000, 500),
      ...ping(5, PBX1, T0 + 75_000, 503),
    ];
    const p = run(events, undefined, { downAfter: 2, upAfter: 2 }).summary().pairs[0]!;
    expect(p.transitions).toEqual([
      { at: T0 + 15_003, from: 'unknown', to: 'up', cause: '200' },
      { at: T0 + 75_003, from: 'up', to: 'down', cause: '503' },
    ]);
  });

  it('one pair per prober → probed; copies from another node or hop are not probes', () => {
    const a = ping(0, PBX1, T0, 200);
    const copies = a.map((e) =>
      sipEvent(e.payload.toString('latin1').trimEnd().split('\r\n'), {
        t: Number(e.timestampNs / 1_000_000n) + 0.1,
        src: `${e.srcIp}:${e.srcPort}`,
        dst: `${e.dstIp}:${e.dstPort}`,
        node: 'other',
      }),
    );
    const tracker = run([a[0]!, copies[0]!, a[1]!, copies[1]!, ...ping(0, PBX2, T0 + 1, 200)]);
    const s = tracker.summary();
    expect(s.pairs.map((p) => [p.probed, p.sent, p.answered, p.retransmissions])).toEqual([
      ['10.0.0.11:5060', 1, 1, 0],
      ['10.0.0.12:5060', 1, 1, 0],
    ]);
    // The copy of the answer arrives after the probe was settled: still recognised as a copy.
    expect(s.counters.copies).toBe(2);
    expect(s.counters.orphanMessages).toBe(0);
  });

  it('bounded: pairs (least recently probed go) and probes in flight (oldest go), counted', () => {
    const events: CaptureEvent[] = [];
    for (let i = 0; i < 20; i++) events.push(...ping(i, `10.9.0.${i}:5060`, T0 + i, null));
    const tracker = run(events, undefined, { maxPairs: 5, maxPending: 8 });
    const s = tracker.summary();
    expect(s.pairs).toHaveLength(5);
    expect(s.counters.pairsEvicted).toBe(15);
    expect(s.counters.pendingEvicted).toBe(12);
    expect(s.pending).toBe(5);
    expect(s.pairs.map((p) => p.probed)).toEqual([15, 16, 17, 18, 19].map((i) => `10.9.0.${i}:5060`));
  });

  it('Timer F is an option (RFC 3261 lets T1 be changed): a scaled-down run uses 64·T1 of its own', () => {
    const p = run([...ping(0, PBX1, T0, null)], T0 + 3200, { timerFMs: 3200 }).summary().pairs[0]!;
    expect(p).toMatchObject({ timeouts: 1, state: 'down', since: T0 + 3200 });
  });
});
