/**
 * The call engine against a real proxy (test/oracle/kamailio.ts): Kamailio's dispatcher in front of
 * SIPp destinations (one answers, one sends 503, one is silent), failing over on 5xx and on timeout,
 * in three topologies run in parallel. Each run gives a tcpdump capture, and two also Kamailio's own
 * HEP3 of the same calls (siptrace mirror mode; sip_trace() from the script) into our HepSource. Each
 * is read into call records, and every record must say what the outside truth says about its call:
 * - the caller's SIPp: the final status it got, whether it sent a BYE and what answered it, its times;
 * - each destination's SIPp: which INVITE reached it, how often, and what it answered;
 * - Kamailio's acc log: each failed branch (`call missed`) and the answer (`transaction answered`);
 * - SIPp's counters and acc's count of INVITE transactions: how many calls there were.
 * Nothing expected here is computed by callscope's code.
 */

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallAnalysis } from '../analyze/calls/analysis.js';
import type { CallsSummary } from '../analyze/calls/kpis.js';
import { buildLadder } from '../analyze/ladder/build.js';
import { ladderInputFromFile } from '../analyze/ladder/gather.js';
import { FileSource } from '../capture/sources.js';
import type { CallOutcome, CallRecord } from '../core/call.js';
import { drive } from '../core/drive.js';
import type { CaptureEvent } from '../core/event.js';
import { CallbackSink } from '../core/sink.js';
import type { HepListener } from '../ingest/hep/listener.js';
import { HepSource } from '../ingest/hep/source.js';
import { dashboardsOverStoredRuns } from './dashboards-sql.js';
import {
  KAMAILIO_LAB,
  type KamailioCallerCall,
  type KamailioCallsOptions,
  type KamailioRun,
  parseSippShortMessages,
  runKamailioCalls,
} from './oracle/kamailio.js';
import { needs, removeTmpDir, tmpDir } from './oracle/tools.js';

const gate = needs(...KAMAILIO_LAB);

const CALLS = 30;
const RATE = 15;

/**
 * The outcome class of each final status the caller can get here (core/call.ts, docs/CALLS.md): 200,
 * 500 when the last branch sent 503 (tm never relays a 503), 408 when it timed out.
 */
const OUTCOME_OF_STATUS: Record<number, CallOutcome> = { 200: 'answered', 408: 'failed', 500: 'failed' };

/**
 * SIPp stamps a message when it handles it, tcpdump and Kamailio when it crosses the socket: on a
 * loaded 2-core machine they differ by a few ms, rarely more. The times checked are 0.1 to 2 s apart.
 */
const CLOCK_SLACK_MS = 50;

interface Analysed {
  records: Map<string, CallRecord>;
  calls: CallsSummary;
  orphans: number;
  /** Where the input ended (ms): the capture's last packet. */
  endMs: number | undefined;
}

type HepMode = 'mirror' | 'script';

/** The topologies: each a run of its own (in parallel), with the paths its calls must take. */
const TOPOLOGIES = {
  // Round robin over three destinations, two attempts; every datagram mirrored as HEP (trace_mode=1).
  'two attempts, HEP mirror': {
    options: { destinations: ['answer', 'unavailable', 'silent'], maxAttempts: 2 },
    hep: 'mirror',
    paths: ['answer=200', 'unavailable,answer=200', 'silent,unavailable=500'],
  },
  // Three attempts: a call may fail over twice (three branches on the proxy's hop); HEP from
  // sip_trace() in the config, as deployments commonly do it.
  'three attempts, HEP script': {
    options: { destinations: ['answer', 'unavailable', 'silent'], maxAttempts: 3 },
    hep: 'script',
    paths: ['answer=200', 'unavailable,answer=200', 'silent,unavailable,answer=200'],
  },
  // One attempt: a silent destination's timeout reaches the caller as Kamailio's own 408.
  'one attempt': {
    options: { destinations: ['answer', 'silent'], maxAttempts: 1 },
    hep: null,
    paths: ['answer=200', 'silent=408'],
  },
} satisfies Record<string, { options: Partial<KamailioCallsOptions>; hep: HepMode | null; paths: string[] }>;
type Topology = keyof typeof TOPOLOGIES;
const TOPOLOGY_NAMES = Object.keys(TOPOLOGIES) as Topology[];
const HEP_TOPOLOGIES = TOPOLOGY_NAMES.filter((name) => TOPOLOGIES[name].hep !== null);

