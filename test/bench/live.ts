/**
 * The live-capture part of `npm run bench`: a veth pair with its other end in a network namespace of
 * its own (veth.ts), the sample capture (capture/sample/calls.pcap, SIP + RTP) looped by tcpreplay
 * onto the far end, and `analyzeInterface` (LiveCapture + the whole pipeline: SIP, RTP, quality) on
 * the near end with default options. Two measures:
 *
 * 1. Stepped rate: `tcpreplay --pps N` for about 3 s at N = 50k, 100k, 150k, ... until a step loses
 *    packets (kernel drops, overload drops, or fewer delivered than sent); the highest step with none
 *    is the zero-drop rate, given as tcpreplay's achieved rate (it falls short of N on a busy machine).
 * 2. Peak: `tcpreplay --topspeed` of 100 loops (743,400 packets); delivered packets per second of
 *    tcpreplay's sending time, with the drops, and the ratio to tcpreplay's sending rate.
 *
 * Both processes share the machine (tcpreplay takes most of a core at top speed). Skipped without
 * root, ip, tcpreplay or the pcap package. `node dist/test/bench/live.js [--json]` runs it alone.
 */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { analyzeInterface } from '../../analyze/analyze.js';
import { pcapAvailable } from '../../capture/live/binding.js';
import type { LiveCapture } from '../../capture/live/source.js';
import { tuneRuntime } from '../../core/runtime.js';
import { REPO_ROOT } from '../oracle/tools.js';
import { type ReplayResult, VethPair, vethUnavailableReason } from './veth.js';

const SAMPLE = join(REPO_ROOT, 'capture', 'sample', 'calls.pcap');
const SAMPLE_PACKETS = 7434;

export interface LiveStep {
  /** --pps asked of tcpreplay, or 'topspeed'. */
  asked: number | 'topspeed';
  sent: number;
  /** tcpreplay's achieved rate. */
  sentPps: number;
  delivered: number;
  /** delivered / tcpreplay's sending time. */
  deliveredPps: number;
  droppedKernel: number;
  droppedOverload: number;
  lossless: boolean;
}

export interface LiveBenchResult {
  skipped: string | null;
  machine: { cpu: string; cores: number; node: string };
  steps: LiveStep[];
  /** tcpreplay's achieved rate at the highest lossless step. */
  zeroDropPps: number | null;
  peak: LiveStep | null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function step(veth: VethPair, asked: number | 'topspeed', loops: number): Promise<LiveStep> {
  const stop = new AbortController();
  let started: (c: LiveCapture) => void = () => {};
  const ready = new Promise<LiveCapture>((resolve) => {
    started = resolve;
  });
  const summary = analyzeInterface(veth.capture, {
    signal: stop.signal,
    capture: { healthIntervalMs: 0 },
    onStart: started,
  });
  await ready;
  let replay: ReplayResult;
  try {
    replay = await veth.replay(SAMPLE, [
      ...(asked === 'topspeed' ? ['--topspeed'] : ['--pps', String(asked)]),
      '--loop',
      String(loops),
    ]);
    await sleep(300);
  } finally {
    stop.abort();
  }
  const s = await summary;
  const c = s.capture!;
  return {
    asked,
    sent: replay.sent,
    sentPps: Math.round(replay.pps),
    delivered: s.packets,
    deliveredPps: Math.round(s.packets / replay.seconds),
    droppedKernel: c.droppedKernel,
    droppedOverload: c.droppedOverload,
    lossless: c.droppedKernel === 0 && c.droppedOverload === 0 && s.packets === replay.sent,
  };
}

export async function runLiveBench(options: {
  log: (line: string) => void;
  quick?: boolean;
}): Promise<LiveBenchResult> {
  const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version };
  const skipped = vethUnavailableReason() ?? (pcapAvailable() ? null : "needs the optional 'pcap' package");
  if (skipped) {
    options.log(`live capture: skipped (${skipped})`);
    return { skipped, machine, steps: [], zeroDropPps: null, peak: null };
  }
  const veth = new VethPair('lcb');
  const steps: LiveStep[] = [];
  let zeroDropPps: number | null = null;
  let peak: LiveStep | null = null;
  const seconds = options.quick ? 2 : 3;
  try {
    for (let pps = 50_000; pps <= 500_000; pps += 50_000) {
      const loops = Math.max(1, Math.ceil((pps * seconds) / SAMPLE_PACKETS));
      const r = await step(veth, pps, loops);
      steps.push(r);
      options.log(
        `  live --pps ${pps}: sent ${r.sent} at ${r.sentPps} pps, delivered ${r.delivered}, ` +
          `kernel drops ${r.droppedKernel}, overload drops ${r.droppedOverload}${r.lossless ? '' : '  LOSS'}`,
      );
      if (!r.lossless) break;
      zeroDropPps = Math.max(zeroDropPps ?? 0, r.sentPps);
      // tcpreplay no longer reaches the asked rate: higher steps would measure the same.
      if (r.sentPps < pps * 0.9) break;
    }
    peak = await step(veth, 'topspeed', options.quick ? 50 : 100);
    options.log(
      `  live --topspeed: sent ${peak.sent} at ${peak.sentPps} pps, delivered ${peak.delivered} ` +
        `(${peak.deliveredPps} pps, ×${(peak.deliveredPps / peak.sentPps).toFixed(2)} of sent), ` +
        `kernel drops ${peak.droppedKernel}, overload drops ${peak.droppedOverload}`,
    );
  } finally {
    veth.destroy();
  }
  return { skipped: null, machine, steps, zeroDropPps, peak };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  tuneRuntime();
  const json = process.argv.includes('--json');
  const log = (line: string) => {
    if (!json) process.stderr.write(`${line}\n`);
  };
  runLiveBench({ log, quick: process.argv.includes('--quick') })
    .then((r) => {
      if (json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else
        console.log(
          `live capture: ${r.zeroDropPps ?? 'n/a'} pps with 0 drops (target ≥ 100,000); ` +
            `peak ${r.peak?.deliveredPps ?? 'n/a'} pps delivered (target ≥ 250,000)`,
        );
    })
    .catch((e) => {
      console.error(e);
      process.exitCode = 1;
    });
}
