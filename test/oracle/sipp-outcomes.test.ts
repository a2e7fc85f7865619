import { describe, expect, it } from 'vitest';
import type { SippStats } from './sipp.js';
import {
  parseSippFailedCalls,
  parseSippShortMessages,
  type SippCallTruth,
  sippCallTruth,
  sippTruthDisagreements,
} from './sipp-outcomes.js';

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
