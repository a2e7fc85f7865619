/**
 * The call engine against SIPp (test/oracle/sipp-outcomes.ts): real calls ending every way a call
 * can end, captured on the wire; each record must say what SIPp's own logs and counters say about
 * the call, and the KPIs must count each call once.
 */

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallsSummary } from '../analyze/calls/kpis.js';
import { CaptureSummary } from '../analyze/summary.js';
import { FileSource } from '../capture/sources.js';
import type { CallOutcome, CallRecord } from '../core/call.js';
import { drive } from '../core/drive.js';
import { dashboardsOverStoredRuns } from './dashboards-sql.js';
import {
  parseSippShortMessages,
  runSippOutcomes,
  SIPP_OUTCOME_SCENARIO_NAMES,
  type SippOutcomeRun,
  type SippOutcomeScenario,
} from './oracle/sipp-outcomes.js';
import { needs, ROOT, removeTmpDir, tmpDir } from './oracle/tools.js';

const gate = needs('sipp', 'tcpdump', ROOT);

/** What each scenario's calls are, in our outcome classes (core/call.ts). */
const OUTCOME: Record<SippOutcomeScenario, CallOutcome> = {
  answered: 'answered',
  'callee-bye': 'answered',
  busy: 'busy',
  unavailable: 'failed',
  cancel: 'cancelled',
  'no-answer': 'noAnswer',
  auth: 'answered',
  'reinvite-488': 'answered',
  overload: 'noAnswer',
};

interface Analysed {
  run: SippOutcomeRun;
  records: Map<string, CallRecord>;
  calls: CallsSummary;
}

async function analyse(run: SippOutcomeRun): Promise<Analysed> {
  const summary = new CaptureSummary({ calls: { keepRecords: true } });
  const result = await drive(new FileSource(run.pcap), summary.sinks);
  const { calls } = await summary.of(result.source);
  return { run, records: new Map(summary.calls.records.map((r) => [r.callId, r])), calls };
}

