/**
 * One call's packets copied out of a capture, as they were captured (`callscope extract`): its SIP
 * (and every B2BUA leg's with `legs`), the TCP connections and SCTP associations that carried it,
 * and the media bound to it: RTP and RTCP of the streams the media tracker tied to its Call-IDs, and
 * any UDP to or from an address:port its SDP offered (RTCP on the next port, UDPTL for T.38) while the
 * call lasted. IP fragments of a kept datagram are kept with it.
 *
 * Two reads: the first (the ladder's gathering) finds the legs, their messages and streams; the
 * second decodes each packet once more and writes the ones that belong.
 */

import { PacketDecoder } from '../../capture/decoder.js';
import { PcapWriter } from '../../capture/file/pcap-writer.js';
import { readCaptureFile } from '../../capture/file/reader.js';
import type { PacketRecord } from '../../capture/file/record.js';
import type { DecodedPacket } from '../../capture/packet.js';
import { looksLikeSip } from '../../capture/sip/detect.js';
import { SipParser } from '../../capture/sip/parser.js';
import type { FileSourceOptions } from '../../capture/sources.js';
import { formatIp, parseIp } from '../../core/address.js';
import type { Logger } from '../../core/log.js';
import type { LinkOptions } from '../calls/linker.js';
import { ladderInputFromFile } from '../ladder/gather.js';

export interface ExtractResult {
  callIds: string[];
  packetsRead: number;
  packetsWritten: number;
  sipMessages: number;
  streams: number;
  /** Packets of another link type than the first one written (a pcap holds one). */
  otherLinkType: number;
}

/** Fragments held until their datagram is complete, at most this many. */
const MAX_HELD_FRAGMENTS = 4096;

/** "ip|port", the address written the decoder's way (IPv6 compressed), or null when it is no address. */
function endpoint(ip: string, port: number): string | null {
  const bytes = parseIp(ip);
  if (bytes === null) return null;
  return `${formatIp(bytes.length === 16 ? 6 : 4, bytes)}|${port}`;
}

