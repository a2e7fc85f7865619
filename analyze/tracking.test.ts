import { describe, expect, it } from 'vitest';
import { eventWholeMs, KeyHash } from './tracking.js';

describe('eventWholeMs', () => {
  it('equals the exact BigInt division, at ms boundaries and anywhere between', () => {
    const base = 1_700_000_000_000_000_000n;
    const cases: bigint[] = [0n, 1n, 999_999n, 1_000_000n, base, base - 1n, base + 999_999n, base + 999_000n];
    for (let k = 0n; k < 2000n; k++) cases.push(base + k * 1_000_000n - 1n, base + k * 1_000_000n + 1n);
    for (let i = 0; i < 20_000; i++)
      cases.push(
        base + BigInt(Math.floor(Math.random() * 1e15)) * 1000n + BigInt(Math.floor(Math.random() * 1000)),
      );
    cases.push(9_000_000_000_000_000_123n, 2n ** 62n + 999_999n);
    for (const ns of cases) expect(eventWholeMs(ns), String(ns)).toBe(Number(ns / 1_000_000n));
  });
});

describe('KeyHash', () => {
  it('tells parts apart by where they split, and is the same for the same parts', () => {
    const h = new KeyHash();
    const ab = h.reset().text('ab').text('c').value();
    expect(h.reset().text('a').text('bc').value()).not.toBe(ab);
    expect(h.reset().text('ab').text('c').value()).toBe(ab);
    expect(Number.isSafeInteger(ab)).toBe(true);
  });
});
