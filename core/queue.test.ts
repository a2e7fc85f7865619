/**
 * LiveQueue: the bound covers waiting and handed-over items, batches are at most maxBatch, drops are
 * counted by reason, and pushed = delivered + dropped + held at any time.
 */
import { describe, expect, it } from 'vitest';
import type { LogFields, Logger } from './log.js';
import { LiveQueue } from './queue.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function recordingLogger(): {
  logger: Logger;
  lines: Array<{ level: string; msg: string; fields?: LogFields }>;
} {
  const lines: Array<{ level: string; msg: string; fields?: LogFields }> = [];
  const at =
    (level: string) =>
    (msg: string, fields?: LogFields): void => {
      lines.push({ level, msg, fields });
    };
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { logger, lines };
}

describe('LiveQueue', () => {
  it('bounds what it holds, handed-over batches included, and counts what it drops as queue full', async () => {
    const batches: number[][] = [];
    let release: () => void = () => {};
    const { logger, lines } = recordingLogger();
    const queue = new LiveQueue<number>(
      (items) => {
        batches.push(items);
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
      { maxItems: 10, maxBatch: 4, logger, sink: 'test' },
    );
    for (let i = 0; i < 6; i++) queue.push(i);
    await tick();
    // One batch of 4 handed over and not settled: it still counts against the bound.
    expect(batches).toEqual([[0, 1, 2, 3]]);
    expect(queue.length).toBe(6);
    for (let i = 6; i < 15; i++) queue.push(i);
    expect(queue.length).toBe(10);
    expect(queue.peak).toBe(10);
    expect(queue.dropped).toBe(5);
    expect(queue.droppedByReason()).toEqual({ 'queue full': 5 });
    expect(queue.pushed).toBe(queue.delivered + queue.dropped + queue.length);
    // The first drop is logged at once, by reason, with the bound.
    const drops = lines.filter((l) => l.msg.includes('cannot keep up'));
    expect(drops).toHaveLength(1);
    expect(drops[0]).toMatchObject({ level: 'error', fields: { reason: 'queue full', maxQueuedEvents: 10 } });
    // Settling frees the batch's room; the rest goes in batches of at most 4, in order.
    const drained = queue.drain();
    for (let i = 0; i < 5; i++) {
      release();
      await tick();
      await tick();
    }
    await drained;
    expect(batches.flat()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(batches.every((b) => b.length <= 4)).toBe(true);
    expect(queue.length).toBe(0);
    expect(queue.delivered).toBe(10);
    expect(queue.pushed).toBe(queue.delivered + queue.dropped + queue.length);
  });

  it('counts the items of a batch the sink failed as sink failed', async () => {
    const { logger } = recordingLogger();
    const queue = new LiveQueue<number>(() => Promise.reject(new Error('down')), {
      maxItems: 100,
      logger,
      sink: 'test',
    });
    for (let i = 0; i < 7; i++) queue.push(i);
    await queue.drain();
    expect(queue.droppedByReason()).toEqual({ 'sink failed': 7 });
    expect(queue.delivered).toBe(0);
    expect(queue.pushed).toBe(queue.delivered + queue.dropped + queue.length);
  });
});
