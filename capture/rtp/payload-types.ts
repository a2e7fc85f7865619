/**
 * RTP payload types: names, codecs and clock rates. Static types follow RFC 3551 / the IANA registry;
 * the short names are the ones Wireshark prints in its RTP Streams table, so our output can be compared
 * column for column. Dynamic types (96..127) get their encoding and clock from the SDP `a=rtpmap`.
 */
import type { SdpMedia } from '../../core/sip-message.js';

interface StaticType {
  /** Wireshark's short name. */
  name: string;
  /** Encoding name as SDP writes it. */
  codec: string;
  clockRate: number;
}

const STATIC: Record<number, StaticType> = {
  0: { name: 'g711U', codec: 'PCMU', clockRate: 8000 },
  1: { name: 'fs-1016', codec: '1016', clockRate: 8000 },
  2: { name: 'g721', codec: 'G721', clockRate: 8000 },
  3: { name: 'GSM', codec: 'GSM', clockRate: 8000 },
  4: { name: 'g723', codec: 'G723', clockRate: 8000 },
  5: { name: 'DVI4 8k', codec: 'DVI4', clockRate: 8000 },
  6: { name: 'DVI4 16k', codec: 'DVI4', clockRate: 16000 },
  7: { name: 'Exp. from Xerox PARC', codec: 'LPC', clockRate: 8000 },
  8: { name: 'g711A', codec: 'PCMA', clockRate: 8000 },
  // G.722's RTP clock is 8000 Hz for historical reasons (RFC 3551 §4.5.2) although it samples at 16 kHz.
  9: { name: 'g722', codec: 'G722', clockRate: 8000 },
  10: { name: '16-bit audio, stereo', codec: 'L16', clockRate: 44100 },
  11: { name: '16-bit audio, monaural', codec: 'L16', clockRate: 44100 },
  12: { name: 'Qualcomm', codec: 'QCELP', clockRate: 8000 },
  13: { name: 'CN', codec: 'CN', clockRate: 8000 },
  14: { name: 'MPEG-I/II Audio', codec: 'MPA', clockRate: 90000 },
  15: { name: 'g728', codec: 'G728', clockRate: 8000 },
  16: { name: 'DVI4 11k', codec: 'DVI4', clockRate: 11025 },
  17: { name: 'DVI4 22k', codec: 'DVI4', clockRate: 22050 },
  18: { name: 'g729', codec: 'G729', clockRate: 8000 },
  19: { name: 'CN(old)', codec: 'CN', clockRate: 8000 },
  25: { name: 'CellB', codec: 'CelB', clockRate: 90000 },
  26: { name: 'JPEG', codec: 'JPEG', clockRate: 90000 },
  28: { name: 'NV', codec: 'nv', clockRate: 90000 },
  31: { name: 'h261', codec: 'H261', clockRate: 90000 },
  32: { name: 'MPEG-I/II Video', codec: 'MPV', clockRate: 90000 },
  33: { name: 'MPEG-II streams', codec: 'MP2T', clockRate: 90000 },
  34: { name: 'h263', codec: 'H263', clockRate: 90000 },
};

/**
 * Clock rates of registered media subtypes that use dynamic payload types, for an rtpmap that names the
 * encoding but gives no usable rate. Matched by prefix, longest entry first (AMR-WB before AMR).
 */
const DYNAMIC_CLOCKS: Array<[string, number]> = (
  [
    ['amr', 8000],
    ['amr-wb', 16000],
    ['bmpeg', 90000],
    ['bt656', 90000],
    ['dv', 90000],
    ['evrc', 8000],
    ['evrc0', 8000],
    ['evrc1', 8000],
    ['evrcb', 8000],
    ['evrcb0', 8000],
    ['evrcb1', 8000],
    ['evrcwb', 16000],
    ['evrcwb0', 16000],
    ['evrcwb1', 16000],
    ['evs', 16000],
    ['g7221', 16000],
    ['g726-16', 8000],
    ['g726-24', 8000],
    ['g726-32', 8000],
    ['g726-40', 8000],
    ['g729d', 8000],
    ['g729e', 8000],
    ['gsm-efr', 8000],
    ['h263-1998', 90000],
    ['h263-2000', 90000],
    ['h264', 90000],
    ['mp1s', 90000],
    ['mp2p', 90000],
    ['mp4v-es', 90000],
    ['mpa-robust', 90000],
    ['opus', 48000],
    ['pointer', 90000],
    ['raw', 90000],
    ['red', 1000],
    ['smv', 8000],
    ['smv0', 8000],
    ['t140', 1000],
    ['telephone-event', 8000],
  ] as Array<[string, number]>
).sort((a, b) => (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0));

export interface DynamicPayload {
  encoding: string;
  clockRate: number;
}

/** Wireshark's short name of a payload type when no SDP names it. */
export function payloadTypeName(pt: number): string {
  const s = STATIC[pt];
  if (s) return s.name;
  if (pt >= 72 && pt <= 76) return 'Reserved for RTCP conflict avoidance';
  // Wireshark's rtpevent dissector claims 101 by default, so heuristic streams of 101 print as such.
  if (pt === 101) return 'rtpevent';
  if (pt >= 96) return `RTPType-${pt}`;
  return 'Unassigned';
}

/** Codec name: the SDP encoding for dynamic types, the static type's encoding otherwise; null when unknown. */
export function codecName(pt: number, dynamic: DynamicPayload | undefined): string | null {
  if (pt >= 96) return dynamic ? dynamic.encoding : pt === 101 ? 'telephone-event' : null;
  return STATIC[pt]?.codec ?? null;
}

export function isTelephoneEvent(encoding: string): boolean {
  return encoding.length >= 15 && encoding.slice(0, 15).toLowerCase() === 'telephone-event';
}

/**
 * RTP clock in Hz used for jitter, 0 when jitter does not apply: unknown dynamic types, and
 * telephone-event, whose timestamp stays on the event's start (RFC 4733 §2.2.1).
 */
export function clockRateOf(pt: number, dynamic: DynamicPayload | undefined): number {
  if (pt < 96) return STATIC[pt]?.clockRate ?? 0;
  if (!dynamic) return 0;
  if (isTelephoneEvent(dynamic.encoding)) return 0;
  if (dynamic.clockRate !== 0) return dynamic.clockRate;
  const lower = dynamic.encoding.toLowerCase();
  for (const [prefix, rate] of DYNAMIC_CLOCKS) if (lower.startsWith(prefix)) return rate;
  return 0;
}

/**
 * The codecs an SDP m= line offers, in its order: each format's rtpmap encoding, else the static
 * type's (RFC 3551), else the format as written (non-RTP media such as T.38's `t38`).
 */
export function sdpMediaCodecs(media: SdpMedia): string[] {
  const out: string[] = [];
  for (const f of media.formats) {
    const pt = Number(f);
    const name = Number.isInteger(pt) ? (media.rtpmap[pt]?.encoding ?? codecName(pt, undefined)) : f;
    if (name !== null && !out.includes(name)) out.push(name);
  }
  return out;
}
