import { createHash } from 'node:crypto';
import type { Host } from './frames.js';
import type { Rng } from './random.js';
import { type Codec, RtpStream, type RtpStreamPlan, TELEPHONE_EVENT_PT } from './rtp.js';

export type Outcome = 'answered' | 'busy' | 'cancelled' | 'unavailable' | 'noAnswer' | 'challenged';
export const OUTCOMES: readonly Outcome[] = [
  'answered',
  'busy',
  'cancelled',
  'unavailable',
  'noAnswer',
  'challenged',
];

/** One SIP message as the mirror sees it. */
export interface SipEvent {
  /** Capture time, ns relative to the capture start. */
  time: number;
  fromCaller: boolean;
  text: string;
  /** Request method, or null for a response. */
  method: string | null;
  /** Response status code, or null for a request. */
  code: number | null;
  /** A UDP retransmission of an earlier request (same bytes, same branch and CSeq). */
  resent: boolean;
}

export interface CallTruth {
  callId: string;
  /** From / To address-of-record URIs of the initial INVITE. */
  from: string;
  to: string;
  callerVm: string;
  calleeVm: string;
  outcome: Outcome;
  /** Final response to the last INVITE; null when none came (timeout). */
  finalStatus: number | null;
  /** Epoch seconds (as written to the capture) of the first INVITE. */
  start: number;
  /** First 18x (post-dial delay ends here); null when none was sent. */
  ringing: number | null;
  /** 200 OK to INVITE; null when not answered. */
  answer: number | null;
  /** BYE (answered), CANCEL (cancelled), final response (busy, unavailable) or Timer B expiry (32 s). */
  end: number;
  hangupBy: 'caller' | 'callee' | null;
  /** INVITE transactions (2 for a 407-challenged call); retransmissions are not new attempts. */
  attempts: number;
  /** SIP messages of this call written to the capture, retransmissions included. */
  messages: number;
}

/** Everything fixed at the moment a call starts; the generator turns it into sources. */
export interface CallPlan {
  truth: CallTruth;
  events: SipEvent[];
  rtp: RtpStreamPlan[];
}

export interface CallSetup {
  callId: string;
  startNs: number;
  outcome: Outcome;
  caller: Host;
  callee: Host;
  callerRtpPort: number;
  calleeRtpPort: number;
  talkMs: number;
  codec: Codec;
  ptimeMs: number;
  rtpEnabled: boolean;
  jitterMs: number;
  lossRate: number;
  reorderRate: number;
  vlan: number | null;
  /** Distinct SSRCs for the two directions. */
  ssrcs: [number, number];
  toEpoch: (ns: number) => number;
}

/** Product strings seen on real VoIP VMs; each VM keeps one, as a real deployment would. */
const AGENTS = [
  'Asterisk PBX 18.20.0',
  'FreeSWITCH-mod_sofia/1.10.11-release~64bit',
  'Linphone-Desktop/5.2.0 (belle-sip/5.2.0)',
  'Yealink SIP-T46S 66.86.0.15',
  'PolycomVVX-VVX_411-UA/6.4.3.5018',
  'Zoiper rv2.10.19.7',
];

export function agentOf(host: Host): string {
  return AGENTS[(host.index - 1) % AGENTS.length];
}

const ALLOW = 'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY';
/** Timer A doubles from T1 = 500 ms: resends at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B = 64·T1. */
const TIMER_A_MS = [500, 1000, 2000, 4000, 8000, 16000];
const TIMER_B_MS = 32000;
const DIGEST_PASSWORD = 'callscope';

function md5(s: string): string {
  return createHash('md5').update(s).digest('hex');
}

