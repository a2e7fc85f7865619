/**
 * The alert rules as Grafana runs them, without a Grafana server: every default rule's Grafana SQL,
 * macro-expanded as the ClickHouse datasource expands it, runs against a store seeded by `callscope
 * run` of a generator capture and yields one value per group; the Threshold's verdict on each group
 * (gt/lt the rule's threshold) equals the built-in evaluator's at the same instant. The failed-call
 * ratio per VM equals `callscope kpis --by vm` (the callee side) over the same calls.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BATCHED_KPIS, batchedExamples, batchedRuleValues, examplesOf } from '../analyze/alerts/batch.js';
import { ruleValues } from '../analyze/alerts/evaluator.js';
import { windowOf } from '../analyze/alerts/kpis.js';
import { type AlertRule, type AlertRules, loadRules } from '../analyze/alerts/rules.js';
import type { KpiGroup } from '../analyze/calls/stored-kpis.js';
import { EVERY_OUTCOME, generateCapture } from '../capture/generator/generate.js';
import { openStore, type Store } from '../ingest/store/client.js';
import { built, needs, REPO_ROOT, removeTmpDir, tmpDir, tool } from '../test/oracle/tools.js';
import { grafanaRuleSql } from './alerting.js';
import { expandMacros } from './macros.js';
import { provisioningTree } from './provisioning.js';

const CLI = join(REPO_ROOT, 'dist', 'bin', 'callscope.js');
const START = 1_700_100_000;
const gate = needs(built(CLI));

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

it('the provisioning file holds every default rule with its query, reduce and threshold', () => {
  const file = parse(provisioningTree().get('provisioning/alerting/callscope.yaml')!);
  const rules = loadRules();
  expect(file.groups[0].rules.map((r: { title: string }) => r.title)).toEqual(rules.rules.map((r) => r.name));
  for (const r of file.groups[0].rules) {
    expect(r.condition).toBe('C');
    expect(r.data.map((q: { refId: string }) => q.refId)).toEqual(['A', 'B', 'C']);
    expect(r.data[0].datasourceUid).toBe('callscope-clickhouse');
    expect(r.data[0].model.rawSql).toContain('$__fromTime');
  }
  expect(file.contactPoints[0].receivers[0].type).toBe('prometheus-alertmanager');
  expect(file.policies[0].receiver).toBe(file.contactPoints[0].name);
});

needs(tool('promtool')).it('the Prometheus rules over the metrics pass `promtool check rules`', () => {
  const dir = tmpDir('callscope-prom-rules-');
  try {
    const file = join(dir, 'rules.yml');
    writeFileSync(file, provisioningTree().get('prometheus/callscope-rules.yml')!);
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS: 4 rules found');
  } finally {
    removeTmpDir(dir);
  }
});

gate.describe('default rules over a store seeded by `callscope run`', () => {
  let dir = '';
  let store: Store;
  let byVm: KpiGroup[] = [];
  const at = (START + 600) * 1000;
  // Windows wide enough to hold the whole capture, so that every KPI has groups to judge.
  let rules: AlertRules;

  beforeAll(async () => {
    dir = tmpDir('callscope-alerting-');
    const pcap = join(dir, 'calls.pcap');
    generateCapture({
      output: pcap,
      seed: 21,
      vms: 4,
      calls: 120,
      callsPerSecond: 10,
      callDurationSec: 2,
      startTime: START,
      outcomes: { ...EVERY_OUTCOME, answered: 6, failed: 4 },
    });
    const map = join(dir, 'vms.json');
    writeFileSync(
      map,
      JSON.stringify(
        [1, 2, 3, 4].map((n) => ({ mac: `02:00:00:00:00:0${n}`, id: `10${n}`, name: `vm${n}` })),
      ),
    );
    const data = join(dir, 'store');
    const run = cli([
      'run',
      '--pcap',
      pcap,
      '--vm-map',
      map,
      '--data-dir',
      data,
      '--node-name',
      'lab-1',
      '--json',
    ]);
    expect(run.status, run.stderr).toBe(0);
    const k = cli([
      'kpis',
      '--data-dir',
      data,
      '--json',
      '--by',
      'vm',
      '--since',
      new Date(START * 1000 - 3_600_000).toISOString(),
      '--until',
      new Date(at).toISOString(),
    ]);
    expect(k.status, k.stderr).toBe(0);
    byVm = JSON.parse(k.stdout);
    store = await openStore({ dataDir: data });
    const defaults = loadRules();
    rules = {
      ...defaults,
      delayMs: 0,
      rules: defaults.rules.map((r) => ({ ...r, windowMs: 3_600_000, minAttempts: 1 })),
    };
  }, 180_000);
  afterAll(async () => {
    await store?.close();
    if (dir) removeTmpDir(dir);
  });

  it('the failed-call ratio per VM is `callscope kpis --by vm`’s, callee side', async () => {
    const rule = rules.rules.find((r) => r.name === 'failed-call-ratio-by-vm')!;
    const values = await ruleValues(store.client, 'callscope', rules, rule, at);
    expect(values.length).toBeGreaterThan(1);
    const expected = byVm
      .filter((g) => g.direction === 'in' && g.key !== '')
      .map((g) => [g.key, g.kpis.failedRatio])
      .sort();
    // kpis rounds its ratios to 6 places.
    const round = (v: number | null) => (v === null ? null : Math.round(v * 1e6) / 1e6);
    expect(values.map((v) => [v.group.callee_vm, round(v.value)]).sort()).toEqual(expected);
    for (const v of values) if ((v.value ?? 0) > 0) expect(v.examples.length).toBeGreaterThan(0);
  });

  it("each rule's Grafana query gives a value per group, and Grafana's threshold says what the evaluator says", async () => {
    const judged: string[] = [];
    // What the evaluator judges: the call rules in one batched read (batch.ts), the others one by one.
    const batched = await batchedRuleValues(
      store.client,
      'callscope',
      rules,
      rules.rules.filter((r) => BATCHED_KPIS.has(r.kpi)),
      at,
    );
    for (const base of rules.rules) {
      const values = batched.get(base.name) ?? (await ruleValues(store.client, 'callscope', rules, base, at));
      if (BATCHED_KPIS.has(base.kpi)) {
        // Batched, they are what the rule's own query gives; the examples come from a second read.
        const own = await ruleValues(store.client, 'callscope', rules, base, at);
        const found = await batchedExamples(
          store.client,
          'callscope',
          rules,
          base,
          at,
          values.map((v) => v.group),
        );
        const counted = (vs: typeof values, examples: (v: (typeof values)[number]) => string[]) =>
          vs
            .map((v) => ({ ...v, examples: examples(v).length }))
            .sort((a, b) => JSON.stringify(a.group).localeCompare(JSON.stringify(b.group)));
        expect(
          counted(values, (v) => examplesOf(found, base, v.group)),
          base.name,
        ).toEqual(counted(own, (v) => v.examples));
      }
      // A threshold in the middle of the values, so that both verdicts occur where there are two groups.
      const numbers = values
        .map((v) => v.value)
        .filter((v): v is number => v !== null)
        .sort((a, b) => a - b);
      const middle = numbers.length > 0 ? numbers[Math.floor(numbers.length / 2)]! : base.threshold;
      const rule: AlertRule = { ...base, threshold: middle, resolve: middle };
      const sql = expandMacros(grafanaRuleSql(rule, rules), {
        from: new Date(windowOf(rule, rules.delayMs, at).from),
        to: new Date(windowOf(rule, rules.delayMs, at).to),
        intervalSec: 30,
        vars: {},
      });
      const rows = await (await store.client.query({ query: sql, format: 'JSONEachRow' })).json<
        Record<string, unknown>
      >();
      const key = (labels: Record<string, unknown>) =>
        rule.by.map((b) => `${b}=${String(labels[b])}`).join(',');
      // One row per group, the labels then the value.
      expect(new Set(rows.map(key)).size, rule.name).toBe(rows.length);
      for (const r of rows) expect(Object.keys(r), rule.name).toEqual([...rule.by, 'value']);
      const over = (v: number) => (rule.direction === 'above' ? v > rule.threshold : v < rule.threshold);
      const grafana = rows
        .filter((r) => over(Number(r.value)))
        .map(key)
        .sort();
      const builtIn = values
        .filter((v) => v.value !== null && v.attempts >= rule.minAttempts && over(v.value))
        .map((v) => key(v.group))
        .sort();
      expect(grafana, rule.name).toEqual(builtIn);
      if (rows.length > 0) judged.push(rule.kpi);
    }
    // The generator's capture has calls, PDDs, media and VMs: those KPIs had groups to judge.
    for (const kpi of ['failed-call-ratio', 'pdd-p95', 'low-mos-share']) expect(judged, kpi).toContain(kpi);
  });
});
