import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs, removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { runTshark, tsharkSipStat } from '../../test/oracle/tshark.js';
import { streamKey, tsharkRtpStreams } from '../../test/oracle/tshark-rtp.js';
import { type GeneratorOptions, type GroundTruth, generateCapture } from './generate.js';
import { makeSample } from './make-sample.js';
import { Rng } from './random.js';

const dir = tmpDir('callscope-gen-');
afterAll(() => removeTmpDir(dir));
const withTshark = needs('tshark');

/** tshark's stdout for these arguments. */
async function tshark(args: string[]): Promise<string> {
  return (await runTshark(args)).stdout;
}

const EVERY_OUTCOME = { answered: 1, busy: 1, cancelled: 1, unavailable: 1, noAnswer: 1, challenged: 1 };

function generate(
  name: string,
  options: Omit<GeneratorOptions, 'output'>,
): { file: string; truth: GroundTruth } {
  const file = join(dir, name);
  return { file, truth: generateCapture({ ...options, output: file }) };
}

/** Minimal classic-pcap walk: record count, time order, link-layer sanity. */
function readPcap(file: string): { packets: number; ordered: boolean; nanosecond: boolean; times: number[] } {
  const b = readFileSync(file);
  const magic = b.readUInt32LE(0);
  const nanosecond = magic === 0xa1b23c4d;
  expect([0xa1b2c3d4, 0xa1b23c4d]).toContain(magic);
  const div = nanosecond ? 1e9 : 1e6;
  let o = 24;
  let prev = -Infinity;
  let ordered = true;
  const times: number[] = [];
  while (o < b.length) {
    const t = b.readUInt32LE(o) + b.readUInt32LE(o + 4) / div;
    const caplen = b.readUInt32LE(o + 8);
    if (t < prev) ordered = false;
    prev = t;
    times.push(t);
    o += 16 + caplen;
  }
  expect(o).toBe(b.length);
  return { packets: times.length, ordered, nanosecond, times };
}

async function expectSipStatMatches(file: string, truth: GroundTruth): Promise<void> {
  const stat = await tsharkSipStat(file);
  expect(stat.messages).toBe(truth.sip.messages);
  expect(stat.retransmissions).toBe(truth.sip.retransmissions);
  // toEqual ignores key order, so insertion order of the count maps does not matter.
  expect(stat.requests).toEqual(truth.sip.requests);
  expect(stat.responses).toEqual(truth.sip.responses);
}

async function expectRtpStreamsMatch(file: string, truth: GroundTruth, heuristic: boolean): Promise<void> {
  const seen = new Map((await tsharkRtpStreams(file, { heuristic })).map((s) => [streamKey(s), s]));
  const expected = truth.rtpStreams.filter((s) => s.packetsCaptured > 0);
  expect(seen.size).toBe(expected.length);
  for (const s of expected) {
    const t = seen.get(streamKey(s));
    expect(t, streamKey(s)).toBeDefined();
    expect({ packets: t!.packets, lost: t!.lost }).toEqual({ packets: s.packetsCaptured, lost: s.lost });
  }
}

async function expectGoodChecksums(file: string): Promise<void> {
  const out = await tshark([
    '-r',
    file,
    '-o',
    'ip.check_checksum:TRUE',
    '-o',
    'udp.check_checksum:TRUE',
    '-T',
    'fields',
    '-e',
    'ip.checksum.status',
    '-e',
    'udp.checksum.status',
  ]);
  const lines = out.trim().split('\n');
  // 1 = good (0 would be bad, 2 unverified).
  expect(new Set(lines)).toEqual(new Set(['1\t1']));
  const expert = await tshark([
    '-r',
    file,
    '-q',
    '-o',
    'ip.check_checksum:TRUE',
    '-o',
    'udp.check_checksum:TRUE',
    '-z',
    'expert',
  ]);
  expect(expert.trim()).toBe('');
}

describe('Rng', () => {
  it('is deterministic per seed and roughly uniform', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 10000 }, () => a.next());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b.next()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.02);
    expect(new Rng(43).next()).not.toBe(new Rng(42).next());
  });
});

