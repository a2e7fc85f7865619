/**
 * The alert rules file (YAML, docs/ALERTS.md): which KPI, over which window, grouped how, above or
 * below what, after how many attempts, for how long, resolved where. Read once, checked whole: a
 * mistake is one line naming the rule and the field (exit 65), never a rule silently ignored.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';

/** The KPIs a rule can watch (analyze/alerts/kpis.ts has the SQL of each). */
export const KPI_KINDS = [
  'failed-call-ratio',
  'asr-drop',
  'pdd-p95',
  'low-mos-share',
  'silence',
  'options-unanswered',
  'register-failures',
  'capture-drops',
  'ingest-lag',
  'failover',
] as const;
export type KpiKind = (typeof KPI_KINDS)[number];

/** What each KPI can be grouped by (the label each group carries has the same name). */
export const GROUPINGS: Record<KpiKind, readonly string[]> = {
  'failed-call-ratio': ['callee_vm', 'caller_vm', 'vm', 'callee_ip', 'caller_ip', 'node'],
  'asr-drop': ['callee_vm', 'caller_vm', 'vm', 'callee_ip', 'caller_ip', 'node'],
  'pdd-p95': ['callee_vm', 'caller_vm', 'vm', 'callee_ip', 'caller_ip', 'node'],
  silence: ['callee_vm', 'caller_vm', 'vm', 'callee_ip', 'caller_ip', 'node'],
  'low-mos-share': ['dst_vm', 'src_vm', 'dst_ip', 'src_ip', 'node'],
  'options-unanswered': ['peer', 'peer_vm', 'node'],
  'register-failures': ['registrar', 'registrar_vm', 'node'],
  'capture-drops': ['node', 'interface'],
  'ingest-lag': ['node'],
  failover: ['address', 'new_vm', 'node'],
};

export interface AlertRule {
  name: string;
  kpi: KpiKind;
  by: string[];
  /** Length of the sliding window, ms. */
  windowMs: number;
  /** Fires when the value is above (or below) the threshold. */
  direction: 'above' | 'below';
  threshold: number;
  /** Resolves when the value is back below (above) this: hysteresis. Equal to threshold by default. */
  resolve: number;
  /** Groups with fewer attempts in the window have no value (too few to judge). */
  minAttempts: number;
  /** Over threshold this long (pending) before it fires, ms. */
  forMs: number;
  /** asr-drop: how far back the baseline window is (default 7 days); silence: the lookback. */
  offsetMs: number;
  /** media: MOS under this counts as a bad stream (default 3.6). */
  mosBelow: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface AlertRules {
  /** Time between evaluations, ms. */
  intervalMs: number;
  /** Windows end this long before the evaluation time: calls still being computed are not judged. */
  delayMs: number;
  /** Examples (Call-IDs...) kept per alert. */
  examples: number;
  /** Base of the links in annotations (a Grafana URL); empty: no links. */
  grafanaUrl: string;
  receivers: { alertmanager: string[]; webhooks: string[] };
  rules: AlertRule[];
}

/** A rules file that cannot be used: one line naming the file, the rule and the field. */
export class RulesError extends Error {
  override name = 'RulesError';
  readonly exitCode = 65;
}

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** '30s', '5m', '1h30m', '7d', or a number of seconds. */
export function parseDuration(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : null;
  if (typeof value !== 'string') return null;
  const text = value.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/.test(text)) return null;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)) total += Number(m[1]) * UNITS[m[2]!]!;
  return Math.round(total);
}

/** The duration as the rules file writes it, for docs and generated Grafana rules ('5m', '90s'). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

const RULE_FIELDS = new Set([
  'name',
  'kpi',
  'by',
  'window',
  'above',
  'below',
  'resolve',
  'min-attempts',
  'for',
  'offset',
  'mos-below',
  'labels',
  'annotations',
]);
const TOP_FIELDS = new Set(['evaluation', 'receivers', 'rules']);
const EVALUATION_FIELDS = new Set(['interval', 'delay', 'examples', 'grafana-url']);
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const RULE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,99}$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Close misspellings get a suggestion: "windw" → "window". */
function suggestion(word: string, known: Iterable<string>): string {
  const distance = (a: string, b: string): number => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0]![j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++)
        d[i]![j] = Math.min(
          d[i - 1]![j]! + 1,
          d[i]![j - 1]! + 1,
          d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
        );
    return d[a.length]![b.length]!;
  };
  let best: string | null = null;
  let bestDistance = 3;
  for (const k of known) {
    const dist = distance(word, k);
    if (dist < bestDistance) {
      best = k;
      bestDistance = dist;
    }
  }
  return best === null ? '' : ` (did you mean "${best}"?)`;
}

