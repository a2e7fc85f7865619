/**
 * RTP stream analysis against outside truth: tshark's `-z rtp,streams` table on the public captures,
 * on generator captures with injected loss, reordering and jitter (plus the generator's ground truth),
 * and on real SIPp calls; MOS against the E-model written out here from G.107 and G.113's constants.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../../analyze/analyze.js';
import type { AnalyzeSummary, RtpStreamSummary } from '../../analyze/summary.js';
import type { CaptureEvent } from '../../core/event.js';
import { runSippCalls } from '../../test/oracle/sipp.js';
import { needs, ROOT, removeTmpDir, SHARED_CAPTURES, SHARED_PCAPS, tmpDir } from '../../test/oracle/tools.js';
import { streamKey, type TsharkRtpStream, tsharkRtpStreams } from '../../test/oracle/tshark-rtp.js';
import { type CodecName, type GroundTruth, generateCapture } from '../generator/generate.js';

const tshark = needs('tshark');
const dir = tmpDir('callscope-rtp-');
afterAll(() => removeTmpDir(dir));

/** tshark prints three decimals: ours must round to within 0.0015 ms of each printed value. */
const TOLERANCE_MS = 0.0015;
const TIMING = [
  'minDeltaMs',
  'meanDeltaMs',
  'maxDeltaMs',
  'minJitterMs',
  'meanJitterMs',
  'maxJitterMs',
] as const;

function expectSameStreams(ours: RtpStreamSummary[], theirs: TsharkRtpStream[]): void {
  const byKey = new Map(ours.map((s) => [streamKey(s), s]));
  expect([...byKey.keys()].sort()).toEqual(theirs.map(streamKey).sort());
  for (const t of theirs) {
    const o = byKey.get(streamKey(t))!;
    const at = streamKey(t);
    expect({
      at,
      packets: o.packets,
      lost: o.lost,
      payload: o.payloadNames.join(', '),
      problem: o.problem,
    }).toEqual({
      at,
      packets: t.packets,
      lost: t.lost,
      payload: t.payload,
      problem: t.problem,
    });
    for (const k of TIMING) {
      if (Math.abs(o[k] - t[k]) > TOLERANCE_MS) {
        throw new Error(`${at}: ${k} ours ${o[k]} vs tshark ${t[k]}`);
      }
    }
    expect(Math.abs(o.startTime - t.startTime)).toBeLessThan(2e-6);
    expect(Math.abs(o.endTime - t.endTime)).toBeLessThan(2e-6);
  }
}

describe('public captures: streams equal tshark rtp,streams', () => {
  const files = SHARED_PCAPS ? readdirSync(SHARED_PCAPS).filter((f) => f.endsWith('.pcap')) : [];
  const shared = needs(SHARED_CAPTURES);
  needs(SHARED_CAPTURES, 'tshark').it.each(files)('%s', async (name) => {
    const file = join(SHARED_PCAPS!, name);
    // Heuristic on both sides: these captures carry media without signalling (g711a, dtmf) too.
    const [summary, reference] = await Promise.all([
      analyzeFile(file),
      tsharkRtpStreams(file, { heuristic: true }),
    ]);
    expectSameStreams(summary.rtp.streams, reference);
    expect(summary.rtp.stats.rtcpMalformed).toBe(0);
  });

  shared.it('the SDP-signalled streams belong to their call; the unsignalled ones to none', async () => {
    const tcp = await analyzeFile(join(SHARED_PCAPS!, 'sip_ipv4_tcp.pcap'));
    expect(tcp.rtp.streams.map((s) => s.callId)).toEqual([
      '158936656982201062716@10.33.6.100',
      '158936656982201062716@10.33.6.100',
    ]);
    expect(tcp.rtp.streams.every((s) => s.discovery === 'sdp' && s.codec === 'PCMA')).toBe(true);
    const g711 = await analyzeFile(join(SHARED_PCAPS!, 'g711a.pcap'));
    expect(g711.rtp.streams).toHaveLength(1);
    expect(g711.rtp.streams[0]).toMatchObject({
      callId: null,
      discovery: 'heuristic',
      codec: 'PCMA',
      ssrc: 0xdee0ee8f,
    });
    const dtmf = await analyzeFile(join(SHARED_PCAPS!, 'dtmf_2833_1.pcap'));
    // telephone-event carries no voice: no jitter (as tshark), no MOS.
    expect(dtmf.rtp.streams[0]).toMatchObject({ minJitterMs: -1, mos: null });
  });

  shared.it('without the heuristic, unsignalled media is not RTP', async () => {
    const summary = await analyzeFile(join(SHARED_PCAPS!, 'g711a.pcap'), { media: { heuristic: false } });
    expect(summary.rtp.streams).toEqual([]);
  });
});

