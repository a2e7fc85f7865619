import { afterEach, describe, expect, it, vi } from 'vitest';
import { callAfter } from '../sources.js';
import { LiveCaptureError } from './binding.js';
import { MAX_TIMER_MS, validHealthIntervalMs } from './source.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('timers past 2^31-1 ms', () => {
  it('callAfter waits the whole time, re-arming in chunks', async () => {
    vi.useFakeTimers();
    const done = vi.fn();
    const ms = 3 * MAX_TIMER_MS + 5;
    callAfter(ms, done);
    await vi.advanceTimersByTimeAsync(1000);
    expect(done).not.toHaveBeenCalled(); // Node would have fired an overflowing timer after 1 ms
    await vi.advanceTimersByTimeAsync(ms - 1010);
    expect(done).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(20);
    expect(done).toHaveBeenCalledTimes(1);
  });

  it('callAfter can be cancelled, also after a re-arm', async () => {
    vi.useFakeTimers();
    const done = vi.fn();
    const cancel = callAfter(MAX_TIMER_MS + 1000, done);
    await vi.advanceTimersByTimeAsync(MAX_TIMER_MS + 10);
    cancel();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(done).not.toHaveBeenCalled();
  });

  it('a health interval is 0 (final record only) or 1 ms .. 2^31-1 ms', () => {
    expect(validHealthIntervalMs(0)).toBe(0);
    expect(validHealthIntervalMs(1)).toBe(1);
    expect(validHealthIntervalMs(MAX_TIMER_MS)).toBe(MAX_TIMER_MS);
    for (const bad of [-1, 0.5, MAX_TIMER_MS + 1, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => validHealthIntervalMs(bad), String(bad)).toThrow(LiveCaptureError);
  });
});
