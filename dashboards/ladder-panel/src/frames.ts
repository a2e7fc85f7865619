/**
 * The ladder (core/ladder.ts) from the table frames of dashboards/ladder-queries.ts, as the ClickHouse
 * datasource returns them: fields read by name, optional frames (legs, streams, logs) may be missing,
 * and every frame is read up to a bound whatever a query returned. The shape follows
 * analyze/ladder/build.ts (columns in order of first appearance, legs edge first, SDP offer/answer
 * roles, INVITE branches per hop) so that renderSvg draws the same ladder the command line draws.
 *
 * Values are data, never markup: strings go into the Ladder as captured and the renderer escapes them.
 */
import type { DataFrame, Field } from '@grafana/data';
import { sdpMediaCodecs } from '../../../capture/rtp/payload-types.js';
import { CALL_OUTCOMES, type CallOutcome } from '../../../core/call.js';
import type {
  Ladder,
  LadderEndpoint,
  LadderLeg,
  LadderLog,
  LadderMessage,
  LadderSdp,
  LadderStream,
} from '../../../core/ladder.js';
import { LADDER_VERSION } from '../../../core/ladder.js';
import type { SdpMedia } from '../../../core/sip-message.js';
import {
  LADDER_MAX_LOGS,
  LADDER_MAX_MESSAGES,
  LADDER_MAX_RAW_BYTES,
  LADDER_MAX_STREAMS,
} from '../../ladder-queries.js';

export interface FrameOptions {
  /** The Call-ID asked for (the dashboard variable), when known. */
  callId?: string;
  /** Messages drawn at most; the rest are counted as not drawn. */
  maxMessages?: number;
  showSdp?: boolean;
  showMedia?: boolean;
  showLogs?: boolean;
}

export type FramesResult =
  | {
      ok: true;
      ladder: Ladder;
      /** The messages query returned its bound: the call has more than it fetched. */
      queryCapped: boolean;
    }
  | { ok: false; message: string };

const MAX_LEGS = 100;

/** A frame by its query's refId, else the first one holding `marker` (a user's own query). */
function frameOf(series: readonly DataFrame[], refId: string, marker: string): DataFrame | undefined {
  return (
    series.find((f) => f.refId === refId && f.fields.length > 0) ??
    series.find((f) => f.fields.some((x) => x.name === marker))
  );
}

