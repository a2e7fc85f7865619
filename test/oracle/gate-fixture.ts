/**
 * Not a test file of its own: tools.test.ts runs it in a child vitest, with CI and
 * CALLSCOPE_TEST_MISSING set, to see what the gate registers (a skip, or under CI a failure).
 */
import { expect, it } from 'vitest';
import { needs, SHARED_CAPTURES } from './tools.js';

needs('tshark').describe('gated on tshark', () => {
  it('runs with tshark', () => {
    expect(1).toBe(1);
  });
});

needs(SHARED_CAPTURES).it('runs with the shared captures', () => {
  expect(1).toBe(1);
});
