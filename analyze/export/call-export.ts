/**
 * One call's messages out of callscope, for a vendor or a ticket: as a pcap (packets made from the
 * stored messages: capture/file/synthesize.ts), as an sngrep-like text dump, or as CSV, one row per
 * message. All three take the messages in the ladder's order (capture order).
 */
import { PcapWriter } from '../../capture/file/pcap-writer.js';
import { readCaptureFile } from '../../capture/file/reader.js';
import { LINKTYPE_ETHERNET } from '../../capture/file/record.js';
import { FrameSynthesizer } from '../../capture/file/synthesize.js';
import { spooledFiles } from '../../capture/rtp-spool.js';
import type { CaptureEvent } from '../../core/event.js';
import { csvField } from '../calls/view.js';

/** A captured packet to write beside the call's messages (from the RTP spool). */
export interface CapturedPacket {
  timestampNs: bigint;
  frame: Buffer;
  origLen: number;
}

/**
 * Writes the events' SIP messages (and `media`, Ethernet frames as captured) to `path` as a classic
 * pcap with nanosecond timestamps, in time order (SIP first at equal times).
 */
export function writeCallPcap(
  path: string,
  events: readonly CaptureEvent[],
  media: readonly CapturedPacket[] = [],
): { packets: number } {
  const writer = new PcapWriter(path, { nanosecond: true });
  const synthesizer = new FrameSynthesizer();
  const sip: CapturedPacket[] = [];
  for (const event of events)
    for (const { timestampNs, frame } of synthesizer.frames(event))
      sip.push({ timestampNs, frame, origLen: frame.length });
  const byTime = [...media].sort((a, b) =>
    a.timestampNs < b.timestampNs ? -1 : a.timestampNs > b.timestampNs ? 1 : 0,
  );
  try {
    let i = 0;
    let j = 0;
    while (i < sip.length || j < byTime.length) {
      const next =
        j >= byTime.length || (i < sip.length && sip[i]!.timestampNs <= byTime[j]!.timestampNs)
          ? sip[i++]!
          : byTime[j++]!;
      writer.write(
        Number(next.timestampNs / 1_000_000_000n),
        Number(next.timestampNs % 1_000_000_000n),
        next.frame,
        next.origLen,
      );
    }
  } finally {
    writer.close();
  }
  return { packets: writer.packets };
}

/**
 * The spooled media of the Call-IDs (`--save-rtp DIR` of the capture agent), Ethernet frames only:
 * the export writes Ethernet. Packets of another link type are counted in `skipped`.
 */
export async function spooledMedia(
  dir: string,
  callIds: readonly string[],
): Promise<{ packets: CapturedPacket[]; files: number; skipped: number }> {
  const packets: CapturedPacket[] = [];
  let files = 0;
  let skipped = 0;
  for (const callId of callIds)
    for (const file of spooledFiles(dir, callId)) {
      files++;
      await readCaptureFile(file, (r) => {
        if (r.linkType !== LINKTYPE_ETHERNET) {
          skipped++;
          return;
        }
        packets.push({
          timestampNs: BigInt(r.tsSec) * 1_000_000_000n + BigInt(r.tsNsec),
          frame: Buffer.from(r.data.subarray(r.offset, r.offset + r.caplen)),
          origLen: r.origLen,
        });
      });
    }
  return { packets, files, skipped };
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