function message(startLine: string, headers: string[], body = '', contentType = 'application/sdp'): string {
  const lines = [startLine, ...headers];
  if (body) lines.push(`Content-Type: ${contentType}`);
  // SIP bodies here are ASCII, so characters are bytes.
  lines.push(`Content-Length: ${body.length}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

function sdp(user: string, host: Host, sessId: number, port: number, codec: Codec, ptimeMs: number): string {
  const pt = codec.payloadType;
  const lines = [
    'v=0',
    `o=${user} ${sessId} ${sessId} IN IP4 ${host.ipText}`,
    's=call',
    `c=IN IP4 ${host.ipText}`,
    't=0 0',
    `m=audio ${port} RTP/AVP ${pt} ${TELEPHONE_EVENT_PT}`,
    `a=rtpmap:${pt} ${codec.name}/${codec.clockRate}`,
    ...codec.fmtp,
    `a=rtpmap:${TELEPHONE_EVENT_PT} telephone-event/8000`,
    `a=fmtp:${TELEPHONE_EVENT_PT} 0-16`,
    `a=ptime:${ptimeMs}`,
    'a=sendrecv',
  ];
  return `${lines.join('\r\n')}\r\n`;
}

/** Builds the complete SIP ladder and media plan of one call. */
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
  const offer = sdp(callerUser, caller, 1000000 + rng.int(9000000), s.callerRtpPort, s.codec, s.ptimeMs);
  const answerSdp = sdp(calleeUser, callee, 1000000 + rng.int(9000000), s.calleeRtpPort, s.codec, s.ptimeMs);

  const events: SipEvent[] = [];
  let t = 0; // ms since call start
  const at = (ms: number) => s.startNs + Math.round(ms * 1e6);
  const push = (
    ms: number,
    fromCaller: boolean,
    text: string,
    method: string | null,
    code: number | null,
    resent = false,
  ) => {
    events.push({ time: at(ms), fromCaller, text, method, code, resent });
  };
  const via = (host: Host, branch: string) => `Via: SIP/2.0/UDP ${host.ipText}:5060;branch=${branch};rport`;
  // The UAS fills rport and received (RFC 3581) when answering.
  const viaReply = (host: Host, branch: string) =>
    `Via: SIP/2.0/UDP ${host.ipText}:5060;branch=${branch};rport=5060;received=${host.ipText}`;
  const newBranch = () => `z9hG4bK${rng.hex(8)}`;

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
        'Supported: replaces, timer',
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
        viaReply(caller, branch),
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
  const ackFailure = (branch: string, cseq: number, tag = toTag) =>
    message(`ACK ${calleeAor} SIP/2.0`, [
      via(caller, branch),
      'Max-Forwards: 70',
      fromHdr,
      `${toPlain};tag=${tag}`,
      callIdHdr,
      `CSeq: ${cseq} ACK`,
      `User-Agent: ${callerAgent}`,
    ]);

  let finalStatus: number | null = null;
  let ringingMs: number | null = null;
  let answerMs: number | null = null;
  let endMs = 0;
  let hangupBy: CallTruth['hangupBy'] = null;
  let attempts = 1;
  const rtp: RtpStreamPlan[] = [];

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

  /** INVITE (already sent at `t`) → 100 → 180 → 200 → ACK → media → BYE → 200. */
  const answeredFlow = (branch: string, cseq: number) => {
    trying180(branch, cseq);
    t += rng.range(1000, 4000);
    answerMs = t;
    finalStatus = 200;
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
        [`Contact: <${calleeContact}>`, ALLOW, 'Supported: replaces, timer'],
        answerSdp,
      ),
      null,
      200,
    );
    const t200 = t;
    t += rng.range(0.5, 5);
    push(
      t,
      true,
      message(`ACK ${calleeContact} SIP/2.0`, [
        via(caller, newBranch()),
        'Max-Forwards: 70',
        fromHdr,
        toTagged,
        callIdHdr,
        `CSeq: ${cseq} ACK`,
        `User-Agent: ${callerAgent}`,
      ]),
      'ACK',
      null,
    );
    const tAck = t;
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
      const fromCallee: RtpStreamPlan = stream(
        callee,
        caller,
        s.calleeRtpPort,
        s.callerRtpPort,
        s.ssrcs[1],
        t200 + rng.range(2, 20),
      );
      const fromCaller: RtpStreamPlan = stream(
        caller,
        callee,
        s.callerRtpPort,
        s.calleeRtpPort,
        s.ssrcs[0],
        tAck + rng.range(1, 15),
      );
      rtp.push(fromCaller, fromCallee);
      const lastNs = Math.max(RtpStream.lastArrival(fromCaller), RtpStream.lastArrival(fromCallee));
      byeMs = (lastNs - s.startNs) / 1e6 + rng.range(5, 40);
    }
    t = byeMs;
    endMs = t;
    const reason = 'Reason: Q.850;cause=16;text="Normal call clearing"';
    const byeBranch = newBranch();
    if (rng.next() < 0.5) {
      hangupBy = 'caller';
      callerCseq = cseq + 1;
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
          viaReply(callee, byeBranch),
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

  const branch = newBranch();
  const cseq = callerCseq;
  push(0, true, invite(branch, cseq), 'INVITE', null);
  switch (s.outcome) {
    case 'answered':
      answeredFlow(branch, cseq);
      break;
    case 'busy':
    case 'unavailable': {
      t += rng.range(1, 10);
      push(t, false, reply(100, 'Trying', branch, cseq, 'INVITE', false), null, 100);
      t += rng.range(5, 200);
      endMs = t;
      if (s.outcome === 'busy') {
        finalStatus = 486;
        push(t, false, reply(486, 'Busy Here', branch, cseq, 'INVITE', true), null, 486);
      } else {
        finalStatus = 503;
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
    case 'cancelled': {
      trying180(branch, cseq);
      t += rng.range(1000, 5000);
      endMs = t;
      hangupBy = 'caller';
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
          'Reason: Q.850;cause=16;text="Normal call clearing"',
          `User-Agent: ${callerAgent}`,
        ]),
        'CANCEL',
        null,
      );
      t += rng.range(0.5, 3);
      push(t, false, reply(200, 'OK', branch, cseq, 'CANCEL', true), null, 200);
      t += rng.range(0.1, 2);
      finalStatus = 487;
      push(t, false, reply(487, 'Request Terminated', branch, cseq, 'INVITE', true), null, 487);
      t += rng.range(0.5, 5);
      push(t, true, ackFailure(branch, cseq), 'ACK', null);
      break;
    }
    case 'noAnswer': {
      // Nothing answers: the INVITE client transaction resends on Timer A until Timer B fires.
      const text = events[0].text;
      for (const gap of TIMER_A_MS) {
        t += gap;
        push(t, true, text, 'INVITE', null, true);
      }
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
      t += rng.range(0.5, 5);
      push(t, true, ackFailure(branch, cseq, challengeTag), 'ACK', null);
      // Same Call-ID and From tag, new branch, CSeq + 1: the same attempt, now with credentials.
      const ha1 = md5(`${callerUser}:${realm}:${DIGEST_PASSWORD}`);
      const ha2 = md5(`INVITE:${calleeAor}`);
      const auth =
        `Proxy-Authorization: Digest username="${callerUser}", realm="${realm}", nonce="${nonce}", ` +
        `uri="${calleeAor}", response="${md5(`${ha1}:${nonce}:${ha2}`)}", algorithm=MD5`;
      t += rng.range(2, 20);
      const branch2 = newBranch();
      callerCseq = cseq + 1;
      attempts = 2;
      push(t, true, invite(branch2, callerCseq, [auth]), 'INVITE', null);
      answeredFlow(branch2, callerCseq);
      break;
    }
  }

  events.sort((a, b) => a.time - b.time);
  const epochOrNull = (ms: number | null) => (ms === null ? null : s.toEpoch(at(ms)));
  return {
    truth: {
      callId,
      from: callerAor,
      to: calleeAor,
      callerVm: caller.name,
      calleeVm: callee.name,
      outcome: s.outcome,
      finalStatus,
      start: s.toEpoch(at(0)),
      ringing: epochOrNull(ringingMs),
      answer: epochOrNull(answerMs),
      end: s.toEpoch(at(endMs)),
      hangupBy,
      attempts,
      messages: events.length,
    },
    events,
    rtp,
  };
}