/** A HepSource on an ephemeral UDP port of 127.0.0.1, driving a CallAnalysis of its own. */
interface Collector {
  port: number;
  analysis: CallAnalysis;
  /** Waits until no more frames arrive, then stops the source and returns its counters. */
  stop(): Promise<HepListener['stats']>;
}

async function startCollector(): Promise<Collector> {
  const analysis = new CallAnalysis({ keepRecords: true });
  const abort = new AbortController();
  let listener: HepListener | null = null;
  let started: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    started = resolve;
  });
  const source = new HepSource({
    host: '127.0.0.1',
    port: 0,
    tcp: false,
    onStart: (l) => {
      listener = l;
      started();
    },
  });
  const driven = drive(source, [analysis.sink], { signal: abort.signal });
  await Promise.race([ready, driven]);
  const l = listener as HepListener | null;
  if (l === null) throw new Error('the HEP source did not start');
  return {
    port: l.udpPort,
    analysis,
    async stop() {
      // Kamailio has stopped, so it has sent everything: let the last datagrams through the loop.
      for (let last = -1; l.stats.frames !== last; await sleep(200)) last = l.stats.frames;
      abort.abort();
      return (await driven).source;
    },
  };
}

gate.describe('calls through a Kamailio dispatcher, against SIPp and Kamailio', () => {
  let dir = '';
  const runs = new Map<Topology, KamailioRun>();
  const pcaps = new Map<Topology, Analysed>();
  const heps = new Map<Topology, Analysed & { stats: HepListener['stats'] }>();

  beforeAll(async () => {
    dir = tmpDir('callscope-calls-kamailio-');
    // Our HEP collectors first, then the runs, each sending to its own.
    const collectors = new Map<Topology, Collector>();
    const stats = new Map<Topology, HepListener['stats']>();
    try {
      for (const name of HEP_TOPOLOGIES) collectors.set(name, await startCollector());
      const done = await Promise.all(
        TOPOLOGY_NAMES.map((name) => {
          const { options, hep } = TOPOLOGIES[name];
          const port = collectors.get(name)?.port;
          return runKamailioCalls({
            dir,
            calls: CALLS,
            rate: RATE,
            ...options,
            ...(hep !== null && port !== undefined ? { hep: { port, mode: hep } } : {}),
          });
        }),
      );
      for (const [i, name] of TOPOLOGY_NAMES.entries()) runs.set(name, done[i]!);
    } finally {
      for (const [name, collector] of collectors) stats.set(name, await collector.stop());
    }
    for (const name of TOPOLOGY_NAMES) pcaps.set(name, await analyse(runs.get(name)!.pcap));
    for (const name of HEP_TOPOLOGIES) {
      const { analysis } = collectors.get(name)!;
      // Closed at the capture's end, so both views close their calls alike.
      const endMs = pcaps.get(name)!.endMs;
      const calls = await analysis.finish(endMs); // records are made as calls close
      heps.set(name, {
        records: new Map(analysis.records.map((r) => [r.callId, r])),
        calls,
        orphans: analysis.sink.callStats().orphanMessages,
        endMs,
        stats: stats.get(name)!,
      });
    }
  }, 180_000);

  afterAll(() => {
    if (dir) removeTmpDir(dir);
  });

  it('the dashboards over these runs, stored: every panel query has its shape, KPI stats equal `callscope kpis`', async () => {
    const pcaps = TOPOLOGY_NAMES.map((name) => runs.get(name)!.pcap);
    const { problems, mismatches, attempts, results } = await dashboardsOverStoredRuns(
      pcaps,
      dir,
      new Date(Date.now() - 3_600_000),
      new Date(Date.now() + 600_000),
    );
    expect(problems).toEqual([]);
    expect(mismatches).toEqual([]);
    expect(attempts).toBe(TOPOLOGY_NAMES.length * CALLS);
    // The dispatcher's OPTIONS probes reach the peers' panel.
    const options = results.find((r) => r.query.title.startsWith('OPTIONS per peer'))!;
    expect(options.rows.length).toBeGreaterThan(0);
  });

  it('a 180 the caller gets after its 200 is no ringing: PDD is to the 200 (RFC 6076)', async () => {
    // With several UDP workers Kamailio relayed a 180 and its 200 from two processes microseconds
    // apart, and the caller's SIPp received the 200 first (test/kamailio/dispatcher.cfg). A capture
    // at the caller sees what it received: here the capture's 180 of every answered call is handed
    // over 1 ms after its 200, as SIPp got it then. A provisional after the final answer is no alerting.
    const run = runs.get('two attempts, HEP mirror')!;
    const proxy = run.proxy.ip;
    const events: CaptureEvent[] = [];
    const read = await drive(new FileSource(run.pcap), [new CallbackSink((e) => events.push(e))]);
    const toCaller = (e: CaptureEvent, callId: string, status: number) =>
      e.sip?.callId === callId && e.sip.statusCode === status && e.srcIp === proxy && e.dstIp === run.uacIp;
    const answered = run.calls.filter((c) => c.finalStatus === 200);
    expect(answered.length).toBeGreaterThan(0);
    for (const c of answered) {
      const ring = events.findIndex((e) => toCaller(e, c.callId, 180));
      const ok = events.findIndex((e) => toCaller(e, c.callId, 200));
      expect(ring, c.callId).toBeGreaterThanOrEqual(0);
      expect(ring, c.callId).toBeLessThan(ok);
      const [late] = events.splice(ring, 1);
      events.splice(ok, 0, { ...late!, timestampNs: events[ok - 1]!.timestampNs + 1_000_000n });
    }
    const analysis = new CallAnalysis({ keepRecords: true });
    for (const e of events) analysis.sink.add(e);
    const last = read.source.lastTimestamp;
    await analysis.finish(last === null ? undefined : Math.trunc(last * 1000) + 2);
    const records = new Map(analysis.records.map((r) => [r.callId, r]));
    const uacLog = parseSippShortMessages(readFileSync(run.files.uacShortMessages, 'utf8'));
    for (const c of answered) {
      const r = records.get(c.callId)!;
      expect(r.outcome, c.callId).toBe('answered');
      expect([r.ringing, r.ringMs], c.callId).toEqual([null, null]);
      expect(r.pddMs, c.callId).toBe(r.setupMs);
      const got200 = uacLog.find(
        (m) =>
          m.callId === c.callId &&
          m.direction === 'received' &&
          m.status === 200 &&
          m.cseqMethod === 'INVITE',
      )!;
      expect(Math.abs(r.pddMs! - (got200.time - c.invitedAt) * 1000), c.callId).toBeLessThan(CLOCK_SLACK_MS);
    }
  });

  describe.each(TOPOLOGY_NAMES)('%s', (name) => {
    it('the run is what the topology claims (the paths the destinations logged)', () => {
      const run = runs.get(name)!;
      expect(run.droppedByKernel).toBe(0);
      expect(run.uac.createdCalls).toBe(CALLS);
      const paths = new Set(run.calls.map((c) => `${c.destinations.join(',')}=${c.finalStatus}`));
      expect(paths).toEqual(new Set(TOPOLOGIES[name].paths));
    });

    it('pcap: one record per call, as SIPp and Kamailio saw it', () => {
      checkRecords(runs.get(name)!, pcaps.get(name)!, 'wire');
    });

    it('pcap: the KPIs count each call once, as SIPp and acc counted', () => {
      checkKpis(runs.get(name)!, pcaps.get(name)!, 'wire');
    });

    it("ladder: a failover's branches numbered in the order the destinations logged them, each failed one with its 5xx or in silence, then the last", async () => {
      const run = runs.get(name)!;
      const failovers = run.calls.filter((c) => c.destinations.length > 1);
      // Every topology with a failover path shows it in its calls (checked against the paths above).
      expect(failovers.length > 0).toBe(TOPOLOGIES[name].paths.some((p) => p.split('=')[0]!.includes(',')));
      for (const c of failovers.slice(0, 5)) {
        const ladder = buildLadder(await ladderInputFromFile(run.pcap, c.callId, { legs: false }));
        const address = (i: number) => `${ladder.endpoints[i]!.ip}:${ladder.endpoints[i]!.port}`;
        const tried = ladder.messages.filter((m) => m.branch !== null && !m.retransmission);
        expect(
          tried.map((m) => m.branch),
          c.callId,
        ).toEqual(c.destinations.map((_, i) => i + 1));
        const destination = (kind: string) => run.destinations.find((d) => d.name === kind)!;
        expect(
          tried.map((m) => address(m.to)),
          c.callId,
        ).toEqual(c.destinations.map((kind) => `${destination(kind).ip}:${destination(kind).port}`));
        for (const [i, kind] of c.destinations.entries()) {
          const from = destination(kind);
          const finals = ladder.messages.filter(
            (m) =>
              !m.request &&
              (m.status ?? 0) >= 200 &&
              m.cseq.endsWith('INVITE') &&
              address(m.from) === `${from.ip}:${from.port}`,
          );
          const sent = from.invites.find((v) => v.callId === c.callId)?.finalSent ?? null;
          // What that destination answered (a 503, the 200) or nothing at all (the silent one).
          expect(
            finals.map((m) => m.status),
            `${c.callId} branch ${i + 1}`,
          ).toEqual(sent === null ? [] : [sent, ...Array(finals.length - 1).fill(sent)]);
        }
      }
    });
  });

  describe.each(HEP_TOPOLOGIES)('%s: HEP3 from Kamailio', (name) => {
    const mode = TOPOLOGIES[name].hep!;

    it('every datagram Kamailio traced arrived and parsed', () => {
      const { stats } = heps.get(name)!;
      expect(stats).toMatchObject({ malformed: 0, dropped: 0, sipUnparsed: 0, deliveryErrors: 0 });
      expect(stats.events).toBeGreaterThan(0);
    });

    it('one record per call, as SIPp and Kamailio saw it', () => {
      checkRecords(runs.get(name)!, heps.get(name)!, mode);
    });

    it('the KPIs count each call once, as SIPp and acc counted', () => {
      checkKpis(runs.get(name)!, heps.get(name)!, mode);
    });

    it('the same records as from the capture, but for what the mode does not trace', () => {
      const pcap = pcaps.get(name)!;
      const hep = heps.get(name)!;
      // Every SIP message of these runs passes through the proxy, so mirror mode (what Kamailio
      // receives and sends) sees all the capture sees: the same calls, hops and branches. Script mode
      // sees the same transactions without their retransmissions (nor the relayed 2xx ACK), so it has
      // fewer messages and no retransmissions. Either way the clock differs (Kamailio time-stamps a
      // datagram when it traces it), and the capture node.
      expect([...hep.records.keys()].sort()).toEqual([...pcap.records.keys()].sort());
      const comparable = (r: CallRecord) => ({
        ...r,
        node: '',
        start: 0,
        ringing: r.ringing === null ? null : 0,
        answer: r.answer === null ? null : 0,
        end: 0,
        pddMs: r.pddMs === null ? null : 0,
        setupMs: r.setupMs === null ? null : 0,
        ringMs: r.ringMs === null ? null : 0,
        billsec: 0,
        durationSec: 0,
        ...(mode === 'script' ? { messages: 0, retransmissions: 0 } : {}),
        hops: r.hops.map((h) => ({
          ...h,
          branches: h.branches.map((b) => ({
            ...b,
            start: 0,
            retransmissions: mode === 'script' ? 0 : b.retransmissions,
          })),
        })),
      });
      for (const [callId, p] of pcap.records) {
        const h = hep.records.get(callId)!;
        expect(comparable(h), callId).toEqual(comparable(p));
        for (const field of ['start', 'ringing', 'answer', 'end'] as const) {
          if (p[field] === null) continue;
          expect(Math.abs(h[field]! - p[field]!), `${callId} ${field}`).toBeLessThan(CLOCK_SLACK_MS);
        }
        if (mode === 'script') expect(h.retransmissions, callId).toBe(0);
      }
    });
  });
});

