/**
 * Media bound by SDP: latched RTP from an address nobody announced, rtcp-mux, T.38 UDPTL, re-INVITE to
 * a new port, BYE ending the streams, and media reports carried as HEP3 type-34 events. tshark (which
 * binds RTP from SDP the same way) is the oracle for which datagrams are RTP.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../../analyze/analyze.js';
import type { CaptureEvent } from '../../core/event.js';
import { decodeHep3, encodeHep3 } from '../../core/hep3.js';
import { ipv4Udp } from '../../test/fixtures/packets.js';
import { needs, removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { streamKey, tsharkRtpStreams } from '../../test/oracle/tshark-rtp.js';
import { PcapWriter } from '../file/pcap-writer.js';
import { LINKTYPE_RAW } from '../file/record.js';

const dir = tmpDir('callscope-rtp-sdp-');
afterAll(() => removeTmpDir(dir));

const ip = (s: string): number => s.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const CALLER = '10.1.0.10';
const CALLEE = '10.1.0.20';
const NAT = '203.0.113.9';
const CALL_ID = 'latch-1@10.1.0.10';

function sdp(addr: string, lines: string[]): string {
  return ['v=0', `o=- 1 1 IN IP4 ${addr}`, 's=-', `c=IN IP4 ${addr}`, 't=0 0', ...lines, ''].join('\r\n');
}

function sip(first: string, cseq: string, body: string, toTag = ''): Buffer {
  const head = [
    first,
    `Via: SIP/2.0/UDP 10.1.0.10:5060;branch=z9hG4bK-${cseq.replace(/\W/g, '')}`,
    'From: <sip:a@10.1.0.10>;tag=1',
    `To: <sip:b@10.1.0.20>${toTag}`,
    `Call-ID: ${CALL_ID}`,
    `CSeq: ${cseq}`,
    'Contact: <sip:a@10.1.0.10>',
    body ? 'Content-Type: application/sdp' : '',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    '',
  ].filter((l, i, a) => l !== '' || i >= a.length - 2);
  return Buffer.from(head.join('\r\n') + body);
}

function rtp(seq: number, ts: number, ssrc: number, pt = 0, payload = 160): Buffer {
  const b = Buffer.alloc(12 + payload);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ts >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  return b;
}

/** An RTCP SR (no report blocks) + SDES CNAME compound, as a rtcp-mux sender puts on its RTP port. */
function rtcpSr(ssrc: number): Buffer {
  const sr = Buffer.alloc(28);
  sr[0] = 0x80;
  sr[1] = 200;
  sr.writeUInt16BE(6, 2);
  sr.writeUInt32BE(ssrc, 4);
  const cname = Buffer.from('a@host');
  const sdesLen = 4 + 4 + 2 + cname.length + 1;
  const padded = Math.ceil(sdesLen / 4) * 4;
  const sdes = Buffer.alloc(padded);
  sdes[0] = 0x81;
  sdes[1] = 202;
  sdes.writeUInt16BE(padded / 4 - 1, 2);
  sdes.writeUInt32BE(ssrc, 4);
  sdes[8] = 1;
  sdes[9] = cname.length;
  cname.copy(sdes, 10);
  return Buffer.concat([sr, sdes]);
}

function writeCall(file: string): void {
  const w = new PcapWriter(file, { linkType: LINKTYPE_RAW });
  let t = 1_700_000_000;
  let ns = 0;
  const at = (ms: number) => {
    ns += ms * 1e6;
    while (ns >= 1e9) {
      ns -= 1e9;
      t++;
    }
  };
  const put = (payload: Buffer, src: string, sport: number, dst: string, dport: number) =>
    w.write(t, ns, ipv4Udp(payload, { src: ip(src), dst: ip(dst), srcPort: sport, dstPort: dport }));
  const offer = sdp(CALLER, [
    'm=audio 4000 RTP/AVP 0 101',
    'a=rtpmap:101 telephone-event/8000',
    'a=rtcp-mux',
    'm=image 4100 udptl t38',
  ]);
  const answer = sdp(CALLEE, ['m=audio 5000 RTP/AVP 0', 'a=rtcp-mux', 'm=image 5100 udptl t38']);
  put(sip('INVITE sip:b@10.1.0.20 SIP/2.0', '1 INVITE', offer), CALLER, 5060, CALLEE, 5060);
  at(5);
  put(sip('SIP/2.0 200 OK', '1 INVITE', answer, ';tag=2'), CALLEE, 5060, CALLER, 5060);
  at(5);
  put(sip('ACK sip:b@10.1.0.20 SIP/2.0', '1 ACK', '', ';tag=2'), CALLER, 5060, CALLEE, 5060);
  // The caller sits behind NAT: its media leaves from NAT:31000, not the announced CALLER:4000.
  for (let i = 0; i < 100; i++) {
    at(20);
    put(rtp(1000 + i, 8000 + i * 160, 0x1111), NAT, 31000, CALLEE, 5000);
    put(rtp(7000 + i, 99000 + i * 160, 0x2222), CALLEE, 5000, NAT, 31000);
    if (i % 25 === 0) {
      put(rtcpSr(0x1111), NAT, 31000, CALLEE, 5000);
      put(Buffer.from([0x06, 0x00, 0x00, 0x01, 0x00, 0x00]), CALLER, 4100, CALLEE, 5100); // T.38 UDPTL
    }
  }
  // re-INVITE moves the callee's media to port 5002; the stream there is a new one of the same call.
  const reoffer = sdp(CALLER, ['m=audio 4000 RTP/AVP 0', 'a=rtcp-mux']);
  const reanswer = sdp(CALLEE, ['m=audio 5002 RTP/AVP 0', 'a=rtcp-mux']);
  at(5);
  put(sip('INVITE sip:b@10.1.0.20 SIP/2.0', '2 INVITE', reoffer, ';tag=2'), CALLER, 5060, CALLEE, 5060);
  at(5);
  put(sip('SIP/2.0 200 OK', '2 INVITE', reanswer, ';tag=2'), CALLEE, 5060, CALLER, 5060);
  for (let i = 0; i < 50; i++) {
    at(20);
    put(rtp(7100 + i, 115000 + i * 160, 0x3333), CALLEE, 5002, NAT, 31000);
  }
  at(10);
  put(sip('BYE sip:b@10.1.0.20 SIP/2.0', '3 BYE', '', ';tag=2'), CALLER, 5060, CALLEE, 5060);
  // Unrelated traffic long after: keeps the capture clock running past the BYE grace.
  at(5000);
  put(Buffer.from('not media at all'), '10.9.9.9', 9999, '10.9.9.8', 9998);
  w.close();
}