/** Reads rows of a frame by column name; a missing column reads as null. */
class Rows {
  private readonly byName = new Map<string, Field>();
  readonly length: number;
  constructor(frame: DataFrame | undefined, bound: number) {
    for (const f of frame?.fields ?? []) if (!this.byName.has(f.name)) this.byName.set(f.name, f);
    const n = frame?.length ?? frame?.fields[0]?.values.length ?? 0;
    this.length = Math.max(0, Math.min(n, bound));
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  value(name: string, i: number): unknown {
    return this.byName.get(name)?.values[i] ?? null;
  }
  str(name: string, i: number): string {
    const v = this.value(name, i);
    return v === null || v === undefined ? '' : String(v);
  }
  num(name: string, i: number): number | null {
    const v = this.value(name, i);
    if (v === null || v === undefined || v === '') return null;
    const n = typeof v === 'number' ? v : Number(v);
    return Number.isFinite(n) ? n : null;
  }
  bool(name: string, i: number): boolean {
    const v = this.value(name, i);
    return v === true || v === 1 || v === 'true' || v === '1';
  }
}

/** "ip:port", bracketed for IPv6 (as build.ts keys its columns). */
function endpointKey(ip: string, port: number | null): string {
  if (port === null) return ip;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Bytes of a base64 text as a Latin-1 string (how the project reads captured bytes); '' if broken. */
function latin1FromBase64(b64: string): string {
  try {
    return atob(b64);
  } catch {
    return '';
  }
}

export function ladderFromFrames(series: readonly DataFrame[], options: FrameOptions = {}): FramesResult {
  const maxMessages = Math.max(1, Math.floor(options.maxMessages ?? 1000));
  const messageFrame = frameOf(series, 'messages', 'raw_b64');
  if (messageFrame === undefined)
    return {
      ok: false,
      message: 'No data: the panel needs the "messages" query (dashboards/ladder-queries.ts)',
    };
  const rows = new Rows(messageFrame, LADDER_MAX_MESSAGES + 1);
  if (rows.length === 0) {
    const id = options.callId;
    return {
      ok: false,
      message:
        id === undefined || id === ''
          ? 'No call chosen: set the call_id variable'
          : `No SIP message with Call-ID ${JSON.stringify(id)}`,
    };
  }
  const queryCapped = rows.length > LADDER_MAX_MESSAGES;
  const count = Math.min(rows.length, LADDER_MAX_MESSAGES);

  const legs = legsFrom(new Rows(frameOf(series, 'legs', 'edge_call_id'), MAX_LEGS));
  const legIndex = new Map<string, number>();
  for (const [i, l] of legs.entries()) legIndex.set(l.callId, i);
  // Legs with messages but no record (their INVITE was not captured) come last, as build.ts puts them.
  for (let i = 0; i < count && legs.length < MAX_LEGS; i++) {
    const id = rows.str('call_id', i);
    if (legIndex.has(id)) continue;
    legIndex.set(id, legs.length);
    legs.push(unrecordedLeg(id, rows.str('from_user', i), rows.str('to_user', i)));
  }

  const endpoints: LadderEndpoint[] = [];
  const byKey = new Map<string, number>();
  const column = (ip: string, port: number | null, vm: string): number => {
    const key = endpointKey(ip, port);
    let i = byKey.get(key);
    if (i === undefined) {
      i = endpoints.length;
      byKey.set(key, i);
      endpoints.push({ ip, port, vm: vm === '' ? null : vm, label: vm === '' ? key : vm });
    } else if (vm !== '' && endpoints[i]!.vm === null) {
      endpoints[i]!.vm = vm;
      if (endpoints[i]!.label === key) endpoints[i]!.label = vm;
    }
    return i;
  };

  const messages: LadderMessage[] = [];
  const offers = new Map<string, boolean>();
  const hopBranches = new Map<string, string[]>();
  const hopOf = new Map<LadderMessage, string>();
  let first: number | null = null;
  let previous = 0;
  let omitted = queryCapped ? rows.length - count : 0;
  for (let i = 0; i < count; i++) {
    if (messages.length >= maxMessages) {
      omitted++;
      continue;
    }
    const time = rows.num('time_ms', i) ?? rows.num('time', i) ?? 0;
    first ??= time;
    const from = column(rows.str('src_ip', i), rows.num('src_port', i) ?? 0, rows.str('src_vm', i));
    const to = column(rows.str('dst_ip', i), rows.num('dst_port', i) ?? 0, rows.str('dst_vm', i));
    const callId = rows.str('call_id', i);
    const leg = legIndex.get(callId) ?? 0;
    const request = rows.bool('is_request', i);
    const method = rows.str('method', i);
    const status = rows.num('status', i);
    const reason = rows.str('reason_phrase', i);
    const raw = rows.has('raw_b64') ? latin1FromBase64(rows.str('raw_b64', i)) : rows.str('raw', i);
    const rawBytes = rows.num('raw_bytes', i) ?? raw.length;
    const head = headerSection(raw);
    let branch: number | null = null;
    let hop: string | null = null;
    if (request && method === 'INVITE' && rows.str('to_tag', i) === '') {
      hop = `${leg}|${endpointKey(rows.str('src_ip', i), rows.num('src_port', i) ?? 0)}|${viaCount(head)}`;
      const list = hopBranches.get(hop) ?? [];
      const id = rows.str('via_branch', i);
      if (!list.includes(id)) list.push(id);
      hopBranches.set(hop, list);
      branch = list.indexOf(id) + 1;
    }
    const cseqNum = rows.num('cseq_num', i);
    const cseqMethod = rows.str('cseq_method', i);
    const message: LadderMessage = {
      time,
      sinceStartMs: round3(time - first),
      deltaMs: messages.length === 0 ? 0 : round3(time - previous),
      from,
      to,
      leg,
      request,
      method: request ? method : null,
      status: request ? null : status,
      label: request ? method || '?' : `${status ?? '?'}${reason ? ` ${reason}` : ''}`,
      cseq: cseqMethod === '' ? '' : `${cseqNum ?? 0} ${cseqMethod}`,
      transport: rows.str('transport', i),
      retransmission: rows.bool('retransmission', i),
      branch,
      sdp: sdpRole(request, method, `${callId}|${cseqNum ?? ''}`, sdpOf(raw, head), offers),
      raw: raw.length > LADDER_MAX_RAW_BYTES ? raw.slice(0, LADDER_MAX_RAW_BYTES) : raw,
      rawTruncated: rawBytes > raw.length || raw.length > LADDER_MAX_RAW_BYTES,
    };
    messages.push(message);
    if (hop !== null) hopOf.set(message, hop);
    previous = time;
  }
  // A hop that tried one branch only says nothing about branches.
  for (const [m, hop] of hopOf) if ((hopBranches.get(hop)?.length ?? 0) < 2) m.branch = null;
  if (options.showSdp === false) for (const m of messages) m.sdp = null;

  const streams: LadderStream[] = [];
  if (options.showMedia !== false) {
    const s = new Rows(frameOf(series, 'streams', 'mean_jitter_ms'), LADDER_MAX_STREAMS);
    const list: Array<Omit<LadderStream, 'from' | 'to'>> = [];
    for (let i = 0; i < s.length; i++) {
      const codec = s.value('codec', i);
      list.push({
        leg: legIndex.get(s.str('call_id', i)) ?? null,
        src: s.str('src_ip', i),
        srcPort: s.num('src_port', i) ?? 0,
        dst: s.str('dst_ip', i),
        dstPort: s.num('dst_port', i) ?? 0,
        ssrc: s.num('ssrc', i) ?? 0,
        codec: codec === null || codec === undefined ? null : String(codec),
        packets: s.num('packets', i) ?? 0,
        lost: s.num('lost', i) ?? 0,
        lossPercent: s.num('loss_percent', i) ?? 0,
        maxJitterMs: s.num('max_jitter_ms', i) ?? 0,
        meanJitterMs: s.num('mean_jitter_ms', i) ?? 0,
        mos: s.num('mos', i),
      });
    }
    // The canonical order of analyze/calls/builder.ts's compareStreams (by 5-tuple and SSRC).
    const key = (x: { src: string; srcPort: number; dst: string; dstPort: number; ssrc: number }) =>
      `${x.src}|${x.srcPort}|${x.dst}|${x.dstPort}|${x.ssrc}`;
    list.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    const mediaColumn = (ip: string) => {
      const i = endpoints.findIndex((e) => e.ip === ip);
      return i >= 0 ? i : column(ip, null, '');
    };
    for (const x of list) streams.push({ ...x, from: mediaColumn(x.src), to: mediaColumn(x.dst) });
  }

  const logs: LadderLog[] = [];
  if (options.showLogs !== false) {
    const l = new Rows(frameOf(series, 'logs', 'correlation_id'), LADDER_MAX_LOGS);
    for (let i = 0; i < l.length; i++)
      logs.push({
        time: l.num('time_ms', i) ?? l.num('time', i) ?? 0,
        leg: legIndex.get(l.str('correlation_id', i)) ?? null,
        text: l.str('text', i),
      });
  }

  const callId = options.callId || legs[0]?.callId || rows.str('call_id', 0);
  return {
    ok: true,
    queryCapped,
    ladder: {
      version: LADDER_VERSION,
      callId,
      legs,
      endpoints,
      messages,
      streams,
      logs,
      messagesOmitted: omitted,
    },
  };
}

/** The legs' records, the edge first, then by start (as build.ts orders them). */
function legsFrom(r: Rows): LadderLeg[] {
  const out: Array<LadderLeg & { edge: boolean }> = [];
  const seen = new Set<string>();
  for (let i = 0; i < r.length; i++) {
    const callId = r.str('call_id', i);
    // One record per leg: a leg whose start moved keeps its newest row first (the query's order).
    if (seen.has(callId)) continue;
    seen.add(callId);
    const outcome = r.str('outcome', i) as CallOutcome;
    const protocol = r.str('reason_protocol', i);
    const cause = r.num('reason_cause', i);
    const text = r.str('reason_text', i);
    const reason = [protocol, cause === null ? '' : `cause=${cause}`, text].filter((x) => x !== '').join(' ');
    out.push({
      edge: callId === r.str('edge_call_id', i),
      callId,
      linkedBy: r.str('linked_by', i) || null,
      outcome: CALL_OUTCOMES.includes(outcome) ? outcome : null,
      finalStatus: r.num('final_status', i),
      reasonPhrase: r.str('reason_phrase', i) || null,
      from: r.str('from_user', i),
      to: r.str('to_user', i),
      start: r.num('start_ms', i),
      answer: r.num('answer_ms', i),
      end: r.num('end_ms', i),
      pddMs: r.num('pdd_ms', i),
      durationSec: r.num('duration_sec', i),
      billsec: r.num('billsec', i),
      endedBy: r.str('ended_by', i) || null,
      reason: reason === '' ? null : reason,
    });
  }
  out.sort(
    (a, b) =>
      Number(b.edge) - Number(a.edge) ||
      (a.start ?? 0) - (b.start ?? 0) ||
      (a.callId < b.callId ? -1 : a.callId > b.callId ? 1 : 0),
  );
  return out.map(({ edge: _edge, ...leg }) => leg);
}

function unrecordedLeg(callId: string, from: string, to: string): LadderLeg {
  return {
    callId,
    linkedBy: null,
    outcome: null,
    finalStatus: null,
    reasonPhrase: null,
    from,
    to,
    start: null,
    answer: null,
    end: null,
    pddMs: null,
    durationSec: null,
    billsec: null,
    endedBy: null,
    reason: null,
  };
}

interface Head {
  /** Header lines, unfolded. */
  headers: string[];
  /** Where the body starts in the raw text (-1: no body). */
  bodyStart: number;
}

/** Header lines of a message (the start line left out), folded lines joined. */
function headerSection(raw: string): Head {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  let end = raw.length;
  let bodyStart = -1;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) {
    end = crlf;
    bodyStart = crlf + 4;
  } else if (lf >= 0) {
    end = lf;
    bodyStart = lf + 2;
  }
  const lines = raw.slice(0, end).split(/\r?\n/).slice(1, 501);
  const headers: string[] = [];
  for (const line of lines) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && headers.length > 0)
      headers[headers.length - 1] += ` ${line.trim()}`;
    else headers.push(line);
  }
  return { headers, bodyStart };
}

