/**
 * A call ladder as data: what every renderer (terminal, SVG, HTML, Mermaid) draws from, and what the
 * Grafana ladder panel reads (`callscope ladder --format json`). Built by analyze/ladder/build.ts from
 * a call's SIP messages, its media streams, its HEP logs and its call records.
 *
 * Times are capture times in milliseconds since the epoch (fractions carry the microseconds). Strings
 * are as captured (bytes read as Latin-1): renderers escape them for their format.
 */
import type { CallOutcome, CallStream } from './call.js';

export const LADDER_VERSION = 1;

export interface Ladder {
  version: typeof LADDER_VERSION;
  /** The Call-ID asked for. */
  callId: string;
  /** One per B2BUA leg (Call-ID), the edge first, then in start order. */
  legs: LadderLeg[];
  /** Columns, in order of first appearance. */
  endpoints: LadderEndpoint[];
  /** Every SIP message of the legs, in capture order. */
  messages: LadderMessage[];
  /** Media streams (final figures), drawn as bars between their endpoints' columns. */
  streams: LadderStream[];
  /** HEP log lines attached to the legs (e.g. Kamailio `hlog()`). */
  logs: LadderLog[];
  /** Messages left out past the renderer's or the reader's bound (0: none). */
  messagesOmitted: number;
}

export interface LadderLeg {
  callId: string;
  /** How the leg was linked to the one before it (null for the edge or when not linked). */
  linkedBy: string | null;
  /** From the call record, when the engine made one (null when the leg's start was not captured). */
  outcome: CallOutcome | null;
  finalStatus: number | null;
  reasonPhrase: string | null;
  from: string;
  to: string;
  start: number | null;
  answer: number | null;
  end: number | null;
  pddMs: number | null;
  durationSec: number | null;
  billsec: number | null;
  endedBy: string | null;
  /** Q.850 / SIP cause of the end, as "Q.850 cause=16 text". */
  reason: string | null;
}

export interface LadderEndpoint {
  ip: string;
  /** SIP port; null for a column only media reached. */
  port: number | null;
  /** What the column says: the alias given for it, else its VM, else address:port. */
  label: string;
  vm: string | null;
}

export interface LadderSdp {
  /** Offer or answer (RFC 3264), as the message carries it in its transaction. */
  role: 'offer' | 'answer';
  media: Array<{ type: string; address: string; port: number; codecs: string[]; direction: string | null }>;
}

export interface LadderMessage {
  /** Capture time, ms since the epoch. */
  time: number;
  /** Since the first message, and since the one before, ms. */
  sinceStartMs: number;
  deltaMs: number;
  /** Endpoint indexes. */
  from: number;
  to: number;
  /** Leg index. */
  leg: number;
  request: boolean;
  method: string | null;
  status: number | null;
  /** "INVITE" or "180 Ringing". */
  label: string;
  /** "1 INVITE". */
  cseq: string;
  transport: string;
  /** Resent (tshark's retransmission flag). */
  retransmission: boolean;
  /** The INVITE's branch on its hop when the hop tried more than one (failover, forking): 1, 2... */
  branch: number | null;
  sdp: LadderSdp | null;
  /** The whole message as captured (bounded; `rawTruncated` says when cut). */
  raw: string;
  rawTruncated: boolean;
}

/** A media stream's final figures, placed between the columns of its two ends. */
export interface LadderStream extends CallStream {
  leg: number | null;
  from: number;
  to: number;
}

export interface LadderLog {
  time: number;
  leg: number | null;
  text: string;
}
