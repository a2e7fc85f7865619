/**
 * The ladder of one call (core/ladder.ts) from what a capture or the store gives of it: its legs'
 * SIP messages in capture order, their call records, media streams and HEP logs. Pure: the command
 * gathers the inputs (analyze/ladder/gather.ts), renderers draw the result.
 */
import { sdpMediaCodecs } from '../../capture/rtp/payload-types.js';
import type { CallRecord, CallStream } from '../../core/call.js';
import type { CaptureEvent } from '../../core/event.js';
import type { Ladder, LadderEndpoint, LadderLeg, LadderMessage, LadderSdp } from '../../core/ladder.js';
import { LADDER_VERSION } from '../../core/ladder.js';
import type { SipMessage } from '../../core/sip-message.js';
import { compareStreams } from '../calls/builder.js';

export interface LadderInput {
  callId: string;
  /** The legs' records (any order; none for a leg whose start was not captured). */
  records: readonly CallRecord[];
  /** SIP events of every leg, each with its parsed message, in capture order. */
  events: readonly CaptureEvent[];
  streams: ReadonlyArray<{ callId: string; stream: CallStream }>;
  logs: ReadonlyArray<{ time: number; callId: string; text: string }>;
}

export interface LadderOptions {
  /** Column names by "ip:port" or "ip" (the port-specific one wins). */
  aliases?: ReadonlyMap<string, string>;
  /** Messages drawn at most (default 100,000); the rest are counted in `messagesOmitted`. */
  maxMessages?: number;
  /** Characters of each raw message kept (default 16,384). */
  maxRawChars?: number;
}