interface Generated {
  file: string;
  truth: GroundTruth;
  summary: AnalyzeSummary;
  reports: NonNullable<CaptureEvent['media']>[];
}

async function generated(
  name: string,
  codec: CodecName,
  rtp: Record<string, number>,
  calls = 12,
): Promise<Generated> {
  const file = join(dir, `${name}.pcap`);
  const truth = generateCapture({
    output: file,
    seed: 11,
    calls,
    callsPerSecond: 4,
    callDurationSec: 24,
    outcomes: { answered: 1 },
    rtp: { codec, ...rtp },
  });
  const reports: Generated['reports'] = [];
  const summary = await analyzeFile(file, {
    onEvent: (e) => {
      if (e.media) reports.push(e.media);
    },
  });
  return { file, truth, summary, reports };
}

describe('generator captures with injected loss, reordering and jitter', () => {
  tshark.it.each(['PCMU', 'G729'] as CodecName[])(
    '%s: equal to tshark, loss equal to the injected loss per stream',
    async (codec) => {
      const g = await generated(`mix-${codec}`, codec, { lossRate: 0.03, reorderRate: 0.01, jitterMs: 15 });
      expectSameStreams(g.summary.rtp.streams, await tsharkRtpStreams(g.file));
      const ours = new Map(g.summary.rtp.streams.map((s) => [streamKey(s), s]));
      expect(ours.size).toBe(g.truth.rtpStreams.length);
      for (const t of g.truth.rtpStreams) {
        const o = ours.get(streamKey(t))!;
        expect({ packets: o.packets, lost: o.lost, callId: o.callId }).toEqual({
          packets: t.packetsCaptured,
          lost: t.lost,
          callId: t.callId,
        });
        expect(o.codec).toBe(codec);
      }
      // Reordering shows as late packets and loss runs as bursts, never as lost packets.
      expect(g.summary.rtp.streams.reduce((n, s) => n + s.outOfOrder, 0)).toBe(
        g.truth.rtpStreams.reduce((n, s) => n + s.reordered, 0),
      );
      const runs = g.summary.rtp.streams.reduce(
        (n, s) => n + s.lossBursts.reduce((a, k, i) => a + k * (i + 1), 0),
        0,
      );
      expect(runs).toBeGreaterThan(0);
    },
  );

  it.each([
    ['PCMU', 5],
    ['PCMU', 18],
    ['G729', 12],
  ] as Array<[CodecName, number]>)(
    '%s with %i ms jitter: mean jitter within 2 percent of the ground truth',
    async (codec, jitterMs) => {
      const g = await generated(`jitter-${codec}-${jitterMs}`, codec, { jitterMs });
      // Arrival = nominal + U(0, J): E|D| for two independent arrivals is J/3. The running RFC 3550 estimate
      // starts at 0 and approaches it as 1 − (15/16)^k, so over N differences its mean is
      // J/3 · (1 − 15·(1 − (15/16)^N)/N). One stream's mean still wanders by ~2 % (|D| has a standard
      // deviation of 0.24·J), so the comparison is over all streams of the capture.
      let ours = 0;
      let expected = 0;
      for (const t of g.truth.rtpStreams) {
        const o = g.summary.rtp.streams.find((s) => streamKey(s) === streamKey(t))!;
        const n = o.packets - 1;
        expected += (jitterMs / 3) * (1 - (15 * (1 - (15 / 16) ** n)) / n);
        ours += o.meanJitterMs;
      }
      expect(Math.abs(ours - expected) / expected).toBeLessThan(0.02);
    },
  );
});