describe('generateCapture', () => {
  it('rejects impossible options', () => {
    expect(() => generateCapture({ output: join(dir, 'x.pcap'), vms: 1 })).toThrow(/vms/);
    expect(() => generateCapture({ output: join(dir, 'x.pcap'), outcomes: { answered: 0 } })).toThrow(/zero/);
    expect(() => generateCapture({ output: join(dir, 'x.pcap'), rtp: { lossRate: 2 } })).toThrow(/lossRate/);
  });

  it('is byte-identical for the same seed and differs for another', () => {
    const opts = {
      calls: 12,
      outcomes: EVERY_OUTCOME,
      callDurationSec: 1,
      rtp: { jitterMs: 5, lossRate: 0.05, reorderRate: 0.05 },
    };
    const a = generate('same-a.pcap', { ...opts, seed: 5 });
    const b = generate('same-b.pcap', { ...opts, seed: 5 });
    const c = generate('other.pcap', { ...opts, seed: 6 });
    expect(readFileSync(a.file).equals(readFileSync(b.file))).toBe(true);
    expect({ ...a.truth, options: null }).toEqual({ ...b.truth, options: null });
    expect(readFileSync(a.file).equals(readFileSync(c.file))).toBe(false);
  });

  it('writes time-ordered frames, exactly as many as the truth says', () => {
    const { file, truth } = generate('order.pcap', {
      calls: 30,
      callsPerSecond: 20,
      outcomes: EVERY_OUTCOME,
      callDurationSec: 1.5,
      rtp: { jitterMs: 30, lossRate: 0.05, reorderRate: 0.05 },
    });
    const p = readPcap(file);
    expect(p.packets).toBe(truth.packets);
    expect(p.ordered).toBe(true);
    expect(p.times[0]).toBe(truth.firstPacket);
    expect(p.times[p.times.length - 1]).toBe(truth.lastPacket);
    const sent = truth.rtpStreams.reduce((s, r) => s + r.packetsCaptured, 0);
    expect(truth.packets).toBe(sent + truth.sip.messages);
    for (const s of truth.rtpStreams) expect(s.packetsSent - s.packetsCaptured).toBe(s.lost);
  });

  it('apportions outcomes exactly and keeps calls between distinct VMs', () => {
    const { truth } = generate('mix.pcap', {
      calls: 60,
      vms: 3,
      outcomes: EVERY_OUTCOME,
      rtp: { enabled: false },
    });
    const counts: Record<string, number> = {};
    for (const c of truth.calls) counts[c.outcome] = (counts[c.outcome] ?? 0) + 1;
    expect(counts).toEqual({
      answered: 10,
      busy: 10,
      cancelled: 10,
      unavailable: 10,
      noAnswer: 10,
      challenged: 10,
    });
    for (const c of truth.calls) expect(c.callerVm).not.toBe(c.calleeVm);
    expect(new Set(truth.calls.map((c) => c.callId)).size).toBe(60);
    expect(truth.rtpStreams).toEqual([]);
    const byOutcome = Object.fromEntries(truth.calls.map((c) => [c.outcome, c]));
    expect(byOutcome.noAnswer.finalStatus).toBeNull();
    expect(byOutcome.noAnswer.end - byOutcome.noAnswer.start).toBeCloseTo(32, 5);
    expect(byOutcome.challenged.attempts).toBe(2);
    expect(byOutcome.cancelled.finalStatus).toBe(487);
    expect(truth.sip.retransmissions).toBe(60); // 6 Timer A resends × 10 unanswered calls
  });

  it('streams 1M-packet-scale captures quickly (timing printed, not asserted)', () => {
    const opts: Omit<GeneratorOptions, 'output'> = {
      calls: 400,
      callsPerSecond: 50,
      callDurationSec: 5,
      outcomes: { answered: 1 },
      rtp: { jitterMs: 2, lossRate: 0.01, reorderRate: 0.01 },
    };
    generate('warmup.pcap', { ...opts, calls: 40 }); // let the JIT settle first
    const start = process.hrtime.bigint();
    const cpu = process.cpuUsage();
    const { file, truth } = generate('bench.pcap', opts);
    const used = process.cpuUsage(cpu);
    const sec = Number(process.hrtime.bigint() - start) / 1e9;
    const cpuSec = (used.user + used.system) / 1e6;
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    // CPU time is reported too: on a shared machine wall-clock time mostly measures the neighbours.
    console.log(
      `generator: ${fmt(truth.packets)} packets (${(statSync(file).size / 1e6).toFixed(1)} MB) in ` +
        `${sec.toFixed(3)} s wall = ${fmt(truth.packets / sec)} packets/s; ${cpuSec.toFixed(3)} s CPU = ` +
        `${fmt(truth.packets / cpuSec)} packets/s; 1M packets ≈ ${((1e6 * sec) / truth.packets).toFixed(2)} s`,
    );
    expect(truth.packets).toBeGreaterThan(195_000);
    rmSync(file);
  });
});

