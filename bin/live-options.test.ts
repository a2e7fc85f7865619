import { describe, expect, it } from 'vitest';
import { Settings, UsageError } from './config.js';
import { liveOptionsOf, MAX_DURATION_SEC, timeOf } from './flags.js';

const optionsOf = (flags: Record<string, string>) => liveOptionsOf(new Settings(flags, {}), {});

describe('liveOptionsOf: timer ranges', () => {
  it('takes --duration up to a year and rejects what a timer cannot hold', () => {
    expect(optionsOf({ duration: '0.5' }).durationSec).toBe(0.5);
    expect(optionsOf({ duration: String(MAX_DURATION_SEC) }).durationSec).toBe(MAX_DURATION_SEC);
    expect(optionsOf({}).durationSec).toBeUndefined();
    for (const bad of ['0', '-1', 'abc', 'Infinity', '1e400', String(MAX_DURATION_SEC + 1)]) {
      expect(() => optionsOf({ duration: bad }), bad).toThrow(UsageError);
      expect(() => optionsOf({ duration: bad }), bad).toThrow(/--duration/);
    }
  });

  it('takes --health-interval from 1 s to a day', () => {
    expect(optionsOf({}).capture?.healthIntervalMs).toBe(10_000);
    expect(optionsOf({ 'health-interval': '1' }).capture?.healthIntervalMs).toBe(1000);
    expect(optionsOf({ 'health-interval': '2.5' }).capture?.healthIntervalMs).toBe(2500);
    expect(optionsOf({ 'health-interval': '86400' }).capture?.healthIntervalMs).toBe(86_400_000);
    for (const bad of ['0', '0.5', '-3', '86401', '3000000']) {
      expect(() => optionsOf({ 'health-interval': bad }), bad).toThrow(UsageError);
      expect(() => optionsOf({ 'health-interval': bad }), bad).toThrow(/--health-interval/);
    }
  });
});

describe('timeOf: --since / --until', () => {
  const now = Date.parse('2026-12-06T10:00:00Z');
  const at = (text: string) => timeOf(new Settings({ since: text }, {}), 'since', now)?.toISOString();
  it('takes ISO times and ages back from now', () => {
    expect(at('2026-12-06T08:30:00Z')).toBe('2026-12-06T08:30:00.000Z');
    expect(at('15m')).toBe('2026-12-06T09:45:00.000Z');
    expect(at('2h')).toBe('2026-12-06T08:00:00.000Z');
    expect(at('7d')).toBe('2026-11-29T10:00:00.000Z');
    expect(timeOf(new Settings({}, {}), 'since', now)).toBeUndefined();
    expect(() => at('yesterday')).toThrow(UsageError);
  });
});
