/**
 * One call's messages out of callscope, for a vendor or a ticket: as a pcap (packets made from the
 * stored messages: capture/file/synthesize.ts), as an sngrep-like text dump, or as CSV, one row per
 * message. All three take the messages in the ladder's order (capture order).
 */
import { PcapWriter } from '../../capture/file/pcap-writer.js';
import { FrameSynthesizer } from '../../capture/file/synthesize.js';
import type { CaptureEvent } from '../../core/event.js';
import { csvField } from '../calls/view.js';

/** Writes the events' SIP messages to `path` as a classic pcap (nanosecond timestamps). */
export function writeCallPcap(path: string, events: readonly CaptureEvent[]): { packets: number } {
  const writer = new PcapWriter(path, { nanosecond: true });
  const synthesizer = new FrameSynthesizer();
  try {
    for (const event of events)
      for (const { timestampNs, frame } of synthesizer.frames(event))
        writer.write(Number(timestampNs / 1_000_000_000n), Number(timestampNs % 1_000_000_000n), frame);
  } finally {
    writer.close();
  }
  return { packets: writer.packets };
}

function address(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** "2023/11/14 22:13:20.000123", UTC. */
function dumpTime(ns: bigint): string {
  const iso = new Date(Number(ns / 1_000_000n)).toISOString();
  const micros = String((ns / 1000n) % 1_000_000n).padStart(6, '0');
  return `${iso.slice(0, 10).replace(/-/g, '/')} ${iso.slice(11, 19)}.${micros}`;
}

/**
 * sngrep's "save as text" shape: a line with time, source → destination (and transport), then the
 * message as captured, a blank line between messages. Bytes are written as they came (Latin-1).
 */
export function callText(events: readonly CaptureEvent[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of events) {
    parts.push(
      Buffer.from(
        `${dumpTime(e.timestampNs)} ${address(e.srcIp, e.srcPort)} -> ${address(e.dstIp, e.dstPort)} ${e.transport.toUpperCase()}${e.retransmission ? ' (resent)' : ''}\n`,
        'latin1',
      ),
      Buffer.from(e.payload),
      Buffer.from(e.payload.at(-1) === 0x0a ? '\n' : '\n\n', 'latin1'),
    );
  }
  return Buffer.concat(parts);
}

export const CALL_MESSAGES_CSV_HEADER =
  'time,call_id,src,src_port,dst,dst_port,transport,vlan,request,method,status,reason_phrase,cseq,resent';

/** One row per message (RFC 4180; captured text through csvField). */
export function callCsv(events: readonly CaptureEvent[]): string {
  const rows = [CALL_MESSAGES_CSV_HEADER];
  for (const e of events) {
    const sip = e.sip;
    rows.push(
      [
        new Date(Number(e.timestampNs / 1_000_000n))
          .toISOString()
          .replace(/Z$/, `${String((e.timestampNs / 1000n) % 1000n).padStart(3, '0')}Z`),
        sip?.callId ?? '',
        e.srcIp,
        e.srcPort,
        e.dstIp,
        e.dstPort,
        e.transport,
        e.vlan ?? '',
        sip?.isRequest ? 'true' : 'false',
        sip?.method ?? '',
        sip?.statusCode ?? '',
        sip?.reasonPhrase ?? '',
        sip?.cseq ? `${sip.cseq.seq} ${sip.cseq.method}` : '',
        e.retransmission ? 'true' : 'false',
      ]
        .map((v) => csvField(String(v)))
        .join(','),
    );
  }
  return `${rows.join('\r\n')}\r\n`;
}