function stringMap(
  value: unknown,
  where: string,
  fail: (m: string) => never,
  names: boolean,
): Record<string, string> {
  if (value === undefined) return {};
  if (!isObj(value)) fail(`${where} must be a map of names to text`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (names && !LABEL_NAME.test(k)) fail(`${where}: label name "${k}" must match [a-zA-Z_][a-zA-Z0-9_]*`);
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
      fail(`${where}.${k} must be text, got ${Array.isArray(v) ? 'a list' : typeof v}`);
    out[k] = String(v);
  }
  return out;
}

/** Checks a parsed rules document; `source` names it in errors. */
export function rulesFrom(doc: unknown, source: string): AlertRules {
  const fail = (message: string): never => {
    throw new RulesError(`${source}: ${message}`);
  };
  if (!isObj(doc)) fail('expected a map with "rules"');
  const top = doc as Obj;
  for (const k of Object.keys(top))
    if (!TOP_FIELDS.has(k)) fail(`unknown field "${k}"${suggestion(k, TOP_FIELDS)}`);
  const evaluation = top.evaluation ?? {};
  if (!isObj(evaluation)) fail('evaluation must be a map');
  const ev = evaluation as Obj;
  for (const k of Object.keys(ev))
    if (!EVALUATION_FIELDS.has(k))
      fail(`evaluation: unknown field "${k}"${suggestion(k, EVALUATION_FIELDS)}`);
  const duration = (value: unknown, where: string, fallback: number, min = 0): number => {
    if (value === undefined) return fallback;
    const ms = parseDuration(value);
    if (ms === null) fail(`${where}: "${String(value)}" is not a duration (e.g. 30s, 5m, 1h, 7d)`);
    if ((ms as number) < min) fail(`${where}: must be at least ${formatDuration(min)}`);
    return ms as number;
  };
  const intervalMs = duration(ev.interval, 'evaluation.interval', 30_000, 1000);
  const delayMs = duration(ev.delay, 'evaluation.delay', 10_000);
  const examples = ev.examples ?? 5;
  if (!Number.isInteger(examples) || (examples as number) < 0 || (examples as number) > 10)
    fail('evaluation.examples: must be a whole number from 0 to 10');
  const grafanaUrl = ev['grafana-url'] ?? '';
  if (typeof grafanaUrl !== 'string') fail('evaluation.grafana-url must be text');

  const receivers = { alertmanager: [] as string[], webhooks: [] as string[] };
  if (top.receivers !== undefined) {
    if (!isObj(top.receivers)) fail('receivers must be a map');
    for (const [k, v] of Object.entries(top.receivers as Obj)) {
      if (k !== 'alertmanager' && k !== 'webhooks')
        fail(`receivers: unknown field "${k}"${suggestion(k, ['alertmanager', 'webhooks'])}`);
      const list = typeof v === 'string' ? [v] : v;
      if (!Array.isArray(list) || list.some((u) => typeof u !== 'string' || !/^https?:\/\//.test(u)))
        fail(`receivers.${k} must be a list of http(s) URLs`);
      receivers[k as 'alertmanager' | 'webhooks'] = list as string[];
    }
  }

  if (!Array.isArray(top.rules)) fail('"rules" must be a list');
  const names = new Set<string>();
  const rules = (top.rules as unknown[]).map((raw, i): AlertRule => {
    const rawName = isObj(raw) && typeof raw.name === 'string' ? raw.name : null;
    const at = rawName === null ? `rule #${i + 1}` : `rule "${rawName}"`;
    const bad = (field: string, message: string): never => fail(`${at}: ${field}: ${message}`);
    if (!isObj(raw)) return bad('(rule)', 'must be a map');
    const r = raw as Obj;
    for (const k of Object.keys(r))
      if (!RULE_FIELDS.has(k)) bad(k, `unknown field${suggestion(k, RULE_FIELDS)}`);
    if (rawName === null) bad('name', 'missing');
    if (!RULE_NAME.test(rawName as string))
      bad('name', 'letters, digits, "-", "_" and "." only, at most 100 characters');
    if (names.has(rawName as string)) bad('name', 'used by an earlier rule');
    names.add(rawName as string);
    const kpi = r.kpi;
    if (typeof kpi !== 'string' || !(KPI_KINDS as readonly string[]).includes(kpi))
      bad(
        'kpi',
        `"${String(kpi)}" is not one of ${KPI_KINDS.join(', ')}${typeof kpi === 'string' ? suggestion(kpi, KPI_KINDS) : ''}`,
      );
    const kind = kpi as KpiKind;
    const byRaw = r.by ?? [];
    const by = typeof byRaw === 'string' ? [byRaw] : byRaw;
    if (!Array.isArray(by) || by.some((b) => typeof b !== 'string')) bad('by', 'must be a list of groupings');
    for (const b of by as string[])
      if (!GROUPINGS[kind].includes(b))
        bad(
          'by',
          `"${b}" is not a grouping of ${kind} (${GROUPINGS[kind].join(', ')})${suggestion(b, GROUPINGS[kind])}`,
        );
    if (new Set(by as string[]).size !== (by as string[]).length) bad('by', 'a grouping is named twice');
    const windowMs = duration(r.window, `${at}: window`, Number.NaN, 1000);
    if (Number.isNaN(windowMs)) bad('window', 'missing (e.g. window: 5m)');
    const hasAbove = r.above !== undefined;
    const hasBelow = r.below !== undefined;
    if (hasAbove === hasBelow)
      bad(hasAbove ? 'below' : 'above', 'a rule has exactly one of "above" or "below"');
    const direction = hasAbove ? 'above' : 'below';
    const threshold = r[direction];
    if (typeof threshold !== 'number' || !Number.isFinite(threshold)) bad(direction, 'must be a number');
    const resolve = r.resolve ?? threshold;
    if (typeof resolve !== 'number' || !Number.isFinite(resolve)) bad('resolve', 'must be a number');
    if (
      direction === 'above'
        ? (resolve as number) > (threshold as number)
        : (resolve as number) < (threshold as number)
    )
      bad(
        'resolve',
        `must be ${direction === 'above' ? 'at most' : 'at least'} the threshold (${threshold}): it is where the alert comes back from`,
      );
    const minAttempts = r['min-attempts'] ?? 0;
    if (!Number.isInteger(minAttempts) || (minAttempts as number) < 0)
      bad('min-attempts', 'must be a whole number ≥ 0');
    const forMs = duration(r.for, `${at}: for`, 0);
    const offsetMs = duration(
      r.offset,
      `${at}: offset`,
      kind === 'asr-drop' ? 7 * 86_400_000 : 3_600_000,
      1000,
    );
    const mosBelow = r['mos-below'] ?? 3.6;
    if (typeof mosBelow !== 'number' || mosBelow < 1 || mosBelow > 5)
      bad('mos-below', 'must be a MOS from 1 to 5');
    const labels = stringMap(r.labels, `${at}: labels`, fail, true);
    if ('alertname' in labels) bad('labels', '"alertname" is the rule\'s name; it cannot be set');
    for (const b of by as string[]) if (b in labels) bad('labels', `"${b}" is a grouping label of this rule`);
    return {
      name: rawName as string,
      kpi: kind,
      by: by as string[],
      windowMs,
      direction,
      threshold: threshold as number,
      resolve: resolve as number,
      minAttempts: minAttempts as number,
      forMs,
      offsetMs,
      mosBelow: mosBelow as number,
      labels,
      annotations: stringMap(r.annotations, `${at}: annotations`, fail, false),
    };
  });
  return {
    intervalMs,
    delayMs,
    examples: examples as number,
    grafanaUrl: grafanaUrl as string,
    receivers,
    rules,
  };
}

/** Parses YAML text; syntax errors name the line. */
export function parseRules(text: string, source: string): AlertRules {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    // Line numbers come from the offset: linePos is only filled with prettyErrors.
    const line = text.slice(0, e.pos[0]).split('\n').length;
    throw new RulesError(`${source}:${line}: ${e.message.split('\n')[0]}`);
  }
  return rulesFrom(doc.toJS(), source);
}

/**
 * The rules shipped with callscope (analyze/alerts/rules.yaml, documented in docs/ALERTS.md): found
 * from this module up, so that the source, the build (dist/) and any copy of the modules inside the
 * package (a test's transpiled children) read the same file.
 */
export const DEFAULT_RULES_FILE = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = dirname(dir)) {
    const candidate = join(dir, 'analyze', 'alerts', 'rules.yaml');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return join(here, 'rules.yaml');
  }
})();

export function loadRules(path: string = DEFAULT_RULES_FILE): AlertRules {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new RulesError(
      `cannot read rules file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return parseRules(text, path);
}
