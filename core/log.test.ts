import { describe, expect, it } from 'vitest';
import { createLogger, ProblemLog } from './log.js';

function recorder() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', format: 'json', write: (l) => lines.push(JSON.parse(l)) });
  return { lines, logger };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ProblemLog', () => {
  it('logs the first N of a kind per interval, says how many it held back, and logs a later burst again', async () => {
    const { lines, logger } = recorder();
    const problems = new ProblemLog(logger, { perKind: 20, intervalMs: 300 });
    for (let i = 0; i < 25; i++) problems.report('malformed', 'bad frame', { frame: i });
    problems.report('other', 'something else', {});
    expect(lines.filter((l) => l.kind === 'malformed' && l.msg === 'bad frame')).toHaveLength(20);
    expect(lines.filter((l) => l.kind === 'other')).toHaveLength(1);
    // At the end of the interval: one line for the 5 held back, with the first one's context.
    await sleep(450);
    const held = lines.filter((l) => l.suppressed !== undefined);
    expect(held).toEqual([
      expect.objectContaining({ kind: 'malformed', suppressed: 5, total: 25, frame: 20, level: 'warn' }),
    ]);
    // A burst one interval later is logged, not swallowed for the life of the process.
    for (let i = 0; i < 25; i++) problems.report('malformed', 'bad frame', { frame: 100 + i });
    const second = lines.filter((l) => l.msg === 'bad frame' && Number(l.frame) >= 100);
    expect(second).toHaveLength(20);
    problems.summary({ component: 'test' });
    expect(lines.filter((l) => l.suppressed !== undefined).at(-1)).toMatchObject({
      kind: 'malformed',
      suppressed: 5,
      total: 50,
      component: 'test',
    });
    expect(problems.counts()).toEqual({ malformed: 50, other: 1 });
  });
});
