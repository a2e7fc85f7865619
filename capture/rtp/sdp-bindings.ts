/**
 * What SDP announced, as media bindings: `address:port` → the call, for RTP (and its RTCP port: a=rtcp,
 * else port + 1, unless rtcp-mux) and UDPTL (T.38). The latest SDP naming an endpoint wins (a re-INVITE
 * rebinds it); connection address 0.0.0.0 (hold, RFC 2543) binds nothing. Announced ports are also kept
 * with their call, for streams from or to addresses no SDP named (NAT, latching).
 */
import { formatIp, parseIp } from '../../core/address.js';
import type { Sdp } from '../../core/sip-message.js';
import type { DecodedPacket } from '../packet.js';
import { BoundedMap } from '../sip/bounded-map.js';
import type { MediaBinding } from './stream.js';

/** The tracker's figures the bindings count (MediaStats has them). */
export interface BindingCounters {
  sdpEndpoints: number;
  endpointsForgotten: number;
}

export class SdpBindings {
  private readonly endpoints: BoundedMap<MediaBinding>;
  /** Announced port → the one call announcing it, or null once two calls did (ambiguous). */
  private readonly portCalls = new BoundedMap<string | null>(100_000);

  /** `maxEndpoints`: endpoints remembered (least recently used forgotten first). */
  constructor(
    maxEndpoints: number,
    private readonly stats: BindingCounters,
  ) {
    this.endpoints = new BoundedMap(maxEndpoints);
  }

  /** The SDP endpoint a datagram is addressed to (preferred) or sent from. */
  forDatagram(p: DecodedPacket): MediaBinding | null {
    if (this.endpoints.size === 0) return null;
    const dst = this.endpoints.get(`${p.dstIp()}:${p.dstPort}`);
    if (dst !== undefined) return dst;
    return this.endpoints.get(`${p.srcIp()}:${p.srcPort}`) ?? null;
  }

  /**
   * A heuristic stream from or to an address no SDP announced (NAT, latching) still belongs to a call
   * when exactly one call announced its destination or source port.
   */
  byPort(p: DecodedPacket): MediaBinding | null {
    if (this.portCalls.size === 0) return null;
    for (const port of [p.dstPort, p.srcPort]) {
      const callId = this.portCalls.get(String(port));
      if (callId) return { callId, rtpmap: new Map(), kind: 'rtp', rtcpMux: false };
    }
    return null;
  }

  /** True when the datagram is to or from a UDPTL (T.38) endpoint. */
  isUdptl(p: DecodedPacket): boolean {
    if (this.endpoints.size === 0) return false;
    const b = this.forDatagram(p);
    return b !== null && b.kind === 'udptl';
  }

  /** An SDP body of a call: binds its media endpoints (a later offer or answer rebinds them). */
  announce(callId: string, sdp: Sdp): void {
    for (const m of sdp.media) {
      if (m.port === 0) continue;
      const conn = m.connection ?? sdp.connection;
      if (conn === null) continue;
      const bytes = parseIp(conn.address);
      // 0.0.0.0 is the old way to put a call on hold (RFC 2543): nothing to bind.
      if (bytes === null || bytes.every((b) => b === 0)) continue;
      const ip = formatIp(bytes.length === 16 ? 6 : 4, bytes);
      const proto = m.proto.toLowerCase();
      const udptl = proto === 'udptl' || proto.endsWith('/udptl');
      if (!udptl && !proto.startsWith('rtp/') && !proto.includes('/rtp/')) continue;
      const rtpmap = new Map<number, { encoding: string; clockRate: number }>();
      for (const [pt, map] of Object.entries(m.rtpmap)) {
        const n = Number(pt);
        if (n >= 96 && n <= 127) rtpmap.set(n, { encoding: map.encoding, clockRate: map.clockRate });
      }
      let rtcpMux = false;
      let rtcpPort = m.port + 1;
      for (const [name, value] of m.attributes) {
        if (name === 'rtcp-mux') rtcpMux = true;
        else if (name === 'rtcp' && value !== null) {
          const n = Number.parseInt(value, 10);
          if (n > 0 && n < 65536) rtcpPort = n;
        }
      }
      const binding: MediaBinding = { callId, rtpmap, kind: udptl ? 'udptl' : 'rtp', rtcpMux };
      this.setEndpoint(`${ip}:${m.port}`, binding);
      if (!udptl && !rtcpMux && rtcpPort !== m.port) {
        this.setEndpoint(`${ip}:${rtcpPort}`, { callId, rtpmap, kind: 'rtcp', rtcpMux: false });
      }
      if (!udptl) {
        const key = String(m.port);
        const known = this.portCalls.get(key);
        if (known === undefined) this.portCalls.set(key, callId);
        else if (known !== null && known !== callId) this.portCalls.set(key, null);
      }
    }
  }

  private setEndpoint(key: string, binding: MediaBinding): void {
    const before = this.endpoints.forgotten;
    if (!this.endpoints.has(key)) this.stats.sdpEndpoints++;
    this.endpoints.set(key, binding);
    this.stats.endpointsForgotten += this.endpoints.forgotten - before;
  }
}
