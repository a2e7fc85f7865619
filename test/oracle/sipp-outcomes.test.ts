/**
 * Self-test of the per-call outcome oracle (sipp-outcomes.ts): SIPp's per-call truth agrees with SIPp's
 * own counters and with each scenario's design, and tshark finds in each capture, Call-ID by Call-ID,
 * the messages SIPp logged. No product code is involved.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SippStats } from './sipp.js';
import {
  parseSippFailedCalls,
  parseSippShortMessages,
  runSippOutcomes,
  SIPP_OUTCOME_SCENARIO_NAMES,
  type SippCallTruth,
  type SippLoggedMessage,
  type SippOutcomeRun,
  type SippOutcomeScenario,
  sippCallTruth,
  sippTruthDisagreements,
} from './sipp-outcomes.js';
import { needs, ROOT, removeTmpDir, tmpDir } from './tools.js';
import { runTshark } from './tshark.js';

const gate = needs('sipp', 'tcpdump', 'tshark', ROOT);

// Lines as SIPp 3.6.1 writes them (taken from real runs).
const at = (epoch: string): string => `2026-12-06\t06:56:20.000000\t${epoch}`;
const SHORTMSG_CANCELLED = [
  `${at('100.000000')}\tS\tc-1@127.0.0.2\tCSeq:1 INVITE\tINVITE sip:service@127.0.0.3:5060 SIP/2.0`,
  `${at('100.001000')}\tR\tc-1@127.0.0.2\tCSeq:1 INVITE\tSIP/2.0 100 Trying`,
  `${at('100.002000')}\tR\tc-1@127.0.0.2\tCSeq:1 INVITE\tSIP/2.0 180 Ringing`,
  `${at('100.500000')}\tS\tc-1@127.0.0.2\tCSeq:1 CANCEL\tCANCEL sip:service@127.0.0.3:5060 SIP/2.0`,
  `${at('100.501000')}\tR\tc-1@127.0.0.2\tCSeq:1 CANCEL\tSIP/2.0 200 OK`,
  `${at('100.502000')}\tR\tc-1@127.0.0.2\tCSeq:1 INVITE\tSIP/2.0 487 Request Terminated`,
  `${at('100.503000')}\tS\tc-1@127.0.0.2\tCSeq:1 ACK\tACK sip:service@127.0.0.3:5060 SIP/2.0`,
].join('\n');
const EVENT = (epoch: string, text: string) => `2026-12-06\t07:00:01.986012\t${epoch}: ${text}`;

describe('SIPp per-call logs: parsers (no tools needed)', () => {
  it('parses -trace_shortmsg lines', () => {
    const messages = parseSippShortMessages(`${SHORTMSG_CANCELLED}\n`);
    expect(messages).toHaveLength(7);
    expect(messages[0]).toEqual({
      time: 100,
      direction: 'S',
      callId: 'c-1@127.0.0.2',
      cseq: 1,
      cseqMethod: 'INVITE',
      method: 'INVITE',
      status: null,
      firstLine: 'INVITE sip:service@127.0.0.3:5060 SIP/2.0',
    });
    expect(messages[5]).toMatchObject({ direction: 'R', status: 487, method: null, cseqMethod: 'INVITE' });
    expect(() => parseSippShortMessages('garbage\n')).toThrow(/line 1: not understood/);
  });

  it('finds the failed Call-IDs in -trace_err, whatever failed them', () => {
    const log =
      'The following events occurred:\n' +
      EVENT(
        '1.1',
        "Failed regexp match: looking in ' busy-1-8918@127.0.9.2', with regexp 'callscope-rejected'",
      ) +
      EVENT('1.2', "Aborting call on UDP retransmission timeout for Call-ID 'noanswer-1-10865@127.0.9.2'") +
      EVENT(
        '1.3',
        'Call-Id: silent-1-1@127.0.9.2, receive timeout on message callscope uas silent:1 without label to jump ' +
          'to (ontimeout attribute): aborting call',
      ) +
      EVENT(
        '1.4',
        "Aborting call on unexpected message for Call-Id 'odd-1@x': while expecting '200' (index 3)",
      ) +
      // Neither fails a call: a multi-line haystack (no Call-ID to take), a jump to a label.
      EVENT('1.5', "Failed regexp match: looking in 'SIP/2.0 486 Busy Here\nVia: x\n', with regexp 'y'") +
      EVENT('1.6', 'Call-Id: other@x, receive timeout on message m:1, jumping to label 4');
    expect([...parseSippFailedCalls(log).keys()]).toEqual([
      'busy-1-8918@127.0.9.2',
      'noanswer-1-10865@127.0.9.2',
      'silent-1-1@127.0.9.2',
      'odd-1@x',
    ]);
    expect(parseSippFailedCalls('')).toEqual(new Map());
  });

  it('folds messages into per-call truth: final status, who ended it, retransmissions', () => {
    const cancelled = parseSippShortMessages(SHORTMSG_CANCELLED);
    const failures = new Map([['c-1@127.0.0.2', 'Failed regexp match']]);
    expect(sippCallTruth('uac', cancelled, failures).get('c-1@127.0.0.2')).toEqual({
      outcome: 'failed',
      failure: 'Failed regexp match',
      finalStatus: 487,
      retransmissions: 0,
      endedBy: 'uac',
      messages: 7,
    } satisfies SippCallTruth);

    // The callee's view of a challenged, answered call with a refused re-INVITE and its own BYE; its
    // 200 was sent twice.
    const m = (direction: 'S' | 'R', cseq: string, firstLine: string): string =>
      `${at('1.0')}\t${direction}\ta@x\tCSeq:${cseq}\t${firstLine}`;
    const callee = parseSippShortMessages(
      [
        m('R', '1 INVITE', 'INVITE sip:s@x SIP/2.0'),
        m('S', '1 INVITE', 'SIP/2.0 407 Proxy Authentication Required'),
        m('R', '1 ACK', 'ACK sip:s@x SIP/2.0'),
        m('R', '2 INVITE', 'INVITE sip:s@x SIP/2.0'),
        m('S', '2 INVITE', 'SIP/2.0 200 OK'),
        m('S', '2 INVITE', 'SIP/2.0 200 OK'),
        m('R', '2 ACK', 'ACK sip:s@x SIP/2.0'),
        m('R', '3 INVITE', 'INVITE sip:s@x SIP/2.0'),
        m('S', '3 INVITE', 'SIP/2.0 488 Not Acceptable Here'),
        m('R', '3 ACK', 'ACK sip:s@x SIP/2.0'),
        m('S', '1 BYE', 'BYE sip:c@x SIP/2.0'),
        m('R', '1 BYE', 'SIP/2.0 200 OK'),
      ].join('\n'),
    );
    expect(sippCallTruth('uas', callee, new Map()).get('a@x')).toEqual({
      outcome: 'success',
      failure: null,
      finalStatus: 200,
      retransmissions: 1,
      endedBy: 'uas',
      messages: 12,
    } satisfies SippCallTruth);

    // Never answered: the INVITE sent 6 times, nothing else.
    const invite = m('S', '1 INVITE', 'INVITE sip:s@x SIP/2.0');
    const unanswered = parseSippShortMessages(Array(6).fill(invite).join('\n'));
    expect(sippCallTruth('uac', unanswered, new Map([['a@x', 'timeout']])).get('a@x')).toMatchObject({
      outcome: 'failed',
      finalStatus: null,
      retransmissions: 5,
      endedBy: null,
    });
  });

  it('compares per-call truth with SIPp counters', () => {
    const call = (outcome: 'success' | 'failed', retransmissions: number): SippCallTruth => ({
      outcome,
      failure: outcome === 'failed' ? 'x' : null,
      finalStatus: null,
      retransmissions,
      endedBy: null,
      messages: 1,
    });
    const calls = new Map([
      ['a', call('success', 0)],
      ['b', call('failed', 5)],
    ]);
    const stats: SippStats = {
      createdCalls: 2,
      successfulCalls: 1,
      failedCalls: 1,
      retransmissions: 5,
      raw: {},
    };
    expect(sippTruthDisagreements(calls, stats)).toEqual([]);
    expect(
      sippTruthDisagreements(calls, { ...stats, successfulCalls: 2, failedCalls: 0, retransmissions: 4 }),
    ).toEqual([
      "successful calls 1 but SIPp's SuccessfulCall(C) 2",
      "failed calls 1 but SIPp's FailedCall(C) 0",
      "retransmissions logged 5 but SIPp's Retransmissions(C) 4",
    ]);
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

gate.describe('SIPp outcome scenarios, all at once', () => {
  let dir = '';
  let runs: SippOutcomeRun[] = [];
  let elapsedMs = 0;
  beforeAll(async () => {
    dir = tmpDir('callscope-sipp-outcomes-');
    ({ runs, elapsedMs } = await runSippOutcomes({ dir }));
    const lines = runs.map(
      (r) =>
        `  ${r.scenario}: ${r.run.elapsedMs} ms, UAC created ${r.run.uac.createdCalls} ok ${r.run.uac.successfulCalls} ` +
        `failed ${r.run.uac.failedCalls} retrans ${r.run.uac.retransmissions}; UAS ok ${r.run.uas.successfulCalls} ` +
        `failed ${r.run.uas.failedCalls} retrans ${r.run.uas.retransmissions}; dropped ${r.run.droppedByKernel}`,
    );
    console.log(`[oracle] SIPp outcome scenarios in ${elapsedMs} ms\n${lines.join('\n')}`);
  }, 120_000);
  afterAll(() => {
    if (dir) removeTmpDir(dir);
  });
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
});