withTshark.describe('tshark agrees with the ground truth', () => {
  let mixed: { file: string; truth: GroundTruth };
  let plain: { file: string; truth: GroundTruth };
  beforeAll(() => {
    mixed = generate('tshark-mixed.pcap', {
      seed: 11,
      vms: 4,
      calls: 36,
      callsPerSecond: 4,
      callDurationSec: 2.5,
      outcomes: EVERY_OUTCOME,
      vlan: 42,
      rtp: { jitterMs: 4, lossRate: 0.03, reorderRate: 0.03 },
    });
    plain = generate('tshark-g729.pcap', {
      seed: 12,
      vms: 5,
      calls: 18,
      callsPerSecond: 6,
      callDurationSec: 1.2,
      nanosecond: true,
      rtp: { codec: 'G729', lossRate: 0.02 },
    });
  });

  it('sip,stat: messages, resent, methods and status codes', async () => {
    await expectSipStatMatches(mixed.file, mixed.truth);
    await expectSipStatMatches(plain.file, plain.truth);
    for (const k of ['INVITE', 'ACK', 'BYE', 'CANCEL'])
      expect(mixed.truth.sip.requests[k]).toBeGreaterThan(0);
    for (const k of ['100', '180', '200', '407', '486', '487', '503'])
      expect(mixed.truth.sip.responses[k]).toBeGreaterThan(0);
    expect(mixed.truth.sip.retransmissions).toBe(36); // 6 unanswered calls × 6 resends
  });

  it('rtp,streams: every stream with its packets and lost counts (SDP and heuristic decoding)', async () => {
    await expectRtpStreamsMatch(mixed.file, mixed.truth, false);
    await expectRtpStreamsMatch(mixed.file, mixed.truth, true);
    await expectRtpStreamsMatch(plain.file, plain.truth, false);
    expect(mixed.truth.rtpStreams.some((s) => s.lost > 0 && s.reordered > 0)).toBe(true);
    const payloads = new Set((await tsharkRtpStreams(plain.file)).map((s) => s.payload));
    expect([...payloads]).toEqual(['g729']);
  });

  it('no bad IP/UDP checksums and no expert findings at all', async () => {
    await expectGoodChecksums(mixed.file);
    await expectGoodChecksums(plain.file);
  });

  it('per call: messages, final status, VLAN tag and INVITE resend timing', async () => {
    const out = await tshark([
      '-r',
      mixed.file,
      '-Y',
      'sip',
      '-T',
      'fields',
      '-E',
      'separator=|',
      '-e',
      'sip.Call-ID',
      '-e',
      'sip.Method',
      '-e',
      'sip.Status-Code',
      '-e',
      'sip.CSeq.method',
      '-e',
      'frame.time_epoch',
      '-e',
      'vlan.id',
    ]);
    const perCall = new Map<string, { messages: number; final: number | null; invites: number[] }>();
    for (const line of out.trim().split('\n')) {
      const [callId, method, code, cseqMethod, time, vlan] = line.split('|');
      expect(vlan).toBe('42');
      const c = perCall.get(callId) ?? { messages: 0, final: null, invites: [] };
      c.messages++;
      if (code && cseqMethod === 'INVITE' && Number(code) >= 200) c.final = Number(code);
      if (method === 'INVITE') c.invites.push(Number(time));
      perCall.set(callId, c);
    }
    expect(perCall.size).toBe(mixed.truth.calls.length);
    for (const call of mixed.truth.calls) {
      const seen = perCall.get(call.callId)!;
      expect(seen.messages).toBe(call.messages);
      // A challenged call's last final answer is the 200 after the 407.
      expect(seen.final).toBe(call.finalStatus);
      expect(seen.invites.length).toBe(call.outcome === 'noAnswer' ? 7 : call.attempts);
      if (call.outcome === 'noAnswer') {
        const offsets = seen.invites.map((t) => Math.round((t - seen.invites[0]) * 1000) / 1000);
        expect(offsets).toEqual([0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]);
      }
    }
  });

  it('RTP: sequence, timestamp, marker and payload size; jitter near the expected value', async () => {
    const { file, truth } = generate('tshark-jitter.pcap', {
      seed: 3,
      calls: 4,
      outcomes: { answered: 1 },
      callDurationSec: 6,
      rtp: { jitterMs: 3, codec: 'PCMA' },
    });
    const out = await tshark([
      '-r',
      file,
      '-Y',
      'rtp',
      '-T',
      'fields',
      '-E',
      'separator=|',
      '-e',
      'rtp.ssrc',
      '-e',
      'rtp.seq',
      '-e',
      'rtp.timestamp',
      '-e',
      'rtp.marker',
      '-e',
      'rtp.p_type',
      '-e',
      'udp.length',
    ]);
    const last = new Map<string, { seq: number; ts: number }>();
    for (const line of out.trim().split('\n')) {
      const [ssrc, seq, ts, marker, pt, udpLength] = line.split('|');
      const prev = last.get(ssrc);
      expect(pt).toBe('8');
      expect(udpLength).toBe(String(8 + 12 + 160));
      if (prev) {
        expect(Number(seq)).toBe((prev.seq + 1) & 0xffff);
        expect(Number(ts)).toBe((prev.ts + 160) >>> 0);
        expect(marker).toMatch(/^(0|False)$/);
      } else {
        expect(marker).toMatch(/^(1|True)$/);
      }
      last.set(ssrc, { seq: Number(seq), ts: Number(ts) });
    }
    expect(last.size).toBe(truth.rtpStreams.length);
    const streams = await tsharkRtpStreams(file);
    for (const s of truth.rtpStreams) {
      const t = streams.find((x) => streamKey(x) === streamKey(s))!;
      expect(t.lost).toBe(0);
      expect(t.meanJitterMs).toBeGreaterThan(s.expectedJitterMs! * 0.6);
      expect(t.meanJitterMs).toBeLessThan(s.expectedJitterMs! * 1.4);
    }
  });
});

const sampleDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'sample');
const makeIt = process.env.MAKE_SAMPLE === '1' ? it : it.skip;

describe('capture/sample', () => {
  makeIt('regenerates calls.pcap and calls.truth.json (MAKE_SAMPLE=1)', () => {
    const truth = makeSample(sampleDir);
    console.log(`sample: ${truth.packets} packets, ${truth.calls.length} calls`);
  });

  it('regenerates byte for byte: newer outcomes and truth fields changed none of its draws', () => {
    const out = join(dir, 'sample');
    mkdirSync(out);
    makeSample(out);
    const committed = (name: string) => readFileSync(join(sampleDir, name));
    expect(readFileSync(join(out, 'calls.pcap')).equals(committed('calls.pcap'))).toBe(true);
    expect(readFileSync(join(out, 'calls.truth.json'), 'utf8')).toBe(
      committed('calls.truth.json').toString('utf8'),
    );
  });

  withTshark.it('is small and tshark agrees with its truth', async () => {
    const file = join(sampleDir, 'calls.pcap');
    const truth = JSON.parse(readFileSync(join(sampleDir, 'calls.truth.json'), 'utf8')) as GroundTruth;
    expect(statSync(file).size).toBeLessThan(2_000_000);
    expect(new Set(truth.calls.map((c) => c.outcome)).size).toBe(6);
    expect(readPcap(file).packets).toBe(truth.packets);
    await expectSipStatMatches(file, truth);
    await expectRtpStreamsMatch(file, truth, false);
  });
});