describe('media bound by SDP', () => {
  const file = join(dir, 'latched.pcap');
  writeCall(file);

  needs('tshark').it(
    'latched RTP, rtcp-mux and re-INVITE: the streams tshark finds, all attributed to the call',
    async () => {
      const events: CaptureEvent[] = [];
      const summary = await analyzeFile(file, { onEvent: (e) => events.push(e) });
      const keys = summary.rtp.streams.map(streamKey).sort();
      expect(keys).toEqual(
        [
          `${NAT}:31000>${CALLEE}:5000#${0x1111}`,
          `${CALLEE}:5000>${NAT}:31000#${0x2222}`,
          `${CALLEE}:5002>${NAT}:31000#${0x3333}`,
        ].sort(),
      );
      const reference = await tsharkRtpStreams(file);
      expect(reference.map(streamKey).sort()).toEqual(keys);
      for (const t of reference) {
        const o = summary.rtp.streams.find((s) => streamKey(s) === streamKey(t))!;
        expect([o.packets, o.lost]).toEqual([t.packets, t.lost]);
      }
      for (const s of summary.rtp.streams) {
        expect(s.callId).toBe(CALL_ID);
        expect(s.discovery).toBe('sdp');
        expect(s.lost).toBe(0);
      }
      // rtcp-mux: RTCP on the RTP port is RTCP, read into the sender's stream, not an RTP packet.
      expect(summary.rtp.stats.rtcpPackets).toBe(4);
      expect(summary.rtp.stats.rtcpMalformed).toBe(0);
      const caller = summary.rtp.streams.find((s) => s.ssrc === 0x1111)!;
      expect(caller.packets).toBe(100);
      expect(caller.rtcp).toMatchObject({ senderReports: 4, cname: 'a@host' });
      // T.38 UDPTL to the announced image port is counted as such.
      expect(summary.rtp.stats.udptlPackets).toBe(4);
      // The BYE ended the streams (after 2 s of silence), before the end of the capture.
      const finals = events.filter((e) => e.media?.kind === 'final').map((e) => e.media!);
      expect(finals.map((r) => r.endReason)).toEqual(['bye', 'bye', 'bye']);
    },
  );

  it('reports travel as HEP3 type-34 events with the Call-ID as correlation id', async () => {
    const events: CaptureEvent[] = [];
    await analyzeFile(file, { onEvent: (e) => events.push(e) });
    const media = events.filter((e) => e.protoType === 34);
    expect(media.length).toBe(3);
    for (const e of media) {
      const decoded = decodeHep3(encodeHep3(e));
      if (!decoded.ok) throw new Error(decoded.error);
      expect(decoded.event.protoType).toBe(34);
      expect(decoded.event.correlationId).toBe(CALL_ID);
      const json = JSON.parse(decoded.event.payload.toString('utf8'));
      expect(json).toMatchObject({
        kind: 'final',
        callId: CALL_ID,
        ssrc: e.media!.ssrc,
        packets: e.media!.packets,
      });
      expect(typeof json.startNs).toBe('string');
    }
  });

  it('with the heuristic off, SDP-bound media is still found', async () => {
    const summary = await analyzeFile(file, { media: { heuristic: false } });
    expect(summary.rtp.streams).toHaveLength(3);
  });
});