/** G.107 E-model written out from the recommendation, independent of capture/rtp/quality.ts. */
function eModelR(ie: number, bpl: number, lossPercent: number, burstR: number): number {
  const ieEff = ie + ((95 - ie) * lossPercent) / (lossPercent / burstR + bpl);
  return 93.2 - ieEff;
}

function eModelMos(r: number): number {
  if (r <= 0) return 1;
  if (r >= 100) return 4.5;
  return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r);
}

describe('MOS from the E-model', () => {
  // G.113 Appendix I: G.711 with packet-loss concealment Ie 0, Bpl 25.1; G.729A Ie 11, Bpl 19.
  const constants: Record<string, [number, number]> = { PCMU: [0, 25.1], G729: [11, 19] };
  const losses = [0, 0.01, 0.03, 0.06, 0.12];

  it.each(['PCMU', 'G729'] as CodecName[])(
    '%s: decreases with injected loss, each interval matching G.107',
    async (codec) => {
      const means: number[] = [];
      for (const loss of losses) {
        const g = await generated(`mos-${codec}-${loss}`, codec, { lossRate: loss }, 6);
        const finals = g.reports.filter((r) => r.kind === 'final');
        means.push(finals.reduce((n, r) => n + (r.mos ?? 0), 0) / finals.length);
        const intervals = g.reports.filter((r) => r.interval !== null && r.interval.packets > 50);
        expect(intervals.length).toBeGreaterThan(0);
        for (const r of intervals) {
          const iv = r.interval!;
          const [ie, bpl] = constants[codec];
          expect(iv.lossPercent).toBeCloseTo((100 * iv.lost) / iv.expected, 9);
          expect(iv.rFactor).toBeCloseTo(eModelR(ie, bpl, iv.lossPercent, iv.burstR), 9);
          expect(iv.mos).toBeCloseTo(eModelMos(iv.rFactor), 9);
        }
      }
      for (let i = 1; i < means.length; i++) expect(means[i]).toBeLessThan(means[i - 1]);
      expect(means[0]).toBeCloseTo(eModelMos(93.2 - constants[codec][0]), 6);
    },
  );
});

needs('tshark', 'sipp', 'tcpdump', ROOT).describe('SIPp calls with RTP', () => {
  it('play_pcap_audio with RTP echo: streams equal tshark, attributed to the call', async () => {
    const run = await runSippCalls({
      dir,
      calls: 1,
      rate: 1,
      uacScenario: 'rtp',
      uasScenario: 'answer-rtp-echo',
    });
    expect(run.uac.successfulCalls).toBe(1);
    const [summary, reference] = await Promise.all([analyzeFile(run.pcap), tsharkRtpStreams(run.pcap)]);
    expectSameStreams(summary.rtp.streams, reference);
    // SIPp's audio file holds 236 packets; the UAS echoes each one back (unless tcpdump dropped some).
    if (run.droppedByKernel === 0) expect(summary.rtp.streams.map((s) => s.packets)).toEqual([236, 236]);
    else console.warn(`[sipp] tcpdump dropped ${run.droppedByKernel} packets: exact RTP count not checked`);
    expect(new Set(summary.rtp.streams.map((s) => s.callId)).size).toBe(1);
    expect(summary.rtp.streams[0].callId).not.toBeNull();
  });

  it('overlapping SIPp calls sharing SSRC and port merge exactly as tshark merges them', async () => {
    const run = await runSippCalls({
      dir,
      calls: 4,
      rate: 4,
      port: 5070,
      uacScenario: 'rtp',
      uasScenario: 'answer-rtp-echo',
    });
    const [summary, reference] = await Promise.all([
      analyzeFile(run.pcap),
      tsharkRtpStreams(run.pcap, { decodeAs: ['udp.port==5070,sip'] }),
    ]);
    expectSameStreams(summary.rtp.streams, reference);
    const packets = summary.rtp.streams.reduce((n, s) => n + s.packets, 0);
    expect(packets).toBeLessThanOrEqual(4 * 2 * 236);
    expect(packets).toBeGreaterThanOrEqual(4 * 2 * 236 - run.droppedByKernel);
  });
});
