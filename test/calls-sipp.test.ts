/**
 * The call engine against SIPp (test/oracle/sipp-outcomes.ts): real calls ending every way a call
 * can end, captured on the wire; each record must say what SIPp's own logs and counters say about
 * the call, and the KPIs must count each call once. The same runs first prove the oracle itself
 * (last describe): SIPp's per-call truth against its own counters, each scenario's design, and
 * tshark's view of each capture. No product code is involved there.
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
  type SippLoggedMessage,
  type SippOutcomeRun,
  type SippOutcomeScenario,
  sippTruthDisagreements,
} from './oracle/sipp-outcomes.js';
import { needs, ROOT, removeTmpDir, tmpDir } from './oracle/tools.js';
import { runTshark } from './oracle/tshark.js';

const gate = needs('sipp', 'tcpdump', ROOT);
const oracleGate = needs('sipp', 'tcpdump', 'tshark', ROOT);

/** The SIPp runs of every scenario, made once for this file's two parts (they take ~35 s). */
let sipp: Promise<{ dir: string; runs: SippOutcomeRun[]; elapsedMs: number }> | null = null;
function sippRuns(): Promise<{ dir: string; runs: SippOutcomeRun[]; elapsedMs: number }> {
  sipp ??= (async () => {
    const dir = tmpDir('callscope-sipp-outcomes-');
    return { dir, ...(await runSippOutcomes({ dir })) };
  })();
  return sipp;
}
afterAll(async () => {
  if (sipp !== null) removeTmpDir((await sipp).dir);
});

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
    const { runs } = await sippRuns();
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

/** A SIP message as tshark shows it: its Call-ID, the status code or the method, the capture time. */
interface WireMessage {
  callId: string;
  key: string;
  time: number;
}

/** The capture's SIP messages, and the time of its last packet (the end probe). */
async function wire(run: SippOutcomeRun): Promise<{ messages: WireMessage[]; lastPacket: number }> {
  // biome-ignore format: option/value pairs
  const { stdout } = await runTshark([
    '-n', '-r', run.pcap,
    '-d', `udp.port==${run.port},sip`,
    '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'sip.Call-ID', '-e', 'sip.Status-Code', '-e', 'sip.Method',
  ]);
  const messages: WireMessage[] = [];
  let lastPacket = 0;
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    const [time = '', callId = '', status = '', method = ''] = line.split('\t');
    lastPacket = Math.max(lastPacket, Number(time));
    // The probe datagrams, and the ICMP errors they draw, carry no Call-ID.
    if (callId === '') continue;
    messages.push({ callId, key: status || method, time: Number(time) });
  }
  return { messages, lastPacket };
}

const keyOf = (m: SippLoggedMessage): string => (m.status !== null ? String(m.status) : (m.method ?? '?'));
const byCall = <T extends { callId: string }>(list: T[], key: (t: T) => string): Map<string, string[]> => {
  const out = new Map<string, string[]>();
  for (const item of list) out.set(item.callId, [...(out.get(item.callId) ?? []), key(item)]);
  for (const keys of out.values()) keys.sort();
  return out;
};
const distinct = (keys: string[], status: boolean): (string | number)[] =>
  [...new Set(keys.filter((k) => /^\d+$/.test(k) === status))]
    .map((k) => (status ? Number(k) : k))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

