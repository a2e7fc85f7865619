import { describe, expect, it } from 'vitest';
import type { Sdp } from '../../core/sip-message.js';
import { DecodedPacket } from '../packet.js';
import { parseSdp } from '../sip/sdp.js';
import { SdpBindings } from './sdp-bindings.js';

function sdp(addr: string, media: string[]): Sdp {
  const text = ['v=0', `o=- 1 1 IN IP4 ${addr}`, 's=-', `c=IN IP4 ${addr}`, 't=0 0', ...media, ''].join(
    '\r\n',
  );
  const parsed = parseSdp(Buffer.from(text, 'latin1'), 0, text.length);
  if (parsed === null) throw new Error('test SDP did not parse');
  return parsed;
}

/** An IPv4 UDP datagram's addresses, as the decoder leaves them. */
function datagram(src: string, srcPort: number, dst: string, dstPort: number): DecodedPacket {
  const p = new DecodedPacket();
  p.ipVersion = 4;
  p.src.set(src.split('.').map(Number));
  p.dst.set(dst.split('.').map(Number));
  p.srcPort = srcPort;
  p.dstPort = dstPort;
  return p;
}

const counters = () => ({ sdpEndpoints: 0, endpointsForgotten: 0 });

describe('SdpBindings', () => {
  it('binds RTP and its RTCP port (port + 1, or a=rtcp; none with rtcp-mux), by destination or source', () => {
    const stats = counters();
    const b = new SdpBindings(100, stats);
    expect(b.forDatagram(datagram('10.0.0.9', 1, '10.0.0.1', 4000))).toBeNull();
    b.announce(
      'call-a',
      sdp('10.0.0.1', ['m=audio 4000 RTP/AVP 0 101', 'a=rtpmap:101 telephone-event/8000']),
    );
    b.announce('call-a', sdp('10.0.0.2', ['m=audio 6000 RTP/AVP 0', 'a=rtcp:6100']));
    b.announce('call-a', sdp('10.0.0.3', ['m=audio 7000 RTP/AVP 0', 'a=rtcp-mux']));
    const to = b.forDatagram(datagram('10.0.0.9', 1, '10.0.0.1', 4000));
    expect(to).toMatchObject({ callId: 'call-a', kind: 'rtp', rtcpMux: false });
    expect(to?.rtpmap.get(101)).toEqual({ encoding: 'telephone-event', clockRate: 8000 });
    expect(b.forDatagram(datagram('10.0.0.1', 4000, '10.0.0.9', 1))?.kind).toBe('rtp');
    expect(b.forDatagram(datagram('10.0.0.9', 1, '10.0.0.1', 4001))?.kind).toBe('rtcp');
    expect(b.forDatagram(datagram('10.0.0.9', 1, '10.0.0.2', 6100))?.kind).toBe('rtcp');
    expect(b.forDatagram(datagram('10.0.0.9', 1, '10.0.0.2', 6001))).toBeNull();
    expect(b.forDatagram(datagram('10.0.0.9', 1, '10.0.0.3', 7000))?.rtcpMux).toBe(true);
    expect(b.forDatagram(datagram('10.0.0.9', 1, '10.0.0.3', 7001))).toBeNull();
    expect(stats.sdpEndpoints).toBe(5);
  });

  it('binds nothing for hold (c=0.0.0.0), port 0 or a protocol that is not RTP', () => {
    const stats = counters();
    const b = new SdpBindings(100, stats);
    b.announce('call-a', sdp('0.0.0.0', ['m=audio 4000 RTP/AVP 0']));
    b.announce('call-a', sdp('10.0.0.1', ['m=audio 0 RTP/AVP 0', 'm=application 5000 TCP/MSRP *']));
    expect(stats.sdpEndpoints).toBe(0);
    expect(b.byPort(datagram('10.0.0.9', 1, '10.0.0.1', 4000))).toBeNull();
  });

  it('knows T.38 endpoints (UDPTL) and gives them no RTCP port', () => {
    const b = new SdpBindings(100, counters());
    b.announce('fax', sdp('10.0.0.5', ['m=image 4010 udptl t38']));
    expect(b.isUdptl(datagram('10.0.0.9', 1, '10.0.0.5', 4010))).toBe(true);
    expect(b.isUdptl(datagram('10.0.0.5', 4010, '10.0.0.9', 1))).toBe(true);
    expect(b.forDatagram(datagram('10.0.0.9', 1, '10.0.0.5', 4011))).toBeNull();
    expect(b.isUdptl(datagram('10.0.0.9', 1, '10.0.0.5', 4000))).toBe(false);
  });

  it('the latest SDP naming an endpoint wins; a port two calls announced belongs to neither', () => {
    const b = new SdpBindings(100, counters());
    b.announce('call-a', sdp('10.0.0.1', ['m=audio 4000 RTP/AVP 0']));
    // A datagram from an address nobody announced, to the announced port (NAT, latching).
    const latched = datagram('203.0.113.9', 30000, '10.0.0.77', 4000);
    expect(b.byPort(latched)?.callId).toBe('call-a');
    b.announce('call-b', sdp('10.0.0.1', ['m=audio 4000 RTP/AVP 8']));
    expect(b.forDatagram(datagram('10.0.0.9', 1, '10.0.0.1', 4000))?.callId).toBe('call-b');
    expect(b.byPort(latched)).toBeNull();
  });

  it('forgets the least recently used endpoints beyond maxEndpoints, and counts them', () => {
    const stats = counters();
    const b = new SdpBindings(4, stats);
    for (let i = 0; i < 6; i++) b.announce(`call-${i}`, sdp(`10.0.1.${i}`, ['m=audio 4000 RTP/AVP 0']));
    expect(stats.sdpEndpoints).toBe(12);
    expect(stats.endpointsForgotten).toBeGreaterThan(0);
    expect(b.forDatagram(datagram('10.0.0.9', 1, '10.0.1.5', 4000))?.callId).toBe('call-5');
    expect(b.forDatagram(datagram('10.0.0.9', 1, '10.0.1.0', 4000))).toBeNull();
  });
});
