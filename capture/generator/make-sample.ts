/**
 * Writes the demo capture shipped in capture/sample: the six original call outcomes, RTP with a little
 * jitter and loss so the quality views have something to show, small enough (< 2 MB) to keep in the
 * repository. Its bytes are pinned by a test: newer outcomes stay out of SAMPLE_OPTIONS.
 * Run: npx tsc -p tsconfig.json && node dist/capture/generator/make-sample.js [dir]
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type GeneratorOptions, type GroundTruth, generateCapture } from './generate.js';

export const SAMPLE_OPTIONS: Omit<GeneratorOptions, 'output'> = {
  seed: 20240611,
  vms: 4,
  calls: 40,
  callsPerSecond: 2,
  callDurationSec: 3,
  outcomes: { answered: 20, busy: 4, cancelled: 4, unavailable: 4, noAnswer: 4, challenged: 4 },
  rtp: { codec: 'PCMU', ptimeMs: 20, jitterMs: 2, lossRate: 0.005, reorderRate: 0.002 },
};

/** Generates `calls.pcap` and `calls.truth.json` in `dir`; returns the truth. */
export function makeSample(dir: string): GroundTruth {
  const truth = generateCapture({ ...SAMPLE_OPTIONS, output: join(dir, 'calls.pcap') });
  // The JSON sits next to the capture; an absolute path would only be true on this machine.
  truth.options.output = 'calls.pcap';
  writeFileSync(join(dir, 'calls.truth.json'), `${JSON.stringify(truth, null, 2)}\n`);
  return truth;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = resolve(process.argv[2] ?? 'capture/sample');
  const truth = makeSample(dir);
  console.log(`${join(dir, 'calls.pcap')}: ${truth.packets} packets, ${truth.calls.length} calls`);
}
