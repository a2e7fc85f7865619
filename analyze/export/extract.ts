/**
 * One call's packets copied out of a capture, as they were captured (`callscope extract`): its SIP
 * (and every B2BUA leg's with `legs`), the TCP connections and SCTP associations that carried it,
 * and the media bound to it: RTP and RTCP of the streams the media tracker tied to its Call-IDs, and
 * any UDP to or from an address:port its SDP offered (RTCP on the next port, UDPTL for T.38) while the
 * call lasted. IP fragments of a kept datagram are kept with it.
 *
 * A leg alone takes one read: each packet is judged as the pipeline hands it on (its SIP events
 * name the Call-ID, the media tracker names the call of each datagram it binds) and written at once.
 * That read is kept only when it provably saw everything the two-read way would: SIP over UDP alone,
 * no IP fragment of it, and every stream's packets bound from its first (a heuristic stream's first
 * packets pass in probation, unbound). Otherwise, and with the legs, two reads: the first (the
 * ladder's gathering) finds the legs, their messages and streams; the second decodes each packet
 * once more and writes the ones that belong.
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
  /** Reads of the file it took: 1 for a leg alone over UDP with SDP-bound media, else 2. */
  reads: 1 | 2;
}

/** Fragments held until their datagram is complete, at most this many. */
const MAX_HELD_FRAGMENTS = 4096;

/** "ip|port", the address written the decoder's way (IPv6 compressed), or null when it is no address. */
function endpoint(ip: string, port: number): string | null {
  const bytes = parseIp(ip);
  if (bytes === null) return null;
  return `${formatIp(bytes.length === 16 ? 6 : 4, bytes)}|${port}`;
}

export interface ExtractOptions {
  legs?: boolean;
  capture?: FileSourceOptions;
  link?: LinkOptions;
  logger?: Logger;
}

/** Writes packets of one link type into `output` (created with the first packet, or empty at close). */
class CallPcap {
  private writer: PcapWriter | null = null;
  private linkType = -1;
  written = 0;
  otherLinkType = 0;

  constructor(private readonly output: string) {}

  write(r: PacketRecord, bytes: Buffer): void {
    if (this.writer === null) {
      this.linkType = r.linkType;
      this.writer = new PcapWriter(this.output, { nanosecond: true, linkType: this.linkType });
    }
    if (r.linkType !== this.linkType) {
      this.otherLinkType++;
      return;
    }
    this.writer.write(r.tsSec, r.tsNsec, bytes, r.origLen);
    this.written++;
  }

  close(): void {
    (this.writer ?? new PcapWriter(this.output, { nanosecond: true })).close();
  }
}

/** `src|port>dst|port` of a datagram, as the tracker writes a stream's ends. */
const directionOf = (src: string, srcPort: number, dst: string, dstPort: number) =>
  `${src}|${srcPort}>${dst}|${dstPort}`;

/** The one-read extract of a leg alone, or null when it could not see everything (see above). */
async function extractInOneRead(
  file: string,
  callId: string,
  output: string,
  options: ExtractOptions,
): Promise<ExtractResult | null> {
  const pcap = new CallPcap(output);
  let boundToCall = false;
  let complete = true;
  const keptPerDirection = new Map<string, number>();
  let packetsRead = 0;
  const capture: FileSourceOptions = {
    ...options.capture,
    onMediaPacket: (_record, id) => {
      if (id === callId) boundToCall = true;
    },
    onPacketHandled: (record, p, events) => {
      packetsRead++;
      let keep = false;
      if (boundToCall) {
        boundToCall = false;
        keep = true;
        const key = directionOf(p.srcIp(), p.srcPort, p.dstIp(), p.dstPort);
        keptPerDirection.set(key, (keptPerDirection.get(key) ?? 0) + 1);
      }
      for (const e of events) {
        if (e.sip?.callId !== callId) continue;
        if (e.transport !== 'udp' || p.isFragment || p.reassembled) complete = false;
        keep = true;
      }
      if (keep && complete)
        pcap.write(record, record.data.subarray(record.offset, record.offset + record.caplen));
    },
  };
  const input = await ladderInputFromFile(file, callId, {
    capture,
    link: options.link,
    logger: options.logger,
    legs: false,
  });
  // Every packet the tracker counted for each of the call's streams was bound, and so written.
  for (const { stream: s } of input.streams)
    if ((keptPerDirection.get(directionOf(s.src, s.srcPort, s.dst, s.dstPort)) ?? 0) < s.packets)
      complete = false;
  pcap.close();
  if (!complete) return null;
  return {
    callIds: [callId],
    packetsRead,
    packetsWritten: pcap.written,
    sipMessages: input.events.length,
    streams: input.streams.length,
    otherLinkType: pcap.otherLinkType,
    reads: 1,
  };
}

export async function extractCall(
  file: string,
  callId: string,
  output: string,
  options: ExtractOptions = {},
): Promise<ExtractResult> {
  if (!(options.legs ?? false)) {
    const one = await extractInOneRead(file, callId, output, options);
    if (one !== null) return one;
  }
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

  const pcap = new CallPcap(output);
  const write = (r: PacketRecord, bytes: Buffer) => pcap.write(r, bytes);
  const held = new Map<string, Array<{ record: PacketRecord; bytes: Buffer }>>();
  let heldCount = 0;
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
  pcap.close();
  return {
    callIds: [...ids],
    packetsRead: result.packets,
    packetsWritten: pcap.written,
    sipMessages: input.events.length,
    streams: input.streams.length,
    otherLinkType: pcap.otherLinkType,
    reads: 2,
  };
}
