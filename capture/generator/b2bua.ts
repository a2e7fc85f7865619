/**
 * A call through a B2BUA (a PBX such as Asterisk): the caller's leg A ends at the PBX, which places leg
 * B to the callee with a Call-ID of its own. The PBX names leg A in an `X-CID` header of leg B's INVITE,
 * and every party carries the RFC 7989 Session-ID end to end, so both legs can be linked. The PBX
 * anchors the media: each leg has its own RTP between its two ends.
 */
import type { Host } from './frames.js';
import { type CallPlan, type CallSetup, Ladder, legTruth, newBranch, streamPlan } from './ladder.js';
import type { Rng } from './random.js';
import { RtpStream, type RtpStreamPlan } from './rtp.js';
import {
  ALLOW,
  agentOf,
  message,
  Q850,
  reasonHeader,
  SIP_PORT,
  SUPPORTED,
  sdp,
  via,
  viaReceived,
} from './sip-text.js';

/** RFC 7989's null UUID: the peer's Session-ID is not known yet. */
const NULL_SESSION_UUID = '0'.repeat(32);

/** One dialog between two parties, as both of them write it. */
interface Dialog {
  callId: string;
  /** The INVITE's sender and receiver. */
  uac: Host;
  uas: Host;
  requestUri: string;
  /** From and To address-of-record URIs, and From and To as written (name-addr, without tags). */
  fromAor: string;
  toAor: string;
  fromUri: string;
  toUri: string;
  fromTag: string;
  toTag: string;
  uacContact: string;
  uasContact: string;
  uacAgent: string;
  uasAgent: string;
  /** RFC 7989 UUIDs of the caller's and callee's side (passed through unchanged by the PBX). */
  uacSession: string;
  uasSession: string;
}

function sessionId(local: string, remote: string): string {
  return `Session-ID: ${local};remote=${remote}`;
}

/** A request inside (or opening) the dialog, from either side. */
function request(
  d: Dialog,
  fromUac: boolean,
  method: string,
  branch: string,
  cseq: number,
  extra: string[],
  body = '',
  opening = method === 'INVITE',
): string {
  const requestUri = opening ? d.requestUri : fromUac ? d.uasContact : d.uacContact;
  const from = fromUac ? `From: ${d.fromUri};tag=${d.fromTag}` : `From: ${d.toUri};tag=${d.toTag}`;
  const to = fromUac
    ? `To: ${d.toUri}${opening ? '' : `;tag=${d.toTag}`}`
    : `To: ${d.fromUri};tag=${d.fromTag}`;
  const remoteSession = fromUac ? (opening ? NULL_SESSION_UUID : d.uasSession) : d.uacSession;
  return message(
    `${method} ${requestUri} SIP/2.0`,
    [
      via(fromUac ? d.uac : d.uas, branch),
      'Max-Forwards: 70',
      from,
      to,
      `Call-ID: ${d.callId}`,
      `CSeq: ${cseq} ${method}`,
      ...extra,
      sessionId(fromUac ? d.uacSession : d.uasSession, remoteSession),
      `User-Agent: ${fromUac ? d.uacAgent : d.uasAgent}`,
    ],
    body,
  );
}

/** A response to a request of either side; `tagged` says whether To carries the UAS's tag yet. */
function response(
  d: Dialog,
  toUacRequest: boolean,
  code: number,
  phrase: string,
  branch: string,
  cseq: number,
  method: string,
  tagged: boolean,
  extra: string[] = [],
  body = '',
  sessionOf: 'responder' | 'none' = 'responder',
): string {
  const requester = toUacRequest ? d.uac : d.uas;
  const from = toUacRequest ? `From: ${d.fromUri};tag=${d.fromTag}` : `From: ${d.toUri};tag=${d.toTag}`;
  const to = toUacRequest
    ? `To: ${d.toUri}${tagged ? `;tag=${d.toTag}` : ''}`
    : `To: ${d.fromUri};tag=${d.fromTag}`;
  const local = toUacRequest ? d.uasSession : d.uacSession;
  const remote = toUacRequest ? d.uacSession : d.uasSession;
  return message(
    `SIP/2.0 ${code} ${phrase}`,
    [
      viaReceived(requester, branch),
      from,
      to,
      `Call-ID: ${d.callId}`,
      `CSeq: ${cseq} ${method}`,
      ...extra,
      // RFC 7989 §9: an intermediary's own 100 Trying has the null UUID as its local one.
      sessionId(sessionOf === 'none' ? NULL_SESSION_UUID : local, remote),
      `Server: ${toUacRequest ? d.uasAgent : d.uacAgent}`,
    ],
    body,
  );
}