gate.describe('calls from SIPp captures, against SIPp', () => {
  let dir = '';
  const analysed = new Map<SippOutcomeScenario, Analysed>();
  beforeAll(async () => {
    dir = tmpDir('callscope-calls-sipp-');
    const { runs } = await runSippOutcomes({ dir });
    for (const run of runs) analysed.set(run.scenario, await analyse(run));
  }, 120_000);
  afterAll(() => {
    if (dir) removeTmpDir(dir);
  });
  const get = (name: SippOutcomeScenario): Analysed => {
    const a = analysed.get(name);
    if (!a) throw new Error(`no run of ${name}`);
    return a;
  };

  it.each(SIPP_OUTCOME_SCENARIO_NAMES)('%s: one record per SIPp call, each as SIPp logged it', (name) => {
    const { run, records } = get(name);
    expect(run.run.droppedByKernel).toBe(0);
    expect([...records.keys()].sort()).toEqual([...run.calls.keys()].sort());
    const uacLog = parseSippShortMessages(readFileSync(run.run.files.uacShortMessages, 'utf8'));
    for (const [callId, caller] of run.calls) {
      const callee = run.calleeCalls.get(callId)!;
      const r = records.get(callId)!;
      expect(r.outcome, callId).toBe(OUTCOME[name]);
      // SIPp's caller counts a call successful exactly when it was answered.
      expect(r.answer !== null, callId).toBe(caller.outcome === 'success');
      expect(r.finalStatus, callId).toBe(caller.finalStatus);
      // A failure (5xx, a timeout) is the network's doing whichever side sent it.
      const failure = r.outcome === 'failed' || r.outcome === 'noAnswer';
      expect(r.endedBy, callId).toBe(failure ? 'network' : caller.endedBy === 'uac' ? 'caller' : 'callee');
      if (!failure) expect(caller.endedBy, callId).not.toBeNull();
      // Every message crossed the wire once; both SIPps' resends are the call's retransmissions.
      expect(r.messages, callId).toBe(caller.messages);
      expect(r.retransmissions, callId).toBe(caller.retransmissions + callee.retransmissions);
      // Times: SIPp's clock when it sent the first INVITE and got the 2xx, against the capture's.
      const log = uacLog.filter((m) => m.callId === callId);
      const firstInvite = log.find((m) => m.method === 'INVITE')!;
      expect(Math.abs(r.start - firstInvite.time * 1000), callId).toBeLessThan(20);
      const ok = log.find(
        (m) => m.cseqMethod === 'INVITE' && m.status !== null && m.status < 300 && m.status >= 200,
      );
      if (ok) expect(Math.abs(r.answer! - ok.time * 1000), callId).toBeLessThan(20);
      const invites = new Set(
        log.filter((m) => m.method === 'INVITE' && m.direction === 'S').map((m) => m.cseq),
      );
      expect(r.inviteTransactions + r.reInvites, callId).toBe(invites.size);
      expect(r.authChallenges, callId).toBe(name === 'auth' ? 1 : 0);
      expect(r.reInvitesRejected, callId).toBe(name === 'reinvite-488' ? 1 : 0);
      expect(r.byeAnswered, callId).toBe(r.answer !== null);
      expect(r.closedBy, callId).toBeNull();
    }
  });

  it.each(SIPP_OUTCOME_SCENARIO_NAMES)('%s: the KPIs count each call once, as SIPp counted', (name) => {
    const { run, calls } = get(name);
    expect(calls.attempts).toBe(run.run.uac.createdCalls);
    expect(calls.answered).toBe(run.run.uac.successfulCalls);
    expect(calls.outcomes[OUTCOME[name]]).toBe(run.run.uac.createdCalls);
    const failed = OUTCOME[name] === 'failed' || OUTCOME[name] === 'noAnswer';
    expect(calls.failed).toBe(failed ? run.run.uac.failedCalls : 0);
    expect(calls.kpis.failedRatio).toBe(failed ? 1 : 0);
    expect(calls.kpis.asr).toBe(calls.answered / calls.attempts);
  });

  it('the dashboards over these runs, stored: every panel query has its shape, KPI stats equal `callscope kpis`', async () => {
    const pcaps = SIPP_OUTCOME_SCENARIO_NAMES.map((name) => get(name).run.pcap);
    const { problems, mismatches, attempts } = await dashboardsOverStoredRuns(
      pcaps,
      dir,
      new Date(Date.now() - 3_600_000),
      new Date(Date.now() + 600_000),
    );
    expect(problems).toEqual([]);
    expect(mismatches).toEqual([]);
    expect(attempts).toBe(
      SIPP_OUTCOME_SCENARIO_NAMES.reduce((n, name) => n + get(name).run.run.uac.createdCalls, 0),
    );
  });

  it('the overloaded callee: every attempt pending and none answered, retransmissions as SIPp sent them', () => {
    const { run, calls, records } = get('overload');
    expect(calls.attempts).toBe(20);
    expect(calls.answered).toBe(0);
    expect(calls.outcomes.noAnswer).toBe(20);
    const retransmissions = [...records.values()].reduce((n, r) => n + r.retransmissions, 0);
    expect(retransmissions).toBe(run.run.uac.retransmissions + run.run.uas.retransmissions);
    expect(retransmissions).toBe(100);
    expect(calls.peakConcurrent).toBe(0);
    // 20 INVITEs over 2 s, each pending until Timer B (32 s): all at once.
    expect(calls.peakPending).toBe(20);
    // RFC 6076 ISA: a client transaction that timed out is the 408 it never sent.
    expect(calls.kpis.isa).toBe(1);
  });
});

describe('calls from SIPp captures: scenario table', () => {
  it('names an outcome for every scenario', () => {
    expect(Object.keys(OUTCOME).sort()).toEqual([...SIPP_OUTCOME_SCENARIO_NAMES].sort());
  });
});
