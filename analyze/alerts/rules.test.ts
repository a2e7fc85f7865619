import { describe, expect, it } from 'vitest';
import { GROUPINGS, KPI_KINDS, loadRules, parseDuration, parseRules, RulesError } from './rules.js';

const one = (rule: string) => `rules:\n  - ${rule.trim().split('\n').join('\n    ')}\n`;
const error = (text: string): string => {
  try {
    parseRules(text, 'r.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(RulesError);
    expect((e as RulesError).exitCode).toBe(65);
    expect((e as Error).message).not.toContain('\n');
    return (e as Error).message;
  }
  throw new Error('no error');
};

describe('alert rules file', () => {
  it('the shipped defaults load, cover every KPI, and say why in their annotations', () => {
    const rules = loadRules();
    expect(rules.rules.length).toBeGreaterThanOrEqual(KPI_KINDS.length);
    expect(new Set(rules.rules.map((r) => r.kpi))).toEqual(new Set(KPI_KINDS));
    for (const r of rules.rules) {
      expect(r.annotations.summary, r.name).toBeTruthy();
      for (const b of r.by) expect(GROUPINGS[r.kpi]).toContain(b);
    }
    const failed = rules.rules.find((r) => r.name === 'failed-call-ratio-by-vm')!;
    expect(failed).toMatchObject({
      threshold: 0.2,
      resolve: 0.1,
      minAttempts: 20,
      forMs: 120_000,
      windowMs: 300_000,
    });
  });

  it('durations', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration(15)).toBe(15_000);
    expect(parseDuration('5 minutes')).toBeNull();
  });

  it('a typo is one line naming the rule and the field (exit 65)', () => {
    expect(error(one('name: x\nkpi: failed-call-ratio\nwindw: 5m\nabove: 0.2'))).toBe(
      'r.yaml: rule "x": windw: unknown field (did you mean "window"?)',
    );
    expect(error(one('name: x\nkpi: failed-call-rate\nwindow: 5m\nabove: 0.2'))).toMatch(
      /rule "x": kpi: "failed-call-rate" is not one of .* \(did you mean "failed-call-ratio"\?\)$/,
    );
    expect(error(one('name: x\nkpi: failed-call-ratio\nwindow: 5 min\nabove: 0.2'))).toContain(
      'rule "x": window: "5 min" is not a duration',
    );
    expect(error(one('name: x\nkpi: failed-call-ratio\nby: [calee_vm]\nwindow: 5m\nabove: 0.2'))).toContain(
      'rule "x": by: "calee_vm" is not a grouping of failed-call-ratio',
    );
    expect(error(one('name: x\nkpi: failed-call-ratio\nwindow: 5m\nabove: 0.2\nresolve: 0.3'))).toContain(
      'rule "x": resolve: must be at most the threshold',
    );
    expect(error(one('name: x\nkpi: failed-call-ratio\nwindow: 5m'))).toContain(
      'rule "x": above: a rule has exactly one',
    );
    expect(error(one('kpi: failed-call-ratio\nwindow: 5m\nabove: 1'))).toBe('r.yaml: rule #1: name: missing');
    expect(error(one('name: x\nkpi: silence\nwindow: 5m\nbelow: 1\nlabels: {alertname: y}'))).toContain(
      'rule "x": labels: "alertname"',
    );
    expect(error('rules:\n  - name: x\n    kpi: [\n')).toMatch(/^r\.yaml:\d+: /);
    expect(error('rule: []')).toBe('r.yaml: unknown field "rule" (did you mean "rules"?)');
    expect(
      error(
        `${one('name: x\nkpi: silence\nwindow: 5m\nbelow: 1')}  - name: x\n    kpi: silence\n    window: 5m\n    below: 1\n`,
      ),
    ).toBe('r.yaml: rule "x": name: used by an earlier rule');
  });
});