export async function extractCall(
  file: string,
  callId: string,
  output: string,
  options: { legs?: boolean; capture?: FileSourceOptions; link?: LinkOptions; logger?: Logger } = {},
): Promise<ExtractResult> {
  const input = await ladderInputFromFile(file, callId, {
    capture: options.capture,
    link: options.link,
    logger: options.logger,
    legs: options.legs ?? false,
  });
  const ids = new Set([callId, ...input.records.map((r) => r.callId)]);
  // Connections that carried the call's SIP (either direction), and the media it offered.
  const connections = new Set<string>();
  const offered = new Set<string>();
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const e of input.events) {
    const ms = Number(e.timestampNs / 1_000_000n);
    first = Math.min(first, ms);
    last = Math.max(last, ms);
    if (e.transport !== 'udp') {
      const a = endpoint(e.srcIp, e.srcPort);
      const b = endpoint(e.dstIp, e.dstPort);
      if (a !== null && b !== null) connections.add(a < b ? `${a}>${b}` : `${b}>${a}`);
    }
    for (const m of e.sip?.sdp?.media ?? []) {
      const address = m.connection?.address ?? e.sip?.sdp?.connection?.address;
      if (address === undefined || m.port === 0) continue;
      for (const port of [m.port, m.port + 1]) {
        const key = endpoint(address, port);
        if (key !== null) offered.add(key);
      }
    }
  }
  for (const r of input.records) last = Math.max(last, r.end);
  // Media runs on after the last SIP message seen for a call whose end was not captured.
  const from = first - 1000;
  const until = last + 60_000;
  const pairs = new Set<string>();
  for (const { stream: s } of input.streams) {
    for (const d of [0, 1]) {
      const a = endpoint(s.src, s.srcPort + d);
      const b = endpoint(s.dst, s.dstPort + d);
      if (a !== null && b !== null) pairs.add(a < b ? `${a}>${b}` : `${b}>${a}`);
    }
  }

  // Ports of anything that may belong: most packets of other calls are passed over on their ports
  // alone, without making their addresses into strings.
  const ports = new Set<number>();
  for (const key of [...connections, ...pairs])
    for (const end of key.split('>')) ports.add(Number(end.slice(end.lastIndexOf('|') + 1)));
  for (const key of offered) ports.add(Number(key.slice(key.lastIndexOf('|') + 1)));
  const parser = new SipParser();
  let keep = false;
  const judge = (p: DecodedPacket, record: PacketRecord, udp: boolean) => {
    if (!ports.has(p.srcPort) && !ports.has(p.dstPort)) {
      if (!udp || !looksLikeSip(p.buf, p.payloadOffset, p.payloadEnd)) return;
    }
    const a = `${p.srcIp()}|${p.srcPort}`;
    const b = `${p.dstIp()}|${p.dstPort}`;
    const pair = a < b ? `${a}>${b}` : `${b}>${a}`;
    if (!udp) {
      if (connections.has(pair)) keep = true;
      return;
    }
    if (pairs.has(pair)) {
      keep = true;
      return;
    }
    if (looksLikeSip(p.buf, p.payloadOffset, p.payloadEnd)) {
      const parsed = parser.parse(p.buf, p.payloadOffset, p.payloadEnd);
      if (parsed.ok && parsed.message.callId !== null && ids.has(parsed.message.callId)) keep = true;
      return;
    }
    const ms = record.tsSec * 1000 + record.tsNsec / 1e6;
    if ((offered.has(a) || offered.has(b)) && ms >= from && ms <= until) keep = true;
  };
  const decoder = new PacketDecoder({
    udp: (p, r) => judge(p, r, true),
    tcp: (p, r) => judge(p, r, false),
    sctp: (p, r) => judge(p, r, false),
  });

  let writer: PcapWriter | null = null;
  let linkType = -1;
  let written = 0;
  let otherLinkType = 0;
  const held = new Map<string, Array<{ record: PacketRecord; bytes: Buffer }>>();
  let heldCount = 0;
  const write = (r: PacketRecord, bytes: Buffer) => {
    if (writer === null) {
      linkType = r.linkType;
      writer = new PcapWriter(output, { nanosecond: true, linkType });
    }
    if (r.linkType !== linkType) {
      otherLinkType++;
      return;
    }
    writer.write(r.tsSec, r.tsNsec, bytes, r.origLen);
    written++;
  };
  const result = await readCaptureFile(file, (record) => {
    keep = false;
    decoder.decode(record);
    const p = decoder.packet;
    // Only fragments are keyed (the string costs more than the rest of the judgement).
    const fragmentKey =
      p.ipVersion === 0 || !(p.isFragment || p.reassembled)
        ? null
        : `${p.srcIp()}|${p.dstIp()}|${p.fragmentId}`;
    const bytes = () => record.data.subarray(record.offset, record.offset + record.caplen);
    if (p.isFragment && !p.reassembled && !keep && fragmentKey !== null) {
      // A datagram's earlier fragments wait for its last one: kept together if it belongs.
      if (heldCount < MAX_HELD_FRAGMENTS) {
        const list = held.get(fragmentKey) ?? [];
        list.push({ record: { ...record }, bytes: Buffer.from(bytes()) });
        held.set(fragmentKey, list);
        heldCount++;
      }
      return;
    }
    if (p.reassembled && fragmentKey !== null) {
      const fragments = held.get(fragmentKey) ?? [];
      if (keep) for (const f of fragments) write(f.record, f.bytes);
      heldCount -= fragments.length;
      held.delete(fragmentKey);
    }
    if (keep) write(record, bytes());
  });
  const done = writer as PcapWriter | null;
  if (done === null) new PcapWriter(output, { nanosecond: true }).close();
  else done.close();
  return {
    callIds: [...ids],
    packetsRead: result.packets,
    packetsWritten: written,
    sipMessages: input.events.length,
    streams: input.streams.length,
    otherLinkType,
  };
}