async function analyse(file: string): Promise<Analysed> {
  const analysis = new CallAnalysis({ keepRecords: true });
  const result = await drive(new FileSource(file), [analysis.sink]);
  // Whole ms, as analyze closes a capture's calls (analyze/summary.ts).
  const last = result.source.lastTimestamp;
  const endMs = last === null ? undefined : Math.trunc(last * 1000);
  const calls = await analysis.finish(endMs);
  return {
    records: new Map(analysis.records.map((r) => [r.callId, r])),
    calls,
    orphans: analysis.sink.callStats().orphanMessages,
    endMs,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `sip:127.0.2.3:21000` → `127.0.2.3:21000` (a branch's `to`). */
function hostPort(uri: string): string {
  return uri.replace(/^sip:/, '');
}

/**
 * What a view of the calls sees: the capture ('wire') and siptrace's mirror mode every datagram,
 * script mode no retransmission and no OPTIONS probe (sip_trace() runs after the retransmission
 * check, and the probes are Kamailio's own requests).
 */
type View = 'wire' | HepMode;

/** Every record against the caller's, the destinations' and Kamailio's truth, Call-ID by Call-ID. */
function checkRecords(run: KamailioRun, analysed: Analysed, view: View): void {
  const resends = (n: number) => (view === 'script' ? 0 : n);
  const { records } = analysed;
  expect([...records.keys()].sort()).toEqual(run.calls.map((c) => c.callId).sort());
  const proxy = `${run.proxy.ip}:${run.proxy.port}`;
  const caller = `${run.uacIp}:${run.proxy.port}`;
  const uacLog = parseSippShortMessages(readFileSync(run.files.uacShortMessages, 'utf8'));
  for (const c of run.calls) {
    const r = records.get(c.callId)!;
    const id = c.callId;
    // (a) What the caller got.
    expect(c.finalStatus, id).not.toBeNull();
    expect(r.finalStatus, id).toBe(c.finalStatus);
    expect(r.reasonPhrase, id).toBe(c.finalReason);
    expect(r.outcome, id).toBe(OUTCOME_OF_STATUS[c.finalStatus!]);
    expect(r.answer !== null, id).toBe(c.finalStatus === 200);
    expect(r.endedBy, id).toBe(c.byeStatus !== null ? 'caller' : 'network');
    expect(r.byeAnswered, id).toBe(c.byeStatus === 200);
    expect(r.closedBy, id).toBeNull();
    expect(r.inviteTransactions, id).toBe(1);
    expect(r.caller, id).toMatchObject({ ip: run.uacIp, port: run.proxy.port });
    // Kamailio's final answer to the INVITE is the caller's, and its BYE's answer too.
    const acc = run.acc.filter((a) => a.callId === id);
    const answered = acc.filter((a) => a.event === 'transaction answered');
    expect(
      answered.filter((a) => a.method === 'INVITE').map((a) => a.status),
      id,
    ).toEqual([c.finalStatus]);
    expect(
      answered.filter((a) => a.method === 'BYE').map((a) => a.status),
      id,
    ).toEqual(c.byeStatus === null ? [] : [c.byeStatus]);
    checkTimes(r, c, uacLog);

    // (b) The path: the caller's hop (one branch, to the proxy) and the proxy's (a branch per
    // destination tried, in order: a failover is a second branch).
    expect(r.hops.map((h) => h.from).sort(), id).toEqual([caller, proxy].sort());
    const edge = r.hops.find((h) => h.from === caller)!;
    expect(
      edge.branches.map((b) => [b.to, b.finalStatus, b.retransmissions]),
      id,
    ).toEqual([[proxy, c.finalStatus, resends(c.invitesSent - 1)]]);
    const hop = r.hops.find((h) => h.from === proxy)!;
    const expected = c.destinations.map((name) => {
      const d = run.destinations.find((x) => x.name === name)!;
      const invite = d.invites.find((i) => i.callId === id)!;
      // A silent destination's branch has no final status: Kamailio's 408 is its own, never sent.
      return [`${d.ip}:${d.port}`, invite.finalSent, resends(invite.received - 1)];
    });
    expect(
      hop.branches.map((b) => [b.to, b.finalStatus, b.retransmissions]),
      id,
    ).toEqual(expected);
    // The same branches by acc: each failed one a `call missed` line (408 for the timeout, which the
    // destination never sent), the answered one the INVITE's `transaction answered`.
    const fromAcc: Array<[string, number | null]> = acc
      .filter((a) => a.event === 'call missed' && a.method === 'INVITE')
      .map((a) => [hostPort(a.dst ?? ''), a.status === 408 ? null : a.status]);
    const answer = answered.find((a) => a.method === 'INVITE' && a.status === 200);
    if (answer) fromAcc.push([hostPort(answer.dst ?? ''), 200]);
    expect(
      hop.branches.map((b) => [b.to, b.finalStatus]),
      id,
    ).toEqual(fromAcc);
    expect(hop.to, id).toBe(fromAcc.at(-1)?.[0]);
    expect(r.callee.ip, id).toBe(fromAcc.at(-1)?.[0].split(':')[0]);
  }
}

/** Start, ringing, answer and post-dial delay against the caller's own clock. */
function checkTimes(
  r: CallRecord,
  c: KamailioCallerCall,
  uacLog: ReturnType<typeof parseSippShortMessages>,
): void {
  const id = c.callId;
  const log = uacLog.filter((m) => m.callId === id);
  const got = (test: (status: number) => boolean) =>
    log.find(
      (m) => m.direction === 'received' && m.cseqMethod === 'INVITE' && m.status !== null && test(m.status),
    );
  const near = (ms: number | null, seconds: number | undefined, what: string) => {
    expect(ms === null, `${id} ${what}`).toBe(seconds === undefined);
    if (ms !== null && seconds !== undefined)
      expect(Math.abs(ms - seconds * 1000), `${id} ${what}`).toBeLessThan(CLOCK_SLACK_MS);
  };
  near(r.start, c.invitedAt, 'start');
  const ring = got((s) => s >= 180 && s < 200);
  near(r.ringing, ring?.time, 'ringing');
  near(r.answer, got((s) => s >= 200 && s < 300)?.time, 'answer');
  // Post-dial delay: to the first 18x, else to the final answer.
  const pddAt = ring?.time ?? c.finalAt ?? undefined;
  near(r.pddMs === null ? null : r.start + r.pddMs, pddAt, 'pdd');
  // The end: the caller's BYE, else the final answer it got.
  const bye = log.find((m) => m.direction === 'sent' && m.method === 'BYE');
  near(r.end, bye?.time ?? c.finalAt ?? undefined, 'end');
}

/** The KPIs against SIPp's counters and acc's count of calls. */
function checkKpis(run: KamailioRun, analysed: Analysed, view: View): void {
  const { calls } = analysed;
  const accInvites = run.acc.filter((a) => a.event === 'transaction answered' && a.method === 'INVITE');
  expect(accInvites.length).toBe(run.uac.createdCalls);
  expect(calls.attempts).toBe(run.uac.createdCalls);
  expect(calls.legs).toBe(0);
  // SIPp's caller counts a call successful exactly when it was answered here.
  expect(calls.answered).toBe(run.uac.successfulCalls);
  expect(calls.failed).toBe(run.uac.failedCalls);
  expect(calls.answered).toBe(accInvites.filter((a) => a.status === 200).length);
  expect(calls.failed).toBe(accInvites.filter((a) => a.status >= 300).length);
  const byStatus: Record<string, number> = {};
  for (const c of run.calls) byStatus[String(c.finalStatus)] = (byStatus[String(c.finalStatus)] ?? 0) + 1;
  expect(calls.finalStatus).toEqual(byStatus);
  expect(calls.outcomes.answered + calls.outcomes.failed).toBe(calls.attempts);
  expect(calls.outcomes.inProgress).toBe(0);
  expect(calls.kpis.asr).toBe(round6(run.uac.successfulCalls / run.uac.createdCalls));
  expect(calls.kpis.failedRatio).toBe(round6(run.uac.failedCalls / run.uac.createdCalls));
  // Session completion: answered and ended by a BYE answered 200 (the caller's log and acc agree).
  const completed = run.calls.filter((c) => c.byeStatus === 200).length;
  expect(run.acc.filter((a) => a.method === 'BYE' && a.status === 200).length).toBe(completed);
  expect(calls.kpis.scr).toBe(round6(completed / run.uac.createdCalls));
  // RFC 6076 ISA: the caller got 408, 500, 503 or 504 (here: the 500s).
  const ineffective = run.calls.filter((c) => [408, 500, 503, 504].includes(c.finalStatus ?? 0)).length;
  expect(calls.kpis.isa).toBe(round6(ineffective / run.uac.createdCalls));
  // The dispatcher's OPTIONS probes and their answers (the destinations' logs) are no calls: left over.
  const probes = run.destinations.reduce((n, d) => n + d.optionsReceived + d.optionsAnswered, 0);
  expect(analysed.orphans).toBe(view === 'script' ? 0 : probes);
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