oracleGate.describe(
  'the oracle: SIPp outcome scenarios, all at once, against SIPp’s counters and tshark',
  () => {
    let runs: SippOutcomeRun[] = [];
    let elapsedMs = 0;
    beforeAll(async () => {
      ({ runs, elapsedMs } = await sippRuns());
      const lines = runs.map(
        (r) =>
          `  ${r.scenario}: ${r.run.elapsedMs} ms, UAC created ${r.run.uac.createdCalls} ok ${r.run.uac.successfulCalls} ` +
          `failed ${r.run.uac.failedCalls} retrans ${r.run.uac.retransmissions}; UAS ok ${r.run.uas.successfulCalls} ` +
          `failed ${r.run.uas.failedCalls} retrans ${r.run.uas.retransmissions}; dropped ${r.run.droppedByKernel}`,
      );
      console.log(`[oracle] SIPp outcome scenarios in ${elapsedMs} ms\n${lines.join('\n')}`);
    }, 120_000);
    const get = (name: SippOutcomeScenario): SippOutcomeRun => {
      const run = runs.find((r) => r.scenario === name);
      if (!run) throw new Error(`no run of ${name}`);
      return run;
    };

    it('runs every scenario, all within 60 s', () => {
      expect(runs.map((r) => r.scenario)).toEqual(SIPP_OUTCOME_SCENARIO_NAMES);
      expect(elapsedMs).toBeLessThan(60_000);
    });

    it.each(SIPP_OUTCOME_SCENARIO_NAMES)(
      '%s: every call as designed, on both sides, as SIPp counted',
      (name) => {
        const { design, calls, calleeCalls, run, uacIp } = get(name);
        expect(sippTruthDisagreements(calls, run.uac)).toEqual([]);
        expect(sippTruthDisagreements(calleeCalls, run.uas)).toEqual([]);
        expect(calls.size).toBe(design.calls);
        expect(run.uac.createdCalls).toBe(design.calls);
        expect(run.uac.successfulCalls).toBe(design.expect.outcome === 'success' ? design.calls : 0);
        expect([...calleeCalls.keys()].sort()).toEqual([...calls.keys()].sort());
        const idPattern = new RegExp(`^${name}-\\d+-\\d+@${uacIp.replaceAll('.', '\\.')}$`);
        for (const [callId, call] of calls) {
          expect(callId).toMatch(idPattern);
          expect(call).toMatchObject({
            outcome: design.expect.outcome,
            finalStatus: design.expect.finalStatus,
            endedBy: design.expect.endedBy,
          });
          if (design.expect.retransmissions !== null)
            expect(call.retransmissions).toBe(design.expect.retransmissions);
          if (call.outcome === 'failed') expect(call.failure).toContain(callId);
          const callee = calleeCalls.get(callId)!;
          expect(callee).toMatchObject({
            outcome: design.calleeOutcome,
            finalStatus: call.finalStatus,
            endedBy: call.endedBy,
          });
        }
      },
    );

    it.each(SIPP_OUTCOME_SCENARIO_NAMES)(
      '%s: tshark sees each Call-ID with the messages SIPp logged',
      async (name) => {
        const run = get(name);
        expect(run.run.droppedByKernel).toBe(0);
        const { messages } = await wire(run);
        const onWire = byCall(messages, (m) => m.key);
        const uacLog = byCall(
          parseSippShortMessages(readFileSync(run.run.files.uacShortMessages, 'utf8')),
          keyOf,
        );
        const uasLog = byCall(
          parseSippShortMessages(readFileSync(run.run.files.uasShortMessages, 'utf8')),
          keyOf,
        );
        expect([...onWire.keys()].sort()).toEqual([...run.calls.keys()].sort());
        for (const [callId, keys] of onWire) {
          // Every message either SIPp sent or received crossed the wire once, retransmissions included.
          expect(keys, callId).toEqual(uacLog.get(callId));
          expect(keys, callId).toEqual(uasLog.get(callId));
          expect(distinct(keys, true), callId).toEqual(run.design.statusCodes);
          expect(distinct(keys, false), callId).toEqual(run.design.methods);
        }
      },
    );

    it.each(['no-answer', 'overload'] as const)(
      '%s: the capture runs past Timer B (32 s) after the last call began',
      async (name) => {
        const { messages, lastPacket } = await wire(get(name));
        const firstInvite = new Map<string, number>();
        for (const m of messages) if (!firstInvite.has(m.callId)) firstInvite.set(m.callId, m.time);
        const lastStart = Math.max(...firstInvite.values());
        expect(lastPacket - lastStart).toBeGreaterThanOrEqual(32);
        // The caller's last INVITE left 15.5 s after its first; nothing follows it but the probe.
        const lastSip = Math.max(...messages.map((m) => m.time));
        expect(lastSip - lastStart).toBeGreaterThan(15);
        expect(lastSip - lastStart).toBeLessThan(17);
      },
    );

    it('overload: 20 attempts at 10 cps, none answered, each INVITE sent 6 times, as SIPp counted', async () => {
      const run = get('overload');
      expect(run.run.uac).toMatchObject({
        createdCalls: 20,
        successfulCalls: 0,
        failedCalls: 20,
        retransmissions: 100,
      });
      expect(run.run.uac.raw['FailedMaxUDPRetrans(C)']).toBe('20');
      expect(run.run.uas.raw['FailedTimeoutOnRecv(C)']).toBe('20');
      expect([...run.calls.values()].every((c) => c.finalStatus === null && c.retransmissions === 5)).toBe(
        true,
      );
      const { messages } = await wire(run);
      expect(messages).toHaveLength(120);
      expect(messages.every((m) => m.key === 'INVITE')).toBe(true);
      // 10 cps: the 20 first INVITEs span about 1.9 s.
      const starts = [...new Set(messages.map((m) => m.callId))].map(
        (id) => messages.find((m) => m.callId === id)!.time,
      );
      expect(Math.max(...starts) - Math.min(...starts)).toBeGreaterThan(1.5);
      expect(Math.max(...starts) - Math.min(...starts)).toBeLessThan(3);
    });
  },
);
