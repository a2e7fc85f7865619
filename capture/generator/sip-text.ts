/**
 * SIP and SDP text as real user agents, proxies and PBXs write it. Shared by the direct, proxied and
 * B2BUA ladders so that the same party always writes its headers the same way.
 */
import { createHash } from 'node:crypto';
import type { Host } from './frames.js';
import { TELEPHONE_EVENT_PT } from './rtp.js';

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

export const SIP_PORT = 5060;
export const ALLOW = 'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY';
export const SUPPORTED = 'Supported: replaces, timer';
/** Timer A doubles from T1 = 500 ms: resends at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B = 64·T1. */
export const TIMER_A_MS = [500, 1000, 2000, 4000, 8000, 16000];
export const TIMER_B_MS = 32000;

export function md5(s: string): string {
  return createHash('md5').update(s).digest('hex');
}

/** `ip:port` of a party's SIP socket, the way the call record names the ends of a hop. */
export function sipAddress(host: Host): string {
  return `${host.ipText}:${SIP_PORT}`;
}

export function message(
  startLine: string,
  headers: string[],
  body = '',
  contentType = 'application/sdp',
): string {
  const lines = [startLine, ...headers];
  if (body) lines.push(`Content-Type: ${contentType}`);
  // SIP bodies here are ASCII, so characters are bytes.
  lines.push(`Content-Length: ${body.length}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** What an SDP line needs of a codec; codecs the generator never sends media in (G.722) fit too. */
export interface SdpCodec {
  name: string;
  payloadType: number;
  clockRate: number;
  fmtp: string[];
}

/** G.722 as SDP announces it: 8000 is RFC 3551's deliberate misstatement of its 16 kHz clock. */
export const G722: SdpCodec = { name: 'G722', payloadType: 9, clockRate: 8000, fmtp: [] };

export type MediaDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

/**
 * An audio offer or answer. `version` is the o= line's session version: a UA raises it with each new
 * offer in a dialog (RFC 3264 §8), so a re-INVITE's SDP differs from the initial one.
 */
export function sdp(
  user: string,
  host: Host,
  sessId: number,
  port: number,
  codec: SdpCodec,
  ptimeMs: number,
  version = sessId,
  direction: MediaDirection = 'sendrecv',
): string {
  const pt = codec.payloadType;
  const lines = [
    'v=0',
    `o=${user} ${sessId} ${version} IN IP4 ${host.ipText}`,
    's=call',
    `c=IN IP4 ${host.ipText}`,
    't=0 0',
    `m=audio ${port} RTP/AVP ${pt} ${TELEPHONE_EVENT_PT}`,
    `a=rtpmap:${pt} ${codec.name}/${codec.clockRate}`,
    ...codec.fmtp,
    `a=rtpmap:${TELEPHONE_EVENT_PT} telephone-event/8000`,
    `a=fmtp:${TELEPHONE_EVENT_PT} 0-16`,
    `a=ptime:${ptimeMs}`,
    `a=${direction}`,
  ];
  return `${lines.join('\r\n')}\r\n`;
}

/** A UA's own Via: it asks for rport (RFC 3581) as phones and PBXs do. */
export function via(host: Host, branch: string): string {
  return `Via: SIP/2.0/UDP ${host.ipText}:${SIP_PORT};branch=${branch};rport`;
}

/** The same Via once the next hop has filled rport and received (what replies and forwarded requests carry). */
export function viaReceived(host: Host, branch: string): string {
  return `Via: SIP/2.0/UDP ${host.ipText}:${SIP_PORT};branch=${branch};rport=${SIP_PORT};received=${host.ipText}`;
}

/** A Reason header (RFC 3326) in the call record's shape. */
export interface SipReason {
  protocol: string;
  cause: number | null;
  text: string | null;
}

export function reasonHeader(r: SipReason): string {
  let h = `Reason: ${r.protocol}`;
  if (r.cause !== null) h += `;cause=${r.cause}`;
  if (r.text !== null) h += `;text="${r.text}"`;
  return h;
}

/** Q.850 causes real UAs put in Reason headers for the endings the generator writes (RFC 3398 mapping). */
export const Q850 = {
  normalClearing: { protocol: 'Q.850', cause: 16, text: 'Normal call clearing' },
  unallocatedNumber: { protocol: 'Q.850', cause: 1, text: 'Unallocated (unassigned) number' },
  callRejected: { protocol: 'Q.850', cause: 21, text: 'Call rejected' },
  noCircuitAvailable: { protocol: 'Q.850', cause: 34, text: 'No circuit/channel available' },
  incompatibleDestination: { protocol: 'Q.850', cause: 88, text: 'Incompatible destination' },
  recoveryOnTimerExpiry: { protocol: 'Q.850', cause: 102, text: 'Recovery on timer expiry' },
  interworking: { protocol: 'Q.850', cause: 127, text: 'Interworking, unspecified' },
} as const satisfies Record<string, SipReason>;
