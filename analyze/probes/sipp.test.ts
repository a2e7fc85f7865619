/**
 * OPTIONS probing against outside truth: a SIPp prober (test/sipp/uac-options.xml) pings a SIPp peer
 * (test/sipp/uas-options.xml) five times a second; the peer answers the first probes and then exits,
 * as a failed node would. The capture (tcpdump on lo) goes through our pipeline into the
 * OptionsProbeTracker, and what it says is compared with SIPp's counters and with tshark's view of
 * the same capture: probes, answers, retransmissions, and which probes had Timer F run out by the end.
 *
 * T1 is scaled down to 50 ms in the prober's scenario (so Timer F, 64·T1, is 3.2 s, and the run takes
 * seconds, not minutes); the tracker is given the same Timer F.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileSource } from '../../capture/sources.js';
import { drive } from '../../core/drive.js';
import { CallbackSink } from '../../core/sink.js';
import { openStore } from '../../ingest/store/client.js';
import { runSippCalls, type SippRun } from '../../test/oracle/sipp.js';
import { built, needs, REPO_ROOT, ROOT, removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { tsharkFields } from '../../test/oracle/tshark.js';
import { ruleValues } from '../alerts/evaluator.js';
import { loadRules } from '../alerts/rules.js';
import { OptionsProbeTracker, type ProbePair, type ProbesSummary } from './tracker.js';

const UAC_IP = '127.0.7.4';
const UAS_IP = '127.0.7.5';
const PORT = 5194;
const PROBES = 30;
const ANSWERED = 12;
const TIMER_F = 64 * 50;

const CLI = join(REPO_ROOT, 'dist', 'bin', 'callscope.js');
const gate = needs('sipp', 'tcpdump', 'tshark', ROOT, built(CLI));

gate.describe('OPTIONS probes: a SIPp peer that answers, then dies, against SIPp and tshark', () => {
  let dir: string;
  let run: SippRun;
  let summary: ProbesSummary;
  let pair: ProbePair;
  let rows: Array<{ t: number; callId: string; method: string; status: number; resent: boolean }>;

  beforeAll(async () => {
    dir = tmpDir('callscope-probes-');
    run = await runSippCalls({
      dir,
      calls: PROBES,
      rate: 5,
      port: PORT,
      uacIp: UAC_IP,
      uasIp: UAS_IP,
      uacScenario: 'options',
      uasCalls: ANSWERED,
      uacArgs: ['-T2', '400', '-max_non_invite_retrans', '9'],
    });
    const tracker = new OptionsProbeTracker({ timerFMs: TIMER_F });
    await drive(new FileSource(run.pcap), [new CallbackSink((e) => tracker.add(e))]);
    tracker.close();
    summary = tracker.summary();
    pair = summary.pairs[0]!;
    // ICMP port-unreachable errors quote the probes sent to the dead peer: not SIP messages.
    rows = (
      await tsharkFields(run.pcap, 'sip.CSeq.method == "OPTIONS" && !icmp', [
        'frame.time_epoch',
        'sip.Call-ID',
        'sip.Method',
        'sip.Status-Code',
        'sip.resend',
      ])
    ).map(([t, callId, method, status, resent]) => ({
      t: Number(t) * 1000,
      callId: callId!,
      method: method!,
      status: status ? Number(status) : 0,
      resent: resent === '1' || resent === 'True',
    }));
    console.log(
      `[probes] SIPp prober: ${run.uac.successfulCalls} answered, ${run.uac.failedCalls} failed ` +
        `(${run.uac.raw['FailedMaxUDPRetrans(C)']} on retransmission timeout), ${run.uac.retransmissions} ` +
        `retransmissions; tshark: ${rows.filter((r) => r.method === 'OPTIONS' && !r.resent).length} OPTIONS, ` +
        `${rows.filter((r) => r.resent).length} resent, ${rows.filter((r) => r.status === 200).length} answered 200; ` +
        `we: ${JSON.stringify({ sent: pair.sent, answered: pair.answered, failing: pair.failing, pending: pair.pending, retransmissions: pair.retransmissions, state: pair.state, transitions: pair.transitions })}`,
    );
  });

  afterAll(() => {
    if (dir) removeTmpDir(dir);
  });

  it('one pair; probes sent and answered as SIPp and tshark count them', () => {
    expect(summary.pairs).toHaveLength(1);
    expect(pair).toMatchObject({
      prober: `${UAC_IP}:${PORT}`,
      probed: `${UAS_IP}:${PORT}`,
      userAgent: 'callscope-oracle-prober',
      server: 'callscope-oracle-peer',
    });
    const sent = rows.filter((r) => r.method === 'OPTIONS' && !r.resent);
    const answers = rows.filter((r) => r.status >= 200 && !r.resent);
    expect(run.uac.createdCalls).toBe(PROBES);
    expect(pair.sent).toBe(sent.length);
    expect(pair.sent).toBe(PROBES);
    expect(pair.answered).toBe(answers.length);
    expect(pair.answered).toBe(run.uac.successfulCalls);
    expect(pair.answered).toBe(ANSWERED);
    expect(pair.statusCounts).toEqual({ '200': ANSWERED });
    // The unanswered probes: SIPp's failed calls. Retransmissions: every message tshark marks resent
    // (SIPp keeps retransmitting a little past Timer F, and the peer answers a retransmitted OPTIONS
    // again), of which the OPTIONS are SIPp's own count.
    expect(pair.failing + pair.pending).toBe(run.uac.failedCalls);
    expect(pair.retransmissions).toBe(rows.filter((r) => r.resent).length);
    expect(rows.filter((r) => r.resent && r.method === 'OPTIONS').length).toBe(run.uac.retransmissions);
    expect(pair.retransmissions).toBeGreaterThan(0);
    expect(pair.lateAnswers).toBe(0);
    expect(summary.counters.orphanMessages).toBe(0);
  });

  it('failing: the unanswered probes whose Timer F ran out within the capture, from tshark times', () => {
    const answered = new Set(rows.filter((r) => r.status >= 200).map((r) => r.callId));
    const last = Math.max(...rows.map((r) => r.t));
    const unanswered = rows.filter((r) => r.method === 'OPTIONS' && !r.resent && !answered.has(r.callId));
    const timedOut = unanswered.filter((r) => r.t + TIMER_F <= last);
    expect(pair.timeouts).toBe(timedOut.length);
    expect(pair.failing).toBe(timedOut.length);
    expect(pair.pending).toBe(unanswered.length - timedOut.length);
    expect(pair.consecutiveFailures).toBe(timedOut.length);
    expect(pair.lastStatus).toBe(200);
    const lastAnswer = Math.max(...rows.filter((r) => r.status === 200).map((r) => r.t));
    expect(pair.lastAnswerAt).toBe(Math.floor(lastAnswer));
  });

  it('state: up at the first answer, down when the first unanswered probe times out', () => {
    const firstAnswer = Math.min(...rows.filter((r) => r.status === 200).map((r) => r.t));
    const answered = new Set(rows.filter((r) => r.status >= 200).map((r) => r.callId));
    const firstLost = Math.min(
      ...rows.filter((r) => r.method === 'OPTIONS' && !answered.has(r.callId)).map((r) => r.t),
    );
    expect(pair.state).toBe('down');
    expect(pair.transitions).toEqual([
      { at: Math.floor(firstAnswer), from: 'unknown', to: 'up', cause: '200' },
      { at: Math.floor(firstLost + TIMER_F), from: 'up', to: 'down', cause: 'timeout' },
    ]);
    expect(summary).toMatchObject({ up: 0, down: 1, unknown: 0 });
  });

  it("the options-unanswered alert rule, over the capture stored by `callscope run`, fails SIPp's unanswered probes", async () => {
    const data = join(dir, 'store');
    const stored = spawnSync(process.execPath, [CLI, 'run', '--pcap', run.pcap, '--data-dir', data], {
      encoding: 'utf8',
    });
    expect(stored.status, stored.stderr).toBe(0);
    const first = Math.min(...rows.map((r) => r.t));
    const last = Math.max(...rows.map((r) => r.t));
    const defaults = loadRules();
    const rules = { ...defaults, delayMs: 60_000 };
    const rule = {
      ...defaults.rules.find((r) => r.kpi === 'options-unanswered')!,
      windowMs: last - first + 10_000,
    };
    const store = await openStore({ dataDir: data });
    try {
      const values = await ruleValues(store.client, 'callscope', rules, rule, last + 2000 + rules.delayMs);
      // One peer; every probe once (retransmissions are not probes); those SIPp never got answered failed.
      expect(values.map((v) => v.group)).toEqual([{ peer: UAS_IP }]);
      expect(values[0]!.attempts).toBe(run.uac.successfulCalls + run.uac.failedCalls);
      expect(values[0]!.value).toBeCloseTo(run.uac.failedCalls / PROBES, 9);
      expect(values[0]!.examples.length).toBe(5);
    } finally {
      await store.close();
    }
  });
});