/** "ip:port", bracketed for IPv6. */
export function endpointKey(ip: string, port: number | null): string {
  if (port === null) return ip;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function buildLadder(input: LadderInput, options: LadderOptions = {}): Ladder {
  const aliases = options.aliases ?? new Map<string, string>();
  const maxMessages = options.maxMessages ?? 100_000;
  const maxRaw = options.maxRawChars ?? 16_384;
  const legs = orderLegs(input);
  const legIndex = new Map(legs.map((l, i) => [l.callId, i]));
  const endpoints: LadderEndpoint[] = [];
  const byKey = new Map<string, number>();
  const column = (ip: string, port: number | null, vm: string | null | undefined): number => {
    const key = endpointKey(ip, port);
    let i = byKey.get(key);
    if (i === undefined) {
      i = endpoints.length;
      byKey.set(key, i);
      const alias = aliases.get(key) ?? aliases.get(ip);
      const attributed = vm === undefined || vm === null || vm === '' ? null : vm;
      endpoints.push({ ip, port, vm: attributed, label: alias ?? attributed ?? key });
    } else if (vm && endpoints[i]!.vm === null) {
      endpoints[i]!.vm = vm;
      if (endpoints[i]!.label === key) endpoints[i]!.label = vm;
    }
    return i;
  };

  const messages: LadderMessage[] = [];
  const offers = new Map<string, boolean>();
  // INVITE branches per hop (sender and Via depth): a hop that tried more than one numbers them.
  const hopBranches = new Map<string, string[]>();
  const hopOf = new Map<LadderMessage, string>();
  let first: number | null = null;
  let previous = 0;
  let omitted = 0;
  for (const event of input.events) {
    const sip = event.sip;
    if (sip === undefined) continue;
    if (messages.length >= maxMessages) {
      omitted++;
      continue;
    }
    const time = Number(event.timestampNs / 1000n) / 1000;
    first ??= time;
    const from = column(event.srcIp, event.srcPort, event.srcVm);
    const to = column(event.dstIp, event.dstPort, event.dstVm);
    const leg = legIndex.get(sip.callId ?? '') ?? 0;
    const label = sip.isRequest
      ? (sip.method ?? '?')
      : `${sip.statusCode ?? '?'}${sip.reasonPhrase ? ` ${sip.reasonPhrase}` : ''}`;
    let branch: number | null = null;
    let hop: string | null = null;
    if (sip.isRequest && sip.method === 'INVITE' && !sip.to?.tag) {
      hop = `${leg}|${endpointKey(event.srcIp, event.srcPort)}|${sip.via.length}`;
      const list = hopBranches.get(hop) ?? [];
      const id = sip.via[0]?.branch ?? '';
      if (!list.includes(id)) list.push(id);
      hopBranches.set(hop, list);
      branch = list.indexOf(id) + 1;
    }
    const raw = event.payload.toString('latin1');
    const message: LadderMessage = {
      time,
      sinceStartMs: round3(time - first),
      deltaMs: messages.length === 0 ? 0 : round3(time - previous),
      from,
      to,
      leg,
      request: sip.isRequest,
      method: sip.isRequest ? sip.method : null,
      status: sip.isRequest ? null : sip.statusCode,
      label,
      cseq: sip.cseq ? `${sip.cseq.seq} ${sip.cseq.method}` : '',
      transport: event.transport,
      retransmission: event.retransmission,
      branch,
      sdp: sdpOf(sip, offers),
      raw: raw.length > maxRaw ? raw.slice(0, maxRaw) : raw,
      rawTruncated: raw.length > maxRaw,
    };
    messages.push(message);
    if (hop !== null) hopOf.set(message, hop);
    previous = time;
  }
  // A hop that tried one branch only says nothing about branches.
  for (const [m, hop] of hopOf) if ((hopBranches.get(hop)?.length ?? 0) < 2) m.branch = null;

  // In a canonical order: a capture and the store deliver final reports in different orders.
  const ordered = [...input.streams].sort((a, b) => compareStreams(a.stream, b.stream));
  const streams = ordered.map(({ callId, stream }) => ({
    leg: legIndex.get(callId) ?? null,
    from: mediaColumn(endpoints, column, stream.src),
    to: mediaColumn(endpoints, column, stream.dst),
    ...stream,
  }));
  const logs = input.logs.map((l) => ({ time: l.time, leg: legIndex.get(l.callId) ?? null, text: l.text }));
  return {
    version: LADDER_VERSION,
    callId: input.callId,
    legs,
    endpoints,
    messages,
    streams,
    logs,
    messagesOmitted: omitted,
  };
}

/** A media address's column: the SIP endpoint on the same IP, else a column of its own. */
function mediaColumn(
  endpoints: LadderEndpoint[],
  column: (ip: string, port: number | null, vm: string | null) => number,
  ip: string,
): number {
  const i = endpoints.findIndex((e) => e.ip === ip);
  return i >= 0 ? i : column(ip, null, null);
}

/** Legs: the edge (the leg the others link to) first, then by start; legs without a record last. */
function orderLegs(input: LadderInput): LadderLeg[] {
  const records = [...input.records].sort(
    (a, b) =>
      Number(b.callId === b.edgeCallId) - Number(a.callId === a.edgeCallId) ||
      a.start - b.start ||
      (a.callId < b.callId ? -1 : 1),
  );
  const legs: LadderLeg[] = records.map((r) => ({
    callId: r.callId,
    linkedBy: r.linkedBy,
    outcome: r.outcome,
    finalStatus: r.finalStatus,
    reasonPhrase: r.reasonPhrase,
    from: r.from,
    to: r.to,
    start: r.start,
    answer: r.answer,
    end: r.end,
    pddMs: r.pddMs,
    durationSec: r.durationSec,
    billsec: r.billsec,
    endedBy: r.endedBy,
    reason:
      r.reason === null
        ? null
        : [r.reason.protocol, r.reason.cause === null ? null : `cause=${r.reason.cause}`, r.reason.text]
            .filter((x) => x !== null && x !== '')
            .join(' '),
  }));
  const known = new Set(legs.map((l) => l.callId));
  for (const e of input.events) {
    const id = e.sip?.callId;
    if (id === undefined || id === null || known.has(id)) continue;
    known.add(id);
    legs.push({
      callId: id,
      linkedBy: null,
      outcome: null,
      finalStatus: null,
      reasonPhrase: null,
      from: e.sip?.from?.uri?.user ?? '',
      to: e.sip?.to?.uri?.user ?? '',
      start: null,
      answer: null,
      end: null,
      pddMs: null,
      durationSec: null,
      billsec: null,
      endedBy: null,
      reason: null,
    });
  }
  return legs;
}

/**
 * The SDP of a message as offer or answer (RFC 3264): an INVITE's or UPDATE's body is the offer and
 * its answer comes in the response; an INVITE without one gets the offer in the 2xx and the answer in
 * the ACK. `offers` remembers, per leg and CSeq, whether the request offered.
 */
function sdpOf(sip: SipMessage, offers: Map<string, boolean>): LadderSdp | null {
  const sdp = sip.sdp;
  const key = `${sip.callId}|${sip.cseq?.seq ?? ''}`;
  if (sip.isRequest && (sip.method === 'INVITE' || sip.method === 'UPDATE')) offers.set(key, sdp !== null);
  if (sdp === null) return null;
  let role: LadderSdp['role'];
  if (sip.isRequest) role = sip.method === 'ACK' || sip.method === 'PRACK' ? 'answer' : 'offer';
  else role = offers.get(key) === false ? 'offer' : 'answer';
  return {
    role,
    media: sdp.media.map((m) => ({
      type: m.media,
      address: m.connection?.address ?? sdp.connection?.address ?? '',
      port: m.port,
      codecs: sdpMediaCodecs(m),
      direction: m.direction ?? sdp.direction,
    })),
  };
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
