import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import type { AnalyzeSummary } from '../analyze/summary.js';
import { formatSummary } from './report.js';

const sample = join(new URL('..', import.meta.url).pathname, 'capture/sample/calls.pcap');
let summary: AnalyzeSummary;

beforeAll(async () => {
  summary = await analyzeFile(sample, {});
});

/** The summary with its streams replaced by copies of the first, changed by `changes`. */
function withStreams(...changes: Array<Partial<AnalyzeSummary['rtp']['streams'][number]>>): AnalyzeSummary {
  const [first] = summary.rtp.streams;
  return {
    ...summary,
    rtp: { ...summary.rtp, streams: changes.map((c, i) => ({ ...first, ssrc: i + 1, ...c })) },
  };
}

describe('formatSummary', () => {
  it("gives the capture's own packet rate apart from callscope's processing speed", () => {
    const text = formatSummary({ ...summary, elapsedMs: 1234.5, packetsPerSecond: 6022 });
    // 7,434 packets over 48.8 s of capture time.
    expect(text).toMatch(/^ {2}packets +7,434 over 48\.801 s \(152 packets\/s in the capture\), from /m);
    expect(text.split('\n').at(-1)).toBe('decoded in 1.23 s (6,022 packets/s processing)');
    expect(text).not.toMatch(/analysed in/);
  });

  it('leaves out rates it has no figures for', () => {
    const text = formatSummary({ ...summary, durationSec: 0, elapsedMs: 0, packetsPerSecond: 0 });
    expect(text).not.toMatch(/in the capture/);
    expect(text).not.toMatch(/decoded in/);
  });

  it("says why tshark marks a stream in its problems column, with a legend instead of a bare '!'", () => {
    const text = formatSummary(
      withStreams(
        { problem: true, sequenceErrors: 3, wrongTimestamps: 0, minMos: 3 },
        { problem: true, sequenceErrors: 0, wrongTimestamps: 2, minMos: 3.5 },
        { problem: true, sequenceErrors: 1, wrongTimestamps: 1, minMos: 4 },
        { problem: false, sequenceErrors: 0, wrongTimestamps: 0, lost: 0, lossPercent: 0, minMos: 4.4 },
      ),
    );
    const lines = text.split('\n');
    const header = lines.findIndex((l) => l.startsWith('  worst streams'));
    expect(lines[header]).toMatch(/MOS +problems$/);
    const rows = lines.slice(header + 2).filter((l) => /^ {4}\S/.test(l));
    expect(rows.map((l) => /(?: {2}(seq \d+|ts \d+|seq \d+, ts \d+))?$/.exec(l)?.[1])).toEqual([
      'seq 3',
      'ts 2',
      'seq 1, ts 1',
      undefined,
    ]);
    // The column starts where its header does.
    expect(rows[0].indexOf('seq 3')).toBe(lines[header].indexOf('problems'));
    expect(text).not.toMatch(/ !$/m);
    expect(text).toMatch(
      /^ {2}problems: why tshark marks the stream in "Problems\?": seq N = N packets out of sequence$/m,
    );
  });

  it('prints no legend when no listed stream has a problem', () => {
    const text = formatSummary(withStreams({ problem: false, sequenceErrors: 0, wrongTimestamps: 0 }));
    expect(text).not.toMatch(/problems:/);
  });
});