/** Leg A (caller → PBX, the caller's Call-ID) and leg B (PBX → callee, a new Call-ID), both answered. */
export function planB2buaCall(s: CallSetup, rng: Rng): CallPlan {
  const { caller, callee } = s;
  const pbx = s.middle;
  const legB = s.legB;
  if (pbx === null || legB === null) throw new Error('planB2buaCall: a b2bua call needs a PBX and leg B');
  const callerUser = String(1000 + caller.index * 100 + rng.int(100));
  const calleeUser = String(1000 + callee.index * 100 + rng.int(100));
  const callerSession = rng.hex(16);
  const calleeSession = rng.hex(16);
  const pbxAgent = agentOf(pbx);
  // The PBX keeps the caller's identity on leg B, as Asterisk passes the caller ID on.
  const callerAor = `sip:${callerUser}@${pbx.ipText}`;
  // The caller is registered at the PBX and dials a number there; the PBX then calls the callee's device.
  const a: Dialog = {
    callId: s.callId,
    uac: caller,
    uas: pbx,
    requestUri: `sip:${calleeUser}@${pbx.ipText}`,
    fromAor: callerAor,
    toAor: `sip:${calleeUser}@${pbx.ipText}`,
    fromUri: `"${callerUser}" <${callerAor}>`,
    toUri: `<sip:${calleeUser}@${pbx.ipText}>`,
    fromTag: rng.hex(4),
    toTag: rng.hex(4),
    uacContact: `sip:${callerUser}@${caller.ipText}:${SIP_PORT}`,
    uasContact: `sip:${calleeUser}@${pbx.ipText}:${SIP_PORT}`,
    uacAgent: agentOf(caller),
    uasAgent: pbxAgent,
    uacSession: callerSession,
    uasSession: calleeSession,
  };
  const b: Dialog = {
    callId: legB.callId,
    uac: pbx,
    uas: callee,
    requestUri: `sip:${calleeUser}@${callee.ipText}:${SIP_PORT}`,
    fromAor: callerAor,
    toAor: `sip:${calleeUser}@${callee.ipText}`,
    fromUri: a.fromUri,
    toUri: `<sip:${calleeUser}@${callee.ipText}>`,
    fromTag: rng.hex(4),
    toTag: rng.hex(4),
    uacContact: `sip:${callerUser}@${pbx.ipText}:${SIP_PORT}`,
    uasContact: `sip:${calleeUser}@${callee.ipText}:${SIP_PORT}`,
    uacAgent: pbxAgent,
    uasAgent: agentOf(callee),
    uacSession: callerSession,
    uasSession: calleeSession,
  };
  const cseqA = 1 + rng.int(100);
  const cseqB = 1 + rng.int(100);
  const pbxCseqA = 1 + rng.int(100);
  const calleeCseq = 1 + rng.int(100);
  const session = () => 1000000 + rng.int(9000000);
  const offerA = sdp(callerUser, caller, session(), s.callerRtpPort, s.codec, s.ptimeMs);
  const answerA = sdp(calleeUser, pbx, session(), legB.rtpPorts[0], s.codec, s.ptimeMs);
  const offerB = sdp(callerUser, pbx, session(), legB.rtpPorts[1], s.codec, s.ptimeMs);
  const answerB = sdp(calleeUser, callee, session(), s.calleeRtpPort, s.codec, s.ptimeMs);
  const dialogHeaders = (contact: string) => [`Contact: <${contact}>`, ALLOW, SUPPORTED];

  const ladder = new Ladder(s.startNs);
  let t = 0;
  const branchA = newBranch(rng);
  const branchB = newBranch(rng);
  ladder.send(
    t,
    caller,
    pbx,
    a.callId,
    request(a, true, 'INVITE', branchA, cseqA, dialogHeaders(a.uacContact), offerA),
    'INVITE',
    null,
  );
  t += rng.range(1, 5);
  ladder.send(
    t,
    pbx,
    caller,
    a.callId,
    response(a, true, 100, 'Trying', branchA, cseqA, 'INVITE', false, [], '', 'none'),
    null,
    100,
  );
  t += rng.range(0.5, 3);
  const startB = t;
  ladder.send(
    t,
    pbx,
    callee,
    b.callId,
    request(
      b,
      true,
      'INVITE',
      branchB,
      cseqB,
      [...dialogHeaders(b.uacContact), `X-CID: ${a.callId}`],
      offerB,
    ),
    'INVITE',
    null,
  );
  t += rng.range(1, 10);
  ladder.send(
    t,
    callee,
    pbx,
    b.callId,
    response(b, true, 100, 'Trying', branchB, cseqB, 'INVITE', false),
    null,
    100,
  );
  t += rng.range(20, 300);
  const ringingB = t;
  ladder.send(
    t,
    callee,
    pbx,
    b.callId,
    response(b, true, 180, 'Ringing', branchB, cseqB, 'INVITE', true, [`Contact: <${b.uasContact}>`]),
    null,
    180,
  );
  t += rng.range(0.5, 3);
  const ringingA = t;
  ladder.send(
    t,
    pbx,
    caller,
    a.callId,
    response(a, true, 180, 'Ringing', branchA, cseqA, 'INVITE', true, [`Contact: <${a.uasContact}>`]),
    null,
    180,
  );
  t += rng.range(1000, 4000);
  const answeredB = t;
  ladder.send(
    t,
    callee,
    pbx,
    b.callId,
    response(b, true, 200, 'OK', branchB, cseqB, 'INVITE', true, dialogHeaders(b.uasContact), answerB),
    null,
    200,
  );
  t += rng.range(0.3, 2);
  const ackB = t;
  ladder.send(t, pbx, callee, b.callId, request(b, true, 'ACK', newBranch(rng), cseqB, []), 'ACK', null);
  t += rng.range(0.3, 2);
  const answeredA = t;
  ladder.send(
    t,
    pbx,
    caller,
    a.callId,
    response(a, true, 200, 'OK', branchA, cseqA, 'INVITE', true, dialogHeaders(a.uasContact), answerA),
    null,
    200,
  );
  t += rng.range(0.5, 5);
  const ackA = t;
  ladder.send(t, caller, pbx, a.callId, request(a, true, 'ACK', newBranch(rng), cseqA, []), 'ACK', null);

  const media: CallPlan['media'] = [];
  let byeAt = ackA + s.talkMs;
  if (s.rtpEnabled && Math.floor(s.talkMs / s.ptimeMs) > 0) {
    // Each side starts sending once it has the other's SDP: after its 200 (answerer) or ACK (offerer).
    const plan = (src: Host, dst: Host, srcPort: number, dstPort: number, ssrc: number, from: number) =>
      streamPlan(s, ladder, src, dst, srcPort, dstPort, ssrc, from);
    const streams: [string, RtpStreamPlan][] = [
      [a.callId, plan(caller, pbx, s.callerRtpPort, legB.rtpPorts[0], s.ssrcs[0], ackA + rng.range(1, 15))],
      [
        a.callId,
        plan(pbx, caller, legB.rtpPorts[0], s.callerRtpPort, legB.ssrcs[0], answeredA + rng.range(2, 20)),
      ],
      [
        b.callId,
        plan(pbx, callee, legB.rtpPorts[1], s.calleeRtpPort, legB.ssrcs[1], ackB + rng.range(1, 15)),
      ],
      [
        b.callId,
        plan(callee, pbx, s.calleeRtpPort, legB.rtpPorts[1], s.ssrcs[1], answeredB + rng.range(2, 20)),
      ],
    ];
    for (const [callId, stream] of streams) media.push({ callId, stream });
    const lastNs = Math.max(...streams.map(([, p]) => RtpStream.lastArrival(p)));
    byeAt = (lastNs - s.startNs) / 1e6 + rng.range(5, 40);
  }

  // A session refresh (RFC 4028) half way through the talk: the PBX re-offers the same SDP on each
  // leg (leg B as its UAC, leg A as its UAS), which each far end accepts and the PBX acknowledges.
  let nextCseqA = pbxCseqA;
  let nextCseqB = cseqB + 1;
  if (s.sessionRefresh) {
    t = ackA + s.talkMs / 2;
    const refresh = (d: Dialog, fromUac: boolean, cseq: number, offer: string, answer: string) => {
      const branch = newBranch(rng);
      const [src, dst] = fromUac ? [d.uac, d.uas] : [d.uas, d.uac];
      const contact = fromUac ? d.uacContact : d.uasContact;
      const headers = [...dialogHeaders(contact), 'Session-Expires: 1800;refresher=uas'];
      ladder.send(
        t,
        src,
        dst,
        d.callId,
        request(d, fromUac, 'INVITE', branch, cseq, headers, offer, false),
        'INVITE',
        null,
      );
      t += rng.range(5, 40);
      const answerContact = fromUac ? d.uasContact : d.uacContact;
      ladder.send(
        t,
        dst,
        src,
        d.callId,
        response(d, fromUac, 200, 'OK', branch, cseq, 'INVITE', true, dialogHeaders(answerContact), answer),
        null,
        200,
      );
      t += rng.range(0.3, 2);
      ladder.send(
        t,
        src,
        dst,
        d.callId,
        request(d, fromUac, 'ACK', newBranch(rng), cseq, [], '', false),
        'ACK',
        null,
      );
      t += rng.range(0.3, 2);
    };
    refresh(b, true, nextCseqB++, offerB, answerB);
    refresh(a, false, nextCseqA++, answerA, offerA);
  }

  // The PBX answers the BYE on one leg and passes the hangup on to the other with the same cause.
  t = byeAt;
  const reason = reasonHeader(Q850.normalClearing);
  const callerHangsUp = rng.next() < 0.5;
  const bye = (d: Dialog, fromUac: boolean, cseq: number) => {
    const byeBranch = newBranch(rng);
    const [src, dst] = fromUac ? [d.uac, d.uas] : [d.uas, d.uac];
    ladder.send(t, src, dst, d.callId, request(d, fromUac, 'BYE', byeBranch, cseq, [reason]), 'BYE', null);
    const sentAt = t;
    t += rng.range(0.5, 3);
    ladder.send(
      t,
      dst,
      src,
      d.callId,
      response(d, fromUac, 200, 'OK', byeBranch, cseq, 'BYE', true),
      null,
      200,
    );
    t += rng.range(0.5, 3);
    return sentAt;
  };
  let endA: number;
  let endB: number;
  if (callerHangsUp) {
    endA = bye(a, true, cseqA + 1);
    endB = bye(b, true, nextCseqB);
  } else {
    endB = bye(b, false, calleeCseq);
    endA = bye(a, false, nextCseqA);
  }

  ladder.sorted();
  const hangupBy = callerHangsUp ? 'caller' : 'callee';
  const common = {
    finalStatus: 200,
    reasonPhrase: 'OK',
    reason: Q850.normalClearing,
    recordOutcome: 'answered',
    endedBy: hangupBy,
    hangupBy,
    inviteTransactions: 1,
    reInvites: s.sessionRefresh ? 1 : 0,
  } as const;
  const legTruthOf = (
    d: Dialog,
    leg: 'a' | 'b',
    at: { start: number; ringing: number; answer: number; end: number },
  ) =>
    legTruth(
      s,
      ladder,
      {
        ...common,
        callId: d.callId,
        from: d.fromAor,
        to: d.toAor,
        caller: d.uac,
        callee: d.uas,
        fromTag: d.fromTag,
        toTag: d.toTag,
        startAt: at.start,
        ringingAt: at.ringing,
        answerAt: at.answer,
        finalAt: at.answer,
        endAt: at.end,
        linkedCallIds: [leg === 'a' ? b.callId : a.callId],
        leg,
        edgeCallId: a.callId,
        linkedBy: leg === 'b' ? 'x-cid' : null,
        // Both INVITEs carry the caller's UUID: the PBX passes the Session-ID through.
        correlation: { xCid: leg === 'b' ? a.callId : null, sessionId: callerSession, icid: null },
        hops: [
          {
            from: d.uac,
            to: d.uas,
            branches: [
              {
                branch: leg === 'a' ? branchA : branchB,
                startAt: at.start,
                finalStatus: 200,
                retransmissions: 0,
              },
            ],
          },
        ],
      },
      s.outcome,
    );
  return {
    truths: [
      legTruthOf(a, 'a', { start: 0, ringing: ringingA, answer: answeredA, end: endA }),
      legTruthOf(b, 'b', { start: startB, ringing: ringingB, answer: answeredB, end: endB }),
    ],
    events: ladder.events,
    media,
  };
}
