/**
 * A call through a stateful, record-routing proxy (Kamailio's t_relay with record_route): one Call-ID,
 * two hops. The proxy answers the caller's INVITE with its own 100 Trying, forwards requests with its Via
 * on top and Max-Forwards one lower, strips its Via from responses on the way back, and stays in the
 * dialog's route set, so the mirror sees every end-to-end message twice. With failover, the proxy's first
 * destination answers 503; the proxy ACKs it and tries a second destination in a new branch of the same
 * transaction. The media goes directly between caller and callee.
 */
import type { Host } from './frames.js';
import {
  type BranchFacts,
  type CallPlan,
  type CallSetup,
  Ladder,
  legTruth,
  newBranch,
  streamPlan,
} from './ladder.js';
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

/** Splits a message into its first line, its headers and its body. */
function parts(text: string): { first: string; headers: string[]; body: string } {
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end).split('\r\n');
  return { first: lines[0], headers: lines.slice(1), body: text.slice(end + 4) };
}

/** The message rebuilt with new headers (Content-Type and Content-Length are written again). */
function rebuilt(first: string, headers: string[], body: string): string {
  return message(
    first,
    headers.filter((h) => !/^Content-(Type|Length):/.test(h)),
    body,
  );
}

/** Plans a proxied call; with `s.firstDestination` set, the proxy's first branch fails over. */
export function planProxiedCall(s: CallSetup, rng: Rng): CallPlan {
  const { caller, callee, callId } = s;
  const proxy = s.middle;
  if (proxy === null) throw new Error('planProxiedCall: a proxied call needs a proxy');
  const failed = s.firstDestination;
  const callerUser = String(1000 + caller.index * 100 + rng.int(100));
  const calleeUser = String(1000 + callee.index * 100 + rng.int(100));
  // Both users are registered at the proxy: their addresses of record are in its domain.
  const callerAor = `sip:${callerUser}@${proxy.ipText}`;
  const calleeAor = `sip:${calleeUser}@${proxy.ipText}`;
  const callerContact = `sip:${callerUser}@${caller.ipText}:${SIP_PORT}`;
  const contactAt = (h: Host) => `sip:${calleeUser}@${h.ipText}:${SIP_PORT}`;
  const calleeContact = contactAt(callee);
  const fromTag = rng.hex(4);
  const toTag = rng.hex(4);
  const failedTag = rng.hex(4);
  const fromHdr = `From: "${callerUser}" <${callerAor}>;tag=${fromTag}`;
  const toPlain = `To: <${calleeAor}>`;
  const toTagged = `${toPlain};tag=${toTag}`;
  const callIdHdr = `Call-ID: ${callId}`;
  const callerAgent = agentOf(caller);
  const callerCseq = 1 + rng.int(100);
  const calleeCseq = 1 + rng.int(100);
  const offer = sdp(callerUser, caller, 1000000 + rng.int(9000000), s.callerRtpPort, s.codec, s.ptimeMs);
  const answer = sdp(calleeUser, callee, 1000000 + rng.int(9000000), s.calleeRtpPort, s.codec, s.ptimeMs);
  const recordRoute = `Record-Route: <sip:${proxy.ipText};lr>`;
  const route = `Route: <sip:${proxy.ipText};lr>`;
  // Kamailio's branches: one per transaction, numbered per destination tried (.0, .1, ...).
  const proxyBranch = () => `z9hG4bK${rng.hex(2)}.${rng.hex(16)}`;
  const proxyVia = (branch: string) => `Via: SIP/2.0/UDP ${proxy.ipText}:${SIP_PORT};branch=${branch}`;

  const ladder = new Ladder(s.startNs);
  let t = 0;
  // What the proxy forwards or relays is a copy of a message already on the wire: the record counts it once.
  /** The proxy forwards a request: its Via on top, the sender's completed, Route to itself removed. */
  const forward = (
    text: string,
    sender: Host,
    branch: string,
    requestUri?: string,
    extraTop: string[] = [],
  ) => {
    const { first, headers, body } = parts(text);
    const [method, uri, version] = first.split(' ');
    const out: string[] = [...extraTop, proxyVia(branch)];
    for (const h of headers) {
      if (h.startsWith('Via: ')) {
        const m = /branch=([^;]+)/.exec(h);
        out.push(viaReceived(sender, m ? m[1] : ''));
      } else if (h === route) {
      } else if (h.startsWith('Max-Forwards: ')) {
        out.push(`Max-Forwards: ${Number(h.slice(14)) - 1}`);
      } else out.push(h);
    }
    return rebuilt(`${method} ${requestUri ?? uri} ${version}`, out, body);
  };
  /** The proxy relays a response: its own Via (the top one) removed. */
  const relayResponse = (text: string) => {
    const { first, headers, body } = parts(text);
    const top = headers.findIndex((h) => h.startsWith('Via: '));
    return rebuilt(
      first,
      headers.filter((_, i) => i !== top),
      body,
    );
  };
  /** A destination's response to a forwarded request: the request's Via stack, then the rest. */
  const answerForwarded = (
    forwarded: string,
    from: Host,
    code: number,
    phrase: string,
    toHeader: string,
    extra: string[] = [],
    body = '',
  ) => {
    const { headers } = parts(forwarded);
    const pick = (name: string) => headers.find((h) => h.startsWith(name)) as string;
    return message(
      `SIP/2.0 ${code} ${phrase}`,
      [
        ...headers.filter((h) => h.startsWith('Via: ')),
        ...extra.filter((h) => h.startsWith('Record-Route: ')),
        pick('From: '),
        toHeader,
        callIdHdr,
        pick('CSeq: '),
        ...extra.filter((h) => !h.startsWith('Record-Route: ')),
        `Server: ${agentOf(from)}`,
      ],
      body,
    );
  };

  const callerBranch = newBranch(rng);
  const invite = message(
    `INVITE ${calleeAor} SIP/2.0`,
    [
      via(caller, callerBranch),
      'Max-Forwards: 70',
      fromHdr,
      toPlain,
      callIdHdr,
      `CSeq: ${callerCseq} INVITE`,
      `Contact: <${callerContact}>`,
      `User-Agent: ${callerAgent}`,
      ALLOW,
      SUPPORTED,
    ],
    offer,
  );
  ladder.send(t, caller, proxy, callId, invite, 'INVITE', null);
  t += rng.range(0.2, 2);
  ladder.send(
    t,
    proxy,
    caller,
    callId,
    message('SIP/2.0 100 Trying', [
      viaReceived(caller, callerBranch),
      fromHdr,
      toPlain,
      callIdHdr,
      `CSeq: ${callerCseq} INVITE`,
      `Server: ${agentOf(proxy)}`,
    ]),
    null,
    100,
  );

  const inviteTx = proxyBranch();
  const farBranches: BranchFacts[] = [];
  /** The proxy's INVITE to one destination, which answers 100 Trying. */
  const tryDestination = (dest: Host) => {
    t += rng.range(0.1, 1);
    const branch = `${inviteTx}.${farBranches.length}`;
    farBranches.push({ branch, to: dest, startAt: t, finalStatus: null, retransmissions: 0 });
    const forwarded = forward(invite, caller, branch, contactAt(dest), [recordRoute]);
    ladder.send(t, proxy, dest, callId, forwarded, 'INVITE', null, false, true);
    t += rng.range(1, 10);
    ladder.send(t, dest, proxy, callId, answerForwarded(forwarded, dest, 100, 'Trying', toPlain), null, 100);
    return forwarded;
  };
  if (failed !== null) {
    const forwarded = tryDestination(failed);
    t += rng.range(5, 200);
    ladder.send(
      t,
      failed,
      proxy,
      callId,
      answerForwarded(forwarded, failed, 503, 'Service Unavailable', `${toPlain};tag=${failedTag}`, [
        'Retry-After: 30',
        reasonHeader(Q850.noCircuitAvailable),
      ]),
      null,
      503,
    );
    farBranches[0].finalStatus = 503;
    // The proxy's client transaction ACKs the failure hop by hop (RFC 3261 17.1.1.3) and tries the next.
    t += rng.range(0.1, 1);
    ladder.send(
      t,
      proxy,
      failed,
      callId,
      message(`ACK ${contactAt(failed)} SIP/2.0`, [
        proxyVia(farBranches[0].branch),
        'Max-Forwards: 70',
        fromHdr,
        `${toPlain};tag=${failedTag}`,
        callIdHdr,
        `CSeq: ${callerCseq} ACK`,
      ]),
      'ACK',
      null,
    );
  }
  const forwarded = tryDestination(callee);
  const dialogExtra = [recordRoute, `Contact: <${calleeContact}>`];
  t += rng.range(20, 300);
  const ringingText = answerForwarded(forwarded, callee, 180, 'Ringing', toTagged, dialogExtra);
  ladder.send(t, callee, proxy, callId, ringingText, null, 180);
  t += rng.range(0.1, 1);
  const ringing = t;
  ladder.send(t, proxy, caller, callId, relayResponse(ringingText), null, 180, false, true);
  t += rng.range(1000, 4000);
  const calleeAnswered = t;
  const okText = answerForwarded(
    forwarded,
    callee,
    200,
    'OK',
    toTagged,
    [...dialogExtra, ALLOW, SUPPORTED],
    answer,
  );
  ladder.send(t, callee, proxy, callId, okText, null, 200);
  farBranches[farBranches.length - 1].finalStatus = 200;
  t += rng.range(0.1, 1);
  const answered = t;
  ladder.send(t, proxy, caller, callId, relayResponse(okText), null, 200, false, true);
  // The ACK follows the route set: to the proxy (Route), which forwards it statelessly to the Contact.
  t += rng.range(0.5, 5);
  const ackCaller = t;
  const inDialog = (method: string, branch: string, cseq: number, extra: string[] = []) =>
    message(`${method} ${calleeContact} SIP/2.0`, [
      via(caller, branch),
      route,
      'Max-Forwards: 70',
      fromHdr,
      toTagged,
      callIdHdr,
      `CSeq: ${cseq} ${method}`,
      ...extra,
      `User-Agent: ${callerAgent}`,
    ]);
  const ack = inDialog('ACK', newBranch(rng), callerCseq);
  ladder.send(t, caller, proxy, callId, ack, 'ACK', null);
  t += rng.range(0.1, 1);
  ladder.send(t, proxy, callee, callId, forward(ack, caller, `${proxyBranch()}.0`), 'ACK', null, false, true);

  const media: CallPlan['media'] = [];
  let byeAt = ackCaller + s.talkMs;
  if (s.rtpEnabled && Math.floor(s.talkMs / s.ptimeMs) > 0) {
    const streams: RtpStreamPlan[] = [
      streamPlan(
        s,
        ladder,
        caller,
        callee,
        s.callerRtpPort,
        s.calleeRtpPort,
        s.ssrcs[0],
        ackCaller + rng.range(1, 15),
      ),
      streamPlan(
        s,
        ladder,
        callee,
        caller,
        s.calleeRtpPort,
        s.callerRtpPort,
        s.ssrcs[1],
        calleeAnswered + rng.range(2, 20),
      ),
    ];
    for (const stream of streams) media.push({ callId, stream });
    const lastNs = Math.max(...streams.map((p) => RtpStream.lastArrival(p)));
    byeAt = (lastNs - s.startNs) / 1e6 + rng.range(5, 40);
  }

  t = byeAt;
  const end = t;
  const reason = reasonHeader(Q850.normalClearing);
  const byeBranch = newBranch(rng);
  const relayBranch = `${proxyBranch()}.0`;
  const callerHangsUp = rng.next() < 0.5;
  if (callerHangsUp) {
    const bye = inDialog('BYE', byeBranch, callerCseq + 1, [reason]);
    ladder.send(t, caller, proxy, callId, bye, 'BYE', null);
    t += rng.range(0.1, 1);
    const relayed = forward(bye, caller, relayBranch);
    ladder.send(t, proxy, callee, callId, relayed, 'BYE', null, false, true);
    t += rng.range(0.5, 3);
    const ok = answerForwarded(relayed, callee, 200, 'OK', toTagged);
    ladder.send(t, callee, proxy, callId, ok, null, 200);
    t += rng.range(0.1, 1);
    ladder.send(t, proxy, caller, callId, relayResponse(ok), null, 200, false, true);
  } else {
    // The callee's route set is the Record-Route it saw: its BYE goes to the proxy too.
    const calleeFrom = `From: <${calleeAor}>;tag=${toTag}`;
    const calleeTo = `To: "${callerUser}" <${callerAor}>;tag=${fromTag}`;
    const bye = message(`BYE ${callerContact} SIP/2.0`, [
      via(callee, byeBranch),
      route,
      'Max-Forwards: 70',
      calleeFrom,
      calleeTo,
      callIdHdr,
      `CSeq: ${calleeCseq} BYE`,
      reason,
      `User-Agent: ${agentOf(callee)}`,
    ]);
    ladder.send(t, callee, proxy, callId, bye, 'BYE', null);
    t += rng.range(0.1, 1);
    const relayed = forward(bye, callee, relayBranch);
    ladder.send(t, proxy, caller, callId, relayed, 'BYE', null, false, true);
    t += rng.range(0.5, 3);
    const { headers } = parts(relayed);
    const ok = message('SIP/2.0 200 OK', [
      ...headers.filter((h) => h.startsWith('Via: ')),
      calleeFrom,
      calleeTo,
      callIdHdr,
      `CSeq: ${calleeCseq} BYE`,
      `Server: ${callerAgent}`,
    ]);
    ladder.send(t, caller, proxy, callId, ok, null, 200);
    t += rng.range(0.1, 1);
    ladder.send(t, proxy, callee, callId, relayResponse(ok), null, 200, false, true);
  }

  ladder.sorted();
  const hangupBy = callerHangsUp ? 'caller' : 'callee';
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
      toTag,
      finalStatus: 200,
      reasonPhrase: 'OK',
      reason: Q850.normalClearing,
      recordOutcome: 'answered',
      endedBy: hangupBy,
      hangupBy,
      // Ringing and answer as the caller got them (the proxy's relays); the end is the first BYE on the wire.
      startAt: 0,
      ringingAt: ringing,
      answerAt: answered,
      finalAt: answered,
      endAt: end,
      inviteTransactions: 1,
      proxy,
      hops: [
        {
          from: caller,
          to: proxy,
          branches: [{ branch: callerBranch, startAt: 0, finalStatus: 200, retransmissions: 0 }],
        },
        { from: proxy, to: callee, branches: farBranches },
      ],
    },
    s.outcome,
  );
  return { truths: [truth], events: ladder.events, media };
}