function headerValues(head: Head, long: string, compact: string): string[] {
  const out: string[] = [];
  for (const h of head.headers) {
    const colon = h.indexOf(':');
    if (colon < 0) continue;
    const name = h.slice(0, colon).trim().toLowerCase();
    if (name === long || name === compact) out.push(h.slice(colon + 1).trim());
  }
  return out;
}

/** Vias of a message (comma-separated values count one each): its depth on the path. */
function viaCount(head: Head): number {
  let n = 0;
  for (const v of headerValues(head, 'via', 'v')) {
    let depth = 0;
    let quoted = false;
    n++;
    for (const c of v) {
      if (c === '"') quoted = !quoted;
      else if (!quoted && c === '<') depth++;
      else if (!quoted && c === '>') depth--;
      else if (!quoted && depth === 0 && c === ',') n++;
    }
  }
  return n;
}

type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
const DIRECTIONS: readonly string[] = ['sendrecv', 'sendonly', 'recvonly', 'inactive'];

/** The SDP media of a message's body (application/sdp, or the SDP part of a multipart body). */
function sdpOf(raw: string, head: Head): LadderSdp['media'] | null {
  if (head.bodyStart < 0 || head.bodyStart >= raw.length) return null;
  const type = (headerValues(head, 'content-type', 'c')[0] ?? '').toLowerCase();
  let body = raw.slice(head.bodyStart);
  if (type.startsWith('multipart/')) {
    const at = body.search(/(^|\n)v=0/);
    if (at < 0) return null;
    body = body.slice(at).replace(/^\n/, '');
    const boundary = body.search(/\r?\n--/);
    if (boundary >= 0) body = body.slice(0, boundary);
  } else if (!type.startsWith('application/sdp')) return null;

  let sessionAddress = '';
  let sessionDirection: Direction | null = null;
  const media: Array<SdpMedia & { address: string | null }> = [];
  for (const line of body.split(/\r?\n/).slice(0, 4096)) {
    if (line.length < 2 || line[1] !== '=') continue;
    const value = line.slice(2).trim();
    const current = media[media.length - 1];
    switch (line[0]) {
      case 'm': {
        if (media.length >= 64) break;
        const [kind = '', port = '0', proto = '', ...formats] = value.split(/\s+/);
        const [base = '0', countText] = port.split('/');
        media.push({
          media: kind,
          port: Number(base) || 0,
          portCount: Number(countText ?? 1) || 1,
          proto,
          formats: formats.slice(0, 128),
          connection: null,
          rtpmap: {},
          fmtp: {},
          ptime: null,
          direction: null,
          attributes: [],
          address: null,
        });
        break;
      }
      case 'c': {
        const address = (value.split(/\s+/)[2] ?? '').split('/')[0] ?? '';
        if (current === undefined) sessionAddress = address;
        else current.address = address;
        break;
      }
      case 'a': {
        const colon = value.indexOf(':');
        const name = colon < 0 ? value : value.slice(0, colon);
        const rest = colon < 0 ? '' : value.slice(colon + 1);
        if (DIRECTIONS.includes(name)) {
          if (current === undefined) sessionDirection = name as Direction;
          else current.direction = name as Direction;
        } else if (name === 'rtpmap' && current !== undefined) {
          const m = /^(\d+)\s+([^/\s]+)(?:\/(\d+))?(?:\/(\d+))?/.exec(rest);
          if (m)
            current.rtpmap[Number(m[1])] = {
              encoding: m[2]!,
              clockRate: Number(m[3] ?? 0),
              channels: m[4] === undefined ? null : Number(m[4]),
            };
        }
        break;
      }
    }
  }
  if (media.length === 0) return null;
  return media.map((m) => ({
    type: m.media,
    address: m.address ?? sessionAddress,
    port: m.port,
    codecs: sdpMediaCodecs(m),
    direction: m.direction ?? sessionDirection,
  }));
}

/**
 * Offer or answer (RFC 3264), as build.ts says it: an INVITE's or UPDATE's body is the offer and its
 * answer comes in the response; an INVITE without one gets the offer in the 2xx and the answer in the ACK.
 */
function sdpRole(
  request: boolean,
  method: string,
  key: string,
  media: LadderSdp['media'] | null,
  offers: Map<string, boolean>,
): LadderSdp | null {
  if (request && (method === 'INVITE' || method === 'UPDATE')) offers.set(key, media !== null);
  if (media === null) return null;
  let role: LadderSdp['role'];
  if (request) role = method === 'ACK' || method === 'PRACK' ? 'answer' : 'offer';
  else role = offers.get(key) === false ? 'offer' : 'answer';
  return { role, media };
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
