import { describe, expect, it } from 'vitest';
import type { AlertRule } from './rules.js';
import { fingerprintOf, type GroupValue, RuleState } from './state.js';

const rule = (over: Partial<AlertRule> = {}): AlertRule => ({
  name: 'failed',
  kpi: 'failed-call-ratio',
  by: ['callee_vm'],
  windowMs: 60_000,
  direction: 'above',
  threshold: 0.2,
  resolve: 0.1,
  minAttempts: 5,
  forMs: 20_000,
  offsetMs: 0,
  mosBelow: 3.6,
  labels: {},
  annotations: {},
  ...over,
});
const v = (vm: string, value: number | null, attempts = 10): GroupValue => ({
  group: { callee_vm: vm },
  value,
  attempts,
  examples: [],
});
const moves = (state: RuleState, at: number, values: GroupValue[]) =>
  state.step(at, values).map((t) => `${t.group.callee_vm}:${t.from}→${t.to}`);

describe('alert state', () => {
  it('pends, fires after `for`, holds inside the hysteresis band, resolves past it', () => {
    const s = new RuleState(rule());
    expect(moves(s, 0, [v('a', 0.3), v('b', 0)])).toEqual(['a:inactive→pending']);
    expect(moves(s, 10_000, [v('a', 0.3)])).toEqual([]);
    expect(moves(s, 20_000, [v('a', 0.25)])).toEqual(['a:pending→firing']);
    expect(s.firing().map((f) => f.group.callee_vm)).toEqual(['a']);
    expect(moves(s, 30_000, [v('a', 0.15)])).toEqual([]); // between resolve and threshold: still firing
    expect(moves(s, 40_000, [v('a', 0.05)])).toEqual(['a:firing→resolved']);
    expect(s.size).toBe(0);
    expect(moves(s, 50_000, [v('a', 0.3)])).toEqual(['a:inactive→pending']);
  });

  it('a pending alert that is not over any more goes back to inactive; too few attempts never fire', () => {
    const s = new RuleState(rule());
    expect(moves(s, 0, [v('a', 0.5, 3)])).toEqual([]); // 1 of 3 failed: under min-attempts
    expect(moves(s, 0, [v('a', 0.5)])).toEqual(['a:inactive→pending']);
    expect(moves(s, 10_000, [v('a', 0.1)])).toEqual(['a:pending→inactive']);
  });

  it('a firing group with no data or too few attempts resolves; `for: 0` fires at once; below rules', () => {
    const s = new RuleState(rule({ forMs: 0 }));
    expect(moves(s, 0, [v('a', 0.5), v('b', 0.5)])).toEqual(['a:inactive→firing', 'b:inactive→firing']);
    expect(moves(s, 10_000, [v('a', 0.5, 2)])).toEqual(['a:firing→resolved', 'b:firing→resolved']);
    const below = new RuleState(
      rule({ direction: 'below', threshold: 1, resolve: 1, forMs: 0, minAttempts: 0 }),
    );
    expect(moves(below, 0, [v('a', 0), v('b', 3)])).toEqual(['a:inactive→firing']);
    expect(moves(below, 1000, [v('a', 1)])).toEqual(['a:firing→resolved']);
  });

  it('holds at most maxAlerts groups per rule and counts the rest', () => {
    const s = new RuleState(rule({ forMs: 0 }), 100);
    s.step(
      0,
      Array.from({ length: 1000 }, (_, i) => v(`vm${i}`, 1)),
    );
    expect(s.size).toBe(100);
    expect(s.overflow).toBe(900);
  });

  it('fingerprints do not depend on label order', () => {
    expect(fingerprintOf('r', { a: '1', b: '2' })).toBe(fingerprintOf('r', { b: '2', a: '1' }));
    expect(fingerprintOf('r', { a: '1' })).not.toBe(fingerprintOf('r2', { a: '1' }));
  });
});
