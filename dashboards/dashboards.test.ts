/**
 * The dashboards without a Grafana server (issue 13's acceptance, CONTEXT §4):
 * - every dashboard validates against the foundation SDK's JSON Schemas (../shared/grafana-schemas);
 * - the committed provisioning tree (dashboards/grafana/) is what the code generates, and its YAML
 *   carries what Grafana reads;
 * - every panel and variable query, expanded with the datasource's macros, runs against an embedded
 *   store seeded by `callscope run` of a generator capture (VMs from a map, media, B2BUA legs, every
 *   outcome) and has its panel's shape, at the dashboards' opening values and with filters set;
 * - each KPI stat equals `callscope kpis --json` for the same range and filters;
 * - the call table's data link resolves to the call-detail dashboard, whose queries return that call;
 * - a hostile Call-ID (quotes, backslash, SQL) cannot break out of the query.
 * The SIPp and Kamailio call tests run the same queries over their stored runs.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { default as addFormats } from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadRules } from '../analyze/alerts/rules.js';
import type { CallsSummary } from '../analyze/calls/kpis.js';
import type { KpiGroup } from '../analyze/calls/stored-kpis.js';
import { EVERY_OUTCOME, generateCapture } from '../capture/generator/generate.js';
import { openStore, type Store } from '../ingest/store/client.js';
import {
  allQueries,
  expectedKpis,
  kpiMismatches,
  kpiOf,
  OPENING_VARS,
  type QueryResult,
  runAllQueries,
  runQuery,
} from '../test/dashboards-sql.js';
import {
  built,
  needs,
  REPO_ROOT,
  removeTmpDir,
  SHARED_DIR,
  SHARED_GRAFANA_SCHEMAS,
  tmpDir,
} from '../test/oracle/tools.js';
import { grafanaRuleGroup } from './alerting.js';
import { CALL_DETAIL_LINK, UIDS } from './boards/common.js';
import { allDashboards } from './boards/index.js';
import { KPI_EXPRESSIONS } from './boards/noc-overview.js';
import { type MacroContext, percentEncode } from './macros.js';
import { filesUnder, provisioningTree } from './provisioning.js';

const CLI = join(REPO_ROOT, 'dist', 'bin', 'callscope.js');
const START = 1_700_000_000;
const gate = needs(built(CLI));

describe('provisioning tree', () => {
  const tree = provisioningTree();
  it('the committed dashboards/grafana/ is what the code generates (run `callscope dashboards --out dashboards/grafana`)', () => {
    const committed = join(REPO_ROOT, 'dashboards', 'grafana');
    const onDisk = filesUnder(committed).filter((f) => !f.startsWith('plugins/') && !f.endsWith('README.md'));
    expect(onDisk.sort()).toEqual([...tree.keys()].sort());
    for (const [path, content] of tree)
      expect(readFileSync(join(committed, path), 'utf8'), path).toBe(content);
  });

  it('the datasource and the dashboards provider carry the fields Grafana reads', () => {
    const ds = parse(tree.get('provisioning/datasources/callscope.yaml')!);
    expect(ds.apiVersion).toBe(1);
    const [d] = ds.datasources;
    expect(d).toMatchObject({ type: 'grafana-clickhouse-datasource', uid: 'callscope-clickhouse' });
    expect(Object.keys(d.jsonData).sort()).toEqual(
      ['defaultDatabase', 'host', 'port', 'protocol', 'secure', 'username'].sort(),
    );
    expect(d.jsonData.protocol).toBe('http');
    expect(d.jsonData).not.toHaveProperty('database');
    expect(d.secureJsonData.password).toBe('$CLICKHOUSE_PASSWORD');
    const providers = parse(tree.get('provisioning/dashboards/callscope.yaml')!);
    expect(providers.apiVersion).toBe(1);
    expect(providers.providers[0]).toMatchObject({
      type: 'file',
      options: { path: '/var/lib/grafana/dashboards', foldersFromFilesStructure: true },
    });
    // With folders from the file tree, a provider must not name a folder.
    expect(providers.providers[0].folder).toBeUndefined();
  });

  it('every panel query and variable names the provisioned datasource; uids are unique', () => {
    const uids = allDashboards().map((d) => d.dashboard.uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const { dashboard } of allDashboards()) {
      for (const p of (dashboard.panels ?? []) as Array<{
        targets?: Array<{ datasource?: { uid: string } }>;
      }>)
        for (const t of p.targets ?? []) expect(t.datasource?.uid).toBe('callscope-clickhouse');
      for (const v of dashboard.templating?.list ?? [])
        if (v.type === 'query') expect(typeof v.query, v.name).toBe('string');
    }
  });
});

needs(SHARED_GRAFANA_SCHEMAS).describe("against the SDK's JSON Schemas", () => {
  const schemas = join(SHARED_DIR, 'grafana-schemas');
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats.default(ajv);
  const load = (name: string) => JSON.parse(readFileSync(join(schemas, `${name}.jsonschema.json`), 'utf8'));
  const compiled = new Map<string, ValidateFunction>();
  const validator = (schema: string, definition: string): ValidateFunction => {
    const key = `${schema}#${definition}`;
    let v = compiled.get(key);
    if (v === undefined) {
      const s = load(schema);
      v = ajv.compile({ ...s, $id: `urn:${schema}:${definition}`, $ref: `#/definitions/${definition}` });
      compiled.set(key, v);
    }
    return v;
  };
  const errors = (v: ValidateFunction) => JSON.stringify(v.errors?.slice(0, 5), null, 1);

  it.each(allDashboards().map((d) => [d.dashboard.uid!, d.dashboard] as const))('%s', (_uid, dashboard) => {
    const json = JSON.parse(JSON.stringify(dashboard));
    const board = validator('dashboard', 'Dashboard');
    expect(board(json), errors(board)).toBe(true);
    for (const panel of json.panels as Array<{
      type: string;
      title: string;
      options?: unknown;
      fieldConfig?: { defaults?: { custom?: unknown } };
    }>) {
      if (panel.type === 'callscope-ladder-panel' || panel.type === 'row') continue;
      if (panel.options !== undefined) {
        const options = validator(panel.type, 'Options');
        expect(options(panel.options), `${panel.title}: ${errors(options)}`).toBe(true);
      }
      const custom = panel.fieldConfig?.defaults?.custom;
      if (custom !== undefined && load(panel.type).definitions.FieldConfig !== undefined) {
        const field = validator(panel.type, 'FieldConfig');
        expect(field(custom), `${panel.title}: ${errors(field)}`).toBe(true);
      }
    }
  });

  it("the alert rules (the SDK rule group, and the provisioning file's contact point and policy)", () => {
    const group = validator('alerting', 'RuleGroup');
    const built = JSON.parse(JSON.stringify(grafanaRuleGroup(loadRules())));
    expect(group(built), errors(group)).toBe(true);
    expect(built.rules.length).toBe(loadRules().rules.length);
    const file = parse(provisioningTree().get('provisioning/alerting/callscope.yaml')!);
    const contact = validator('alerting', 'ContactPoint');
    for (const receiver of file.contactPoints[0].receivers) {
      const asApi = {
        ...receiver,
        type: receiver.type === 'prometheus-alertmanager' ? 'alertmanager' : receiver.type,
      };
      expect(contact(asApi), errors(contact)).toBe(true);
    }
    const policy = validator('alerting', 'NotificationPolicy');
    const { orgId: _org, ...route } = file.policies[0];
    expect(policy(route), errors(policy)).toBe(true);
  });
});

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

gate.describe('every query against a store seeded by `callscope run`', () => {
  let dir = '';
  let store: Store;
  let ctx: MacroContext;
  const kpis = new Map<string, CallsSummary>();
  let kpisByVm: KpiGroup[] = [];
  const since = new Date(START * 1000 - 60_000);
  const until = new Date((START + 3600) * 1000);

  beforeAll(async () => {
    dir = tmpDir('callscope-dashboards-');
    const pcap = join(dir, 'calls.pcap');
    generateCapture({
      output: pcap,
      seed: 13,
      vms: 5,
      calls: 60,
      callsPerSecond: 5,
      callDurationSec: 2,
      startTime: START,
      outcomes: { ...EVERY_OUTCOME, answered: 6 },
      sessionRefresh: true,
    });
    const map = join(dir, 'vms.json');
    writeFileSync(
      map,
      JSON.stringify(
        [1, 2, 3, 4, 5].map((n) => ({ mac: `02:00:00:00:00:0${n}`, id: `10${n}`, name: `vm${n}` })),
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
    const range = ['--since', since.toISOString(), '--until', until.toISOString()];
    for (const [name, filter] of [
      ['all', []],
      ['vm', ['--vm', '101']],
    ] as const) {
      const k = cli(['kpis', '--data-dir', data, '--json', ...range, ...filter]);
      expect(k.status, k.stderr).toBe(0);
      kpis.set(name, JSON.parse(k.stdout));
    }
    const byVm = cli(['kpis', '--data-dir', data, '--json', '--by', 'vm', ...range]);
    expect(byVm.status, byVm.stderr).toBe(0);
    kpisByVm = JSON.parse(byVm.stdout);
    store = await openStore({ dataDir: data });
    ctx = { from: since, to: until, intervalSec: 10, vars: { ...OPENING_VARS } };
  }, 180_000);
  afterAll(async () => {
    await store?.close();
    if (dir) removeTmpDir(dir);
  });

  const byTitle = (results: QueryResult[], title: string) => {
    const r = results.find((x) => x.query.title === title);
    if (r === undefined) throw new Error(`no panel ${title}`);
    return r;
  };

  it('at the opening values: every query runs and has its panel’s shape; the overview has data', async () => {
    const { results, problems } = await runAllQueries(store.client, ctx);
    expect(problems).toEqual([]);
    expect(results.length).toBeGreaterThan(40);
    for (const title of [
      'Calls per second by outcome',
      'Concurrent answered calls',
      'KPIs by VM (as caller "out" and callee "in")',
      'Top final statuses',
      'Calls',
      'Worst streams (lowest MOS)',
      'Loss bursts (runs of consecutive lost packets)',
      'INVITEs sent and received per VM (new calls, no retransmissions)',
      'vm',
      'node',
    ])
      expect(byTitle(results, title).rows.length, title).toBeGreaterThan(0);
    expect(byTitle(results, 'node').rows).toEqual([['lab-1']]);
    expect(byTitle(results, 'vm').rows.map((r) => r[0])).toEqual(['101', '102', '103', '104', '105']);
  });

  it('with every filter set (a VM, the node, a peer, two outcomes, a user): every query runs and has its shape', async () => {
    const vars = {
      ...OPENING_VARS,
      vm: ['101', '102'],
      node: ['lab-1'],
      peer: ['10.0.0.1'],
      outcome: ['answered', 'failed'],
      user: '10',
      status: '200',
    };
    const { problems } = await runAllQueries(store.client, { ...ctx, vars });
    expect(problems).toEqual([]);
  });

  it.each<[string, MacroContext['vars']]>([
    ['all', {}],
    ['vm', { vm: ['101'] }],
  ])('KPI stats equal `callscope kpis --json` (%s)', async (name, filter) => {
    const expected = kpis.get(name)!;
    expect(expected.attempts).toBeGreaterThan(0);
    const stats = allQueries().filter((q) => q.type === 'stat');
    expect(stats.map(kpiOf).sort()).toEqual(Object.keys(KPI_EXPRESSIONS).sort());
    const vars = { ...OPENING_VARS, ...filter };
    expect(await kpiMismatches(store.client, { ...ctx, vars }, expectedKpis(expected))).toEqual([]);
  });

  it('the KPIs-by-VM table equals `callscope kpis --by vm --json`, row for row', async () => {
    const q = allQueries().find((x) => x.title.startsWith('KPIs by VM'))!;
    const r = await runQuery(store.client, q, ctx);
    const col = (name: string) => r.columns.findIndex((c) => c.name === name);
    const rows = r.rows
      .map((row) => ({
        key: String(row[col('vm')]),
        direction: String(row[col('direction')]),
        attempts: Number(row[col('attempts')]),
        failed: Number(row[col('failed')]),
        asr: row[col('asr')] === null ? null : Number(row[col('asr')]),
        ner: row[col('ner')] === null ? null : Number(row[col('ner')]),
        failedRatio: row[col('failed_ratio')] === null ? null : Number(row[col('failed_ratio')]),
      }))
      .sort((a, b) => (`${a.key} ${a.direction}` < `${b.key} ${b.direction}` ? -1 : 1));
    const expected = kpisByVm
      .filter((g) => g.key !== '')
      .map((g) => ({
        key: g.key,
        direction: g.direction ?? '',
        attempts: g.attempts,
        failed: g.failed,
        asr: g.kpis.asr,
        ner: g.kpis.ner,
        failedRatio: g.kpis.failedRatio,
      }))
      .sort((a, b) => (`${a.key} ${a.direction}` < `${b.key} ${b.direction}` ? -1 : 1));
    expect(expected.length).toBeGreaterThan(5);
    expect(rows).toEqual(expected);
  });

  it("the call table's link opens call detail, whose queries return that call and its legs", async () => {
    const { results } = await runAllQueries(
      store.client,
      ctx,
      allQueries().filter((q) => q.title === 'Calls'),
    );
    const table = results[0]!;
    const idIndex = table.columns.findIndex((c) => c.name === 'call_id');
    const edgeIndex = table.columns.findIndex((c) => c.name === 'edge_call');
    // A B2BUA leg B row: its detail must bring both legs.
    const row = table.rows.find((r) => r[edgeIndex] !== '')!;
    expect(row).toBeDefined();
    const callId = String(row[idIndex]);
    const url = CALL_DETAIL_LINK.url
      .replace(/\$\{__data\.fields\.call_id:percentencode\}/, percentEncode(callId))
      .replace(/\$\{__url_time_range\}/, `from=${since.getTime()}&to=${until.getTime()}`);
    const parsed = new URL(url, 'http://grafana.example');
    expect(parsed.pathname.split('/')[2]).toBe(UIDS.detail);
    const linked = parsed.searchParams.get('var-call_id')!;
    expect(linked).toBe(callId);
    const detail = allQueries().filter((q) => q.dashboard === UIDS.detail);
    const vars = { ...OPENING_VARS, call_id: linked };
    const { results: shown, problems } = await runAllQueries(store.client, { ...ctx, vars }, detail);
    expect(problems).toEqual([]);
    const legs = byTitle(shown, 'Legs (call records)');
    const legIds = legs.rows.map((r) => String(r[0]));
    expect(legIds).toContain(callId);
    expect(legIds).toContain(String(row[edgeIndex]));
    const messages = byTitle(shown, 'Messages');
    const msgCallId = messages.columns.findIndex((c) => c.name === 'call_id');
    expect(messages.rows.length).toBeGreaterThan(10);
    for (const m of messages.rows) expect(legIds).toContain(String(m[msgCallId]));
    const [stored] = (
      await (
        await store.client.query({
          query: `SELECT count() FROM (SELECT DISTINCT event_id FROM sip_messages WHERE call_id IN {ids:Array(String)})`,
          query_params: { ids: legIds },
          format: 'JSONCompact',
        })
      ).json()
    ).data as unknown[][];
    expect(messages.rows.length).toBe(Number(stored![0]));
  });

  it('a hostile Call-ID (quote, backslash, SQL) reaches ClickHouse as a value: no error, no row', async () => {
    const detail = allQueries().filter((q) => q.dashboard === UIDS.detail || q.dashboard === UIDS.search);
    for (const hostile of [
      "x' OR 1=1 --",
      "x\\' OR 1=1 --",
      "\\'; DROP TABLE calls; --",
      '%27%5C',
      "<script>alert('x')</script>",
    ]) {
      const { results, problems } = await runAllQueries(
        store.client,
        { ...ctx, vars: { ...OPENING_VARS, call_id: hostile, user: hostile } },
        detail,
      );
      expect(problems).toEqual([]);
      for (const r of results)
        if (r.query.type !== 'variable') expect(r.rows, `${r.query.title} with ${hostile}`).toEqual([]);
    }
  });
});
