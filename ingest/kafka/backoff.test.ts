/** Retry backoff and the heartbeat-ticking sleep. */
import { describe, expect, it } from 'vitest';
import { backoffDelay, sleepWhile } from './backoff.js';

describe('backoffDelay', () => {
  it('grows exponentially, stays within the bound, and jitters below it', () => {
    const opts = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
    expect(backoffDelay(0, opts, () => 0)).toBe(100);
    expect(backoffDelay(3, opts, () => 0)).toBe(800);
    expect(backoffDelay(4, opts, () => 0)).toBe(1000);
    expect(backoffDelay(1000, opts, () => 0)).toBe(1000);
    expect(backoffDelay(4, opts, () => 1)).toBe(500);
  });

  it('sleepWhile ticks (heartbeats) and stops early when told', async () => {
    let ticks = 0;
    let go = true;
    setTimeout(() => {
      go = false;
    }, 120);
    const full = await sleepWhile(
      10_000,
      () => go,
      async () => {
        ticks++;
      },
      20,
    );
    expect(full).toBe(false);
    expect(ticks).toBeGreaterThanOrEqual(3);
  });
});
