/**
 * Calls that go directly from one VM to another: the ladder each outcome takes between two real UAs,
 * and its truth. Calls through a proxy are in proxy.ts, B2BUA leg pairs in b2bua.ts.
 */
import type { CallEndedBy, CallOutcome } from '../../core/call.js';
import type { Host } from './frames.js';
import {
  type BranchFacts,
  type CallPlan,
  type CallSetup,
  type CallTruth,
  Ladder,
  legTruth,
  newBranch,
} from './ladder.js';
import type { Rng } from './random.js';
import { RtpStream, type RtpStreamPlan } from './rtp.js';
import {
  ALLOW,
  agentOf,
  G722,
  md5,
  message,
  Q850,
  reasonHeader,
  type SipReason,
  SUPPORTED,
  sdp,
  TIMER_A_MS,
  TIMER_B_MS,
  via,
  viaReceived,
} from './sip-text.js';

const DIGEST_PASSWORD = 'callscope';

/** How the answered part of a call goes on. */
interface AnsweredFlow {
  /** The callee sends the BYE (otherwise a coin toss decides). */
  calleeHangsUp?: boolean;
  /** Mid-call: a hold re-INVITE accepted, then a re-INVITE refused with 488; the call goes on. */
  holdThenRefused?: boolean;
}

/** Builds the complete SIP ladder and media plan of one direct call. */
export function planCall(s: CallSetup, rng: Rng): CallPlan {
  const { caller, callee, callId } = s;
  const callerUser = String(1000 + caller.index * 100 + rng.int(100));
  const calleeUser = String(1000 + callee.index * 100 + rng.int(100));
  const callerAor = `sip:${callerUser}@${caller.ipText}`;
  const calleeAor = `sip:${calleeUser}@${callee.ipText}`;
  const callerContact = `sip:${callerUser}@${caller.ipText}:5060`;
  const calleeContact = `sip:${calleeUser}@${callee.ipText}:5060`;
  const fromTag = rng.hex(4);
  const toTag = rng.hex(4);
  const fromHdr = `From: "${callerUser}" <${callerAor}>;tag=${fromTag}`;
  const toPlain = `To: <${calleeAor}>`;
  const toTagged = `${toPlain};tag=${toTag}`;
  const callIdHdr = `Call-ID: ${callId}`;
  const callerAgent = agentOf(caller);
  const calleeAgent = agentOf(callee);
  // UAs start CSeq at arbitrary values; independent per side, as RFC 3261 allows.
  let callerCseq = 1 + rng.int(100);
  const calleeCseq = 1 + rng.int(100);
  const offerSession = 1000000 + rng.int(9000000);
  const answerSession = 1000000 + rng.int(9000000);
  const offer = sdp(callerUser, caller, offerSession, s.callerRtpPort, s.codec, s.ptimeMs);
  const answerSdp = sdp(calleeUser, callee, answerSession, s.calleeRtpPort, s.codec, s.ptimeMs);

  const ladder = new Ladder(s.startNs);
  let t = 0; // ms since call start
  const at = (ms: number) => ladder.at(ms);
  const push = (
    ms: number,
    fromCaller: boolean,
    text: string,
    method: string | null,
    code: number | null,
    resent = false,
  ) => {
    ladder.send(
      ms,
      fromCaller ? caller : callee,
      fromCaller ? callee : caller,
      callId,
      text,
      method,
      code,
      resent,
    );
  };
  const branchOf = () => newBranch(rng);

  const invite = (branch: string, cseq: number, extra: string[] = []) =>
    message(
      `INVITE ${calleeAor} SIP/2.0`,
      [
        via(caller, branch),
        'Max-Forwards: 70',
        fromHdr,
        toPlain,
        callIdHdr,
        `CSeq: ${cseq} INVITE`,
        `Contact: <${callerContact}>`,
        ...extra,
        `User-Agent: ${callerAgent}`,
        ALLOW,
        SUPPORTED,
      ],
      offer,
    );
  /** Response from the callee to a caller request. */
  const reply = (
    code: number,
    reason: string,
    branch: string,
    cseq: number,
    method: string,
    tagged: boolean | string,
    extra: string[] = [],
    body = '',
  ) =>
    message(
      `SIP/2.0 ${code} ${reason}`,
      [
        viaReceived(caller, branch),
        fromHdr,
        tagged === true ? toTagged : tagged ? `${toPlain};tag=${tagged}` : toPlain,
        callIdHdr,
        `CSeq: ${cseq} ${method}`,
        ...extra,
        `Server: ${calleeAgent}`,
      ],
      body,
    );
  /** ACK for a non-2xx final response: same branch and Request-URI as the INVITE (RFC 3261 17.1.1.3). */
  const ackFailure = (branch: string, cseq: number, tag = toTag, requestUri = calleeAor) =>
    message(`ACK ${requestUri} SIP/2.0`, [
      via(caller, branch),
      'Max-Forwards: 70',
      fromHdr,
      `${toPlain};tag=${tag}`,
      callIdHdr,
      `CSeq: ${cseq} ACK`,
      `User-Agent: ${callerAgent}`,
    ]);
  /** ACK for a 2xx: a new transaction (new branch) to the callee's Contact. */
  const ack2xx = (cseq: number) =>
    message(`ACK ${calleeContact} SIP/2.0`, [
      via(caller, branchOf()),
      'Max-Forwards: 70',
      fromHdr,
      toTagged,
      callIdHdr,
      `CSeq: ${cseq} ACK`,
      `User-Agent: ${callerAgent}`,
    ]);

  let finalStatus: number | null = null;
  let reasonPhrase: string | null = null;
  let endReason: SipReason | null = null;
  let ringingMs: number | null = null;
  let answerMs: number | null = null;
  let finalMs: number | null = null;
  let endMs = 0;
  let hangupBy: CallTruth['hangupBy'] = null;
  let attempts = 1;
  let reInvites = 0;
  let reInvitesRejected = 0;
  const rtp: RtpStreamPlan[] = [];

  /** The final response to the caller's INVITE: the call's status, and the PDD's end without an 18x. */
  const final = (code: number, phrase: string) => {
    finalStatus = code;
    reasonPhrase = phrase;
    finalMs = t;
  };

  /** 100 Trying then 180 Ringing for the INVITE sent at `t`. */
  const trying180 = (branch: string, cseq: number) => {
    t += rng.range(1, 10);
    push(t, false, reply(100, 'Trying', branch, cseq, 'INVITE', false), null, 100);
    t += rng.range(20, 300);
    ringingMs = t;
    push(
      t,
      false,
      reply(180, 'Ringing', branch, cseq, 'INVITE', true, [`Contact: <${calleeContact}>`]),
      null,
      180,
    );
  };

  /**
   * The caller puts the call on hold (a=sendonly; the callee answers a=recvonly and stops sending), then
   * tries to resume offering only G.722, which the callee refuses with 488: the dialog and the hold stay.
   */
  const holdThenRefused = (cseq: number, holdAt: number, refuseAt: number): number => {
    t = Math.max(t + 1, holdAt);
    const holdBranch = branchOf();
    const holdCseq = cseq + 1;
    const reInvite = (branch: string, n: number, body: string) =>
      message(
        `INVITE ${calleeContact} SIP/2.0`,
        [
          via(caller, branch),
          'Max-Forwards: 70',
          fromHdr,
          toTagged,
          callIdHdr,
          `CSeq: ${n} INVITE`,
          `Contact: <${callerContact}>`,
          `User-Agent: ${callerAgent}`,
          ALLOW,
          SUPPORTED,
        ],
        body,
      );
    const holdOffer = sdp(
      callerUser,
      caller,
      offerSession,
      s.callerRtpPort,
      s.codec,
      s.ptimeMs,
      offerSession + 1,
      'sendonly',
    );
    push(t, true, reInvite(holdBranch, holdCseq, holdOffer), 'INVITE', null);
    t += rng.range(5, 40);
    const heldAnswer = sdp(
      calleeUser,
      callee,
      answerSession,
      s.calleeRtpPort,
      s.codec,
      s.ptimeMs,
      answerSession + 1,
      'recvonly',
    );
    push(
      t,
      false,
      reply(
        200,
        'OK',
        holdBranch,
        holdCseq,
        'INVITE',
        true,
        [`Contact: <${calleeContact}>`, ALLOW, SUPPORTED],
        heldAnswer,
      ),
      null,
      200,
    );
    t += rng.range(0.5, 5);
    push(t, true, ack2xx(holdCseq), 'ACK', null);

    t = Math.max(t + 1, refuseAt);
    const resumeBranch = branchOf();
    const resumeCseq = cseq + 2;
    const resumeOffer = sdp(
      callerUser,
      caller,
      offerSession,
      s.callerRtpPort,
      G722,
      s.ptimeMs,
      offerSession + 2,
    );
    push(t, true, reInvite(resumeBranch, resumeCseq, resumeOffer), 'INVITE', null);
    t += rng.range(2, 20);
    push(
      t,
      false,
      reply(488, 'Not Acceptable Here', resumeBranch, resumeCseq, 'INVITE', true, [
        `Warning: 305 ${callee.ipText} "Incompatible media format"`,
        reasonHeader(Q850.incompatibleDestination),
      ]),
      null,
      488,
    );
    t += rng.range(0.5, 5);
    push(t, true, ackFailure(resumeBranch, resumeCseq, toTag, calleeContact), 'ACK', null);
    reInvites = 2;
    reInvitesRejected = 1;
    return resumeCseq;
  };

  /** INVITE (already sent at `t`) → 100 → 180 → 200 → ACK → media → BYE → 200. */
  const answeredFlow = (branch: string, cseq: number, flow: AnsweredFlow = {}) => {
    trying180(branch, cseq);
    t += rng.range(1000, 4000);
    answerMs = t;
    final(200, 'OK');
    push(
      t,
      false,
      reply(
        200,
        'OK',
        branch,
        cseq,
        'INVITE',
        true,
        [`Contact: <${calleeContact}>`, ALLOW, SUPPORTED],
        answerSdp,
      ),
      null,
      200,
    );
    const t200 = t;
    t += rng.range(0.5, 5);
    push(t, true, ack2xx(cseq), 'ACK', null);
    const tAck = t;
    const holdAt = tAck + s.talkMs * 0.4;
    let byeMs = tAck + s.talkMs;
    const packets = Math.floor(s.talkMs / s.ptimeMs);
    if (s.rtpEnabled && packets > 0) {
      const stream = (
        src: Host,
        dst: Host,
        srcPort: number,
        dstPort: number,
        ssrc: number,
        startMs: number,
      ) => ({
        src,
        dst,
        srcPort,
        dstPort,
        ssrc,
        codec: s.codec,
        ptimeMs: s.ptimeMs,
        startNs: at(startMs),
        packets,
        jitterMs: s.jitterMs,
        lossRate: s.lossRate,
        reorderRate: s.reorderRate,
        vlan: s.vlan,
      });
      // The callee talks as soon as it has answered; the caller once it has the answer SDP.
      const calleeStartMs = t200 + rng.range(2, 20);
      const fromCallee: RtpStreamPlan = stream(
        callee,
        caller,
        s.calleeRtpPort,
        s.callerRtpPort,
        s.ssrcs[1],
        calleeStartMs,
      );
      const fromCaller: RtpStreamPlan = stream(
        caller,
        callee,
        s.callerRtpPort,
        s.calleeRtpPort,
        s.ssrcs[0],
        tAck + rng.range(1, 15),
      );
      // Put on hold (a=recvonly), the callee stops sending; the holding caller goes on (music on hold).
      if (flow.holdThenRefused)
        fromCallee.packets = Math.max(0, Math.floor((holdAt - calleeStartMs) / s.ptimeMs));
      rtp.push(fromCaller);
      if (fromCallee.packets > 0) rtp.push(fromCallee);
      const lastNs = Math.max(...rtp.map((p) => RtpStream.lastArrival(p)));
      byeMs = (lastNs - s.startNs) / 1e6 + rng.range(5, 40);
    }
    let lastCseq = cseq;
    if (flow.holdThenRefused) {
      lastCseq = holdThenRefused(cseq, holdAt, tAck + s.talkMs * 0.7);
      byeMs = Math.max(byeMs, t + rng.range(5, 40));
    }
    t = byeMs;
    endMs = t;
    const reason = reasonHeader(Q850.normalClearing);
    endReason = Q850.normalClearing;
    const byeBranch = branchOf();
    const callerHangsUp = rng.next() < 0.5 && !flow.calleeHangsUp;
    if (callerHangsUp) {
      hangupBy = 'caller';
      callerCseq = lastCseq + 1;
      push(
        t,
        true,
        message(`BYE ${calleeContact} SIP/2.0`, [
          via(caller, byeBranch),
          'Max-Forwards: 70',
          fromHdr,
          toTagged,
          callIdHdr,
          `CSeq: ${callerCseq} BYE`,
          reason,
          `User-Agent: ${callerAgent}`,
        ]),
        'BYE',
        null,
      );
      t += rng.range(0.5, 3);
      push(t, false, reply(200, 'OK', byeBranch, callerCseq, 'BYE', true), null, 200);
    } else {
      hangupBy = 'callee';
      // In the callee's requests From and To swap roles; the tags stay with their owners.
      const calleeFrom = `From: <${calleeAor}>;tag=${toTag}`;
      const calleeTo = `To: "${callerUser}" <${callerAor}>;tag=${fromTag}`;
      push(
        t,
        false,
        message(`BYE ${callerContact} SIP/2.0`, [
          via(callee, byeBranch),
          'Max-Forwards: 70',
          calleeFrom,
          calleeTo,
          callIdHdr,
          `CSeq: ${calleeCseq} BYE`,
          reason,
          `User-Agent: ${calleeAgent}`,
        ]),
        'BYE',
        null,
      );
      t += rng.range(0.5, 3);
      push(
        t,
        true,
        message('SIP/2.0 200 OK', [
          viaReceived(callee, byeBranch),
          calleeFrom,
          calleeTo,
          callIdHdr,
          `CSeq: ${calleeCseq} BYE`,
          `Server: ${callerAgent}`,
        ]),
        null,
        200,
      );
    }
  };

  /** 100 Trying, then (after `delayMs`) a final refusal from the callee, and the caller's ACK. */
  const refused = (
    branch: string,
    cseq: number,
    code: number,
    phrase: string,
    delayMs: [number, number],
    extra: string[] = [],
    reason: SipReason | null = null,
  ) => {
    t += rng.range(1, 10);
    push(t, false, reply(100, 'Trying', branch, cseq, 'INVITE', false), null, 100);
    t += rng.range(delayMs[0], delayMs[1]);
    endMs = t;
    final(code, phrase);
    endReason = reason;
    const headers = reason === null ? extra : [...extra, reasonHeader(reason)];
    push(t, false, reply(code, phrase, branch, cseq, 'INVITE', true, headers), null, code);
    t += rng.range(0.5, 5);
    push(t, true, ackFailure(branch, cseq), 'ACK', null);
  };

  const branch = branchOf();
  const cseq = callerCseq;
  const branches: BranchFacts[] = [{ branch, startAt: 0, finalStatus: null, retransmissions: 0 }];
  push(0, true, invite(branch, cseq), 'INVITE', null);
  let recordOutcome: CallOutcome = 'answered';
  let endedBy: CallEndedBy = 'network';
  switch (s.outcome) {
    case 'answered':
      answeredFlow(branch, cseq);
      break;
    case 'calleeHangup':
      answeredFlow(branch, cseq, { calleeHangsUp: true });
      break;
    case 'reInvite':
      answeredFlow(branch, cseq, { holdThenRefused: true });
      break;
    case 'busy':
    case 'unavailable': {
      t += rng.range(1, 10);
      push(t, false, reply(100, 'Trying', branch, cseq, 'INVITE', false), null, 100);
      t += rng.range(5, 200);
      endMs = t;
      if (s.outcome === 'busy') {
        final(486, 'Busy Here');
        recordOutcome = 'busy';
        endedBy = 'callee';
        push(t, false, reply(486, 'Busy Here', branch, cseq, 'INVITE', true), null, 486);
      } else {
        final(503, 'Service Unavailable');
        recordOutcome = 'failed';
        push(
          t,
          false,
          reply(503, 'Service Unavailable', branch, cseq, 'INVITE', true, ['Retry-After: 60']),
          null,
          503,
        );
      }
      t += rng.range(0.5, 5);
      push(t, true, ackFailure(branch, cseq), 'ACK', null);
      break;
    }
    case 'rejected':
      recordOutcome = 'rejected';
      endedBy = 'callee';
      if (s.ordinal % 2 === 0) {
        // The user sees the call ring and declines it.
        trying180(branch, cseq);
        t += rng.range(1000, 5000);
        endMs = t;
        final(603, 'Decline');
        endReason = Q850.callRejected;
        push(
          t,
          false,
          reply(603, 'Decline', branch, cseq, 'INVITE', true, [reasonHeader(Q850.callRejected)]),
          null,
          603,
        );
        t += rng.range(0.5, 5);
        push(t, true, ackFailure(branch, cseq), 'ACK', null);
      } else {
        refused(branch, cseq, 404, 'Not Found', [5, 200], [], Q850.unallocatedNumber);
      }
      break;
    case 'redirected': {
      recordOutcome = 'redirected';
      endedBy = 'callee';
      // Call forwarding: the callee points at another number and says why (Diversion, RFC 5806).
      const target = `sip:${9000 + rng.int(1000)}@${callee.ipText}:5060`;
      refused(
        branch,
        cseq,
        302,
        'Moved Temporarily',
        [5, 200],
        [`Contact: <${target}>`, `Diversion: <${calleeAor}>;reason=unconditional`],
      );
      break;
    }
    case 'failed':
      recordOutcome = 'failed';
      if (s.ordinal % 2 === 0) {
        refused(branch, cseq, 500, 'Server Internal Error', [5, 200], [], Q850.interworking);
      } else {
        // A PBX whose own INVITE to the user's device went unanswered answers 408 once its Timer B fires.
        const timeout: [number, number] = [TIMER_B_MS, TIMER_B_MS + 20];
        refused(branch, cseq, 408, 'Request Timeout', timeout, [], Q850.recoveryOnTimerExpiry);
      }
      break;
    case 'cancelled': {
      recordOutcome = 'cancelled';
      endedBy = 'caller';
      trying180(branch, cseq);
      t += rng.range(1000, 5000);
      endMs = t;
      hangupBy = 'caller';
      endReason = Q850.normalClearing;
      // CANCEL reuses the INVITE's branch, Request-URI and CSeq number (RFC 3261 9.1).
      push(
        t,
        true,
        message(`CANCEL ${calleeAor} SIP/2.0`, [
          via(caller, branch),
          'Max-Forwards: 70',
          fromHdr,
          toPlain,
          callIdHdr,
          `CSeq: ${cseq} CANCEL`,
          reasonHeader(Q850.normalClearing),
          `User-Agent: ${callerAgent}`,
        ]),
        'CANCEL',
        null,
      );
      t += rng.range(0.5, 3);
      push(t, false, reply(200, 'OK', branch, cseq, 'CANCEL', true), null, 200);
      t += rng.range(0.1, 2);
      final(487, 'Request Terminated');
      push(t, false, reply(487, 'Request Terminated', branch, cseq, 'INVITE', true), null, 487);
      t += rng.range(0.5, 5);
      push(t, true, ackFailure(branch, cseq), 'ACK', null);
      break;
    }
    case 'noAnswer': {
      recordOutcome = 'noAnswer';
      // Nothing answers: the INVITE client transaction resends on Timer A until Timer B fires.
      const text = ladder.events[0].text;
      for (const gap of TIMER_A_MS) {
        t += gap;
        push(t, true, text, 'INVITE', null, true);
      }
      branches[0].retransmissions = TIMER_A_MS.length;
      endMs = TIMER_B_MS;
      break;
    }
    case 'challenged': {
      const realm = callee.ipText;
      const nonce = rng.hex(16);
      // The rejected transaction gets a To tag of its own; the dialog's tag comes with the 180/200.
      const challengeTag = rng.hex(4);
      t += rng.range(1, 10);
      push(
        t,
        false,
        reply(407, 'Proxy Authentication Required', branch, cseq, 'INVITE', challengeTag, [
          `Proxy-Authenticate: Digest realm="${realm}", nonce="${nonce}", algorithm=MD5`,
        ]),
        null,
        407,
      );
      branches[0].finalStatus = 407;
      t += rng.range(0.5, 5);
      push(t, true, ackFailure(branch, cseq, challengeTag), 'ACK', null);
      // Same Call-ID and From tag, new branch, CSeq + 1: the same attempt, now with credentials.
      const ha1 = md5(`${callerUser}:${realm}:${DIGEST_PASSWORD}`);
      const ha2 = md5(`INVITE:${calleeAor}`);
      const auth =
        `Proxy-Authorization: Digest username="${callerUser}", realm="${realm}", nonce="${nonce}", ` +
        `uri="${calleeAor}", response="${md5(`${ha1}:${nonce}:${ha2}`)}", algorithm=MD5`;
      t += rng.range(2, 20);
      const branch2 = branchOf();
      callerCseq = cseq + 1;
      attempts = 2;
      branches.push({ branch: branch2, startAt: t, finalStatus: null, retransmissions: 0 });
      push(t, true, invite(branch2, callerCseq, [auth]), 'INVITE', null);
      answeredFlow(branch2, callerCseq);
      break;
    }
  }
  branches[branches.length - 1].finalStatus = finalStatus;
  if (answerMs !== null) endedBy = hangupBy ?? 'unknown';

  ladder.sorted();
  const truth = legTruth(
    s,
    ladder,
    {
      callId,
      from: callerAor,
      to: calleeAor,
      caller,
      callee,
      fromTag,
      toTag: s.outcome === 'noAnswer' ? null : toTag,
      finalStatus,
      reasonPhrase,
      reason: endReason,
      recordOutcome,
      endedBy,
      hangupBy,
      startAt: 0,
      ringingAt: ringingMs,
      answerAt: answerMs,
      finalAt: finalMs,
      endAt: endMs,
      inviteTransactions: attempts,
      authChallenges: s.outcome === 'challenged' ? 1 : 0,
      reInvites,
      reInvitesRejected,
      hops: [{ from: caller, to: callee, branches }],
    },
    s.outcome,
  );
  return { truths: [truth], events: ladder.events, media: rtp.map((stream) => ({ callId, stream })) };
}
