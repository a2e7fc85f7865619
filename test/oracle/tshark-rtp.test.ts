import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { needs, REPO_ROOT, SHARED_CAPTURES, SHARED_PCAPS } from './tools.js';
import { runTshark } from './tshark.js';
import { parseRtpStreams, streamKey, type TsharkRtpStream, tsharkRtpStreams } from './tshark-rtp.js';

const SAMPLE = join(REPO_ROOT, 'capture', 'sample', 'calls.pcap');

const shared = (name: string): string => join(SHARED_PCAPS!, name);

/** Relations every row must satisfy whatever the capture. */
function expectConsistent(s: TsharkRtpStream): void {
  expect(s.endTime).toBeGreaterThanOrEqual(s.startTime);
  expect(s.packets).toBeGreaterThan(0);
  // tshark prints lost / expected (expected = received + lost) with one decimal.
  expect(Math.abs(s.lostPercent - (100 * s.lost) / (s.packets + s.lost))).toBeLessThanOrEqual(0.05 + 1e-9);
  expect(s.minDeltaMs).toBeLessThanOrEqual(s.meanDeltaMs);
  expect(s.meanDeltaMs).toBeLessThanOrEqual(s.maxDeltaMs);
  expect(s.meanJitterMs).toBeLessThanOrEqual(s.maxJitterMs);
  if (s.minJitterMs >= 0) expect(s.minJitterMs).toBeLessThanOrEqual(s.meanJitterMs);
  if (s.lost !== 0) expect(s.problem).toBe(true);
}

describe('parseRtpStreams', () => {
  it('rejects output without the RTP Streams block or with an unknown row', () => {
    expect(() => parseRtpStreams('')).toThrow(/RTP Streams/);
    const header =
      '========================= RTP Streams ========================\n' +
      '   Start time      End time     Src IP addr  Port    Dest IP addr  Port       SSRC          Payload  Pkts         Lost   Min Delta(ms)  Mean Delta(ms)   Max Delta(ms)  Min Jitter(ms) Mean Jitter(ms)  Max Jitter(ms) Problems?\n';
    expect(
      parseRtpStreams(`${header}==============================================================\n`),
    ).toEqual([]);
    expect(() => parseRtpStreams(`${header}   something else\n====\n`)).toThrow(/unexpected line/);
  });
});

needs('tshark').describe('tshark rtp,streams (tshark 4.0 layout)', () => {
  const sharedCaptures = needs(SHARED_CAPTURES);
  sharedCaptures.it('g711a.pcap: every column of the one G.711 stream', async () => {
    const file = shared('g711a.pcap');
    expect(await tsharkRtpStreams(file)).toEqual([]); // no SDP: RTP only with heuristics or decode-as
    const streams = await tsharkRtpStreams(file, { heuristic: true });
    expect(streams).toEqual([
      {
        startTime: 0,
        endTime: 7.049628,
        src: '10.1.3.143',
        srcPort: 5000,
        dst: '10.1.6.18',
        dstPort: 2006,
        ssrc: 0xdee0ee8f,
        payload: 'g711A',
        packets: 236,
        lost: 0,
        lostPercent: 0,
        minDeltaMs: 25.112,
        meanDeltaMs: 29.998,
        maxDeltaMs: 34.829,
        minJitterMs: 0.002,
        meanJitterMs: 0.35,
        maxJitterMs: 0.829,
        problem: false,
      },
    ]);
    expect(await tsharkRtpStreams(file, { decodeAs: ['udp.port==5000,rtp'] })).toEqual(streams);
    expect(streamKey(streams[0])).toBe(`10.1.3.143:5000>10.1.6.18:2006#${0xdee0ee8f}`);
  });

  sharedCaptures.it('dtmf_2833_1.pcap: negative loss, no jitter (-1), problem flag', async () => {
    const [s, ...rest] = await tsharkRtpStreams(shared('dtmf_2833_1.pcap'), { heuristic: true });
    expect(rest).toEqual([]);
    expect(s).toMatchObject({
      src: '192.168.0.3',
      srcPort: 49176,
      dst: '192.168.0.1',
      dstPort: 10000,
      ssrc: 0x0e05384e,
      payload: 'rtpevent',
      packets: 10,
      lost: -2,
      lostPercent: -25,
      minJitterMs: -1,
      problem: true,
    });
  });

  sharedCaptures.it('sip_ipv4_tcp.pcap: SDP-announced streams, payload list with a comma', async () => {
    const streams = await tsharkRtpStreams(shared('sip_ipv4_tcp.pcap'));
    expect(streams.map((s) => [streamKey(s), s.payload, s.packets, s.lost])).toEqual([
      [`10.33.6.100:6000>10.33.6.101:6050#${0x5a3361b3}`, 'g711A, CN', 24, 0],
      [`10.33.6.101:6050>10.33.6.100:6000#${0x42f433d4}`, 'g711A, CN', 42, 0],
    ]);
    for (const s of streams) expectConsistent(s);
  });

  it('capture/sample/calls.pcap: rows agree with tshark per-packet fields', async () => {
    const streams = await tsharkRtpStreams(SAMPLE);
    expect(streams.length).toBeGreaterThan(0);
    for (const s of streams) expectConsistent(s);
    expect(new Set(streams.map(streamKey)).size).toBe(streams.length);
    const fields = await runTshark([
      '-n',
      '-r',
      SAMPLE,
      '-Y',
      'rtp',
      '-T',
      'fields',
      '-E',
      'separator=|',
      '-e',
      'ip.src',
      '-e',
      'udp.srcport',
      '-e',
      'ip.dst',
      '-e',
      'udp.dstport',
      '-e',
      'rtp.ssrc',
    ]);
    const perStream = new Map<string, number>();
    for (const line of fields.stdout.trim().split('\n')) {
      const [src, srcPort, dst, dstPort, ssrc] = line.split('|');
      const key = streamKey({
        src,
        srcPort: Number(srcPort),
        dst,
        dstPort: Number(dstPort),
        ssrc: Number(ssrc),
      });
      perStream.set(key, (perStream.get(key) ?? 0) + 1);
    }
    expect(Object.fromEntries(streams.map((s) => [streamKey(s), s.packets]))).toEqual(
      Object.fromEntries(perStream),
    );
  });
});
