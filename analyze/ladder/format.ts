/**
 * What every ladder renderer writes the same way: the words of an arrow, a leg's header line, a
 * stream's figures, and text made safe for a terminal (captured strings are hostile: a reason phrase
 * may carry escape sequences that would drive the reader's terminal).
 */
import type { Ladder, LadderLeg, LadderMessage, LadderStream } from '../../core/ladder.js';

/** Leg letters: A for the edge, then B, C... (AA after Z). */
export function legName(index: number): string {
  let n = index;
  let out = '';
  do {
    out = String.fromCharCode(65 + (n % 26)) + out;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return out;
}

/** Control characters (C0, DEL, C1) shown as `\xNN`: nothing captured reaches a terminal raw. */
export function terminalSafe(text: string): string {
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** "INVITE (1 INVITE)", with the branch and retransmission marks; `short` leaves the CSeq out. */
export function arrowText(m: LadderMessage, short = false): string {
  const parts = [m.label];
  if (m.branch !== null) parts.push(`[branch ${m.branch}]`);
  if (m.retransmission) parts.push('[resent]');
  if (m.cseq !== '' && !short) parts.push(`(${m.cseq})`);
  return parts.join(' ');
}

/** "offer PCMU,PCMA 10.0.0.1:4000 sendrecv" for each m= line of the message's SDP. */
export function sdpText(m: LadderMessage): string | null {
  if (m.sdp === null) return null;
  const media = m.sdp.media.map(
    (x) =>
      `${x.type === 'audio' ? '' : `${x.type} `}${x.codecs.join(',') || '-'} ${x.address.includes(':') ? `[${x.address}]` : x.address}:${x.port}${x.direction && x.direction !== 'sendrecv' ? ` ${x.direction}` : ''}`,
  );
  return `${m.sdp.role} ${media.join('; ')}`;
}

export function streamText(s: LadderStream): string {
  const mos = s.mos === null ? '' : ` MOS ${s.mos.toFixed(2)}`;
  return `${s.codec ?? 'RTP'} ${s.packets} pkts lost ${s.lost} (${s.lossPercent.toFixed(1)}%) jitter ${s.meanJitterMs.toFixed(1)}/${s.maxJitterMs.toFixed(1)}ms${mos}`;
}

/** One line per leg: outcome, final status, PDD, duration, who ended it. */
export function legText(leg: LadderLeg, index: number): string {
  const parts = [`${legName(index)} ${leg.callId}`];
  if (leg.linkedBy !== null) parts.push(`linked by ${leg.linkedBy}`);
  if (leg.outcome === null) parts.push('no record (its INVITE was not captured)');
  else {
    const status =
      leg.finalStatus === null ? '' : ` ${leg.finalStatus}${leg.reasonPhrase ? ` ${leg.reasonPhrase}` : ''}`;
    parts.push(`${leg.outcome}${status}`);
    if (leg.pddMs !== null) parts.push(`PDD ${leg.pddMs} ms`);
    if (leg.durationSec !== null) parts.push(`${leg.durationSec.toFixed(1)} s`);
    if (leg.billsec !== null && leg.billsec > 0) parts.push(`talk ${leg.billsec.toFixed(1)} s`);
    if (leg.endedBy !== null) parts.push(`ended by ${leg.endedBy}`);
    if (leg.reason !== null) parts.push(`Reason ${leg.reason}`);
  }
  parts.push(`${leg.from || '?'} → ${leg.to || '?'}`);
  return parts.join(', ');
}

/** Wall-clock time of day, UTC, to the millisecond. */
export function clockTime(ms: number): string {
  return new Date(Math.floor(ms)).toISOString().slice(11, 23);
}

/** The title line: the Call-ID, when, how many messages, legs and streams. */
export function titleText(ladder: Ladder): string {
  const start = ladder.messages[0]?.time;
  const when = start === undefined ? '' : ` on ${new Date(Math.floor(start)).toISOString().slice(0, 10)}`;
  const omitted = ladder.messagesOmitted > 0 ? ` (${ladder.messagesOmitted} more not drawn)` : '';
  return `Call ${ladder.callId}${when}: ${ladder.messages.length} messages${omitted}, ${ladder.legs.length} leg(s), ${ladder.streams.length} media stream(s)`;
}
