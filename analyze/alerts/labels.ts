/**
 * Labels and annotations of an alert, made safe for Alertmanager and for whoever reads them. Values
 * come from SIP (user parts, Call-IDs, User-Agents...): an attacker chooses them, so they may hold
 * quotes, newlines, terminal escapes, bidi overrides, lone surrogates or 64 KB of anything.
 * Alertmanager refuses a whole POST when one label name is invalid (400) and a label is part of the
 * alert's identity, so names are rewritten and values cleaned and bounded here, before any notifier
 * sees them. Rules: docs/ALERTS.md, "Label sanitation".
 */

/** Longest label value, in characters (code points), marker included. */
export const MAX_LABEL_VALUE = 256;
/** Longest annotation value (summary, description...), in characters. */
export const MAX_ANNOTATION_VALUE = 4096;
/** Longest label or annotation name: they come from the rules file, not from the wire. */
export const MAX_NAME = 128;

/** Prometheus' label name syntax; Alertmanager 0.25 checks annotation names against it too. */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export type LabelInput = string | number | boolean | null | undefined;

/** `a-b.c` → `a_b_c`, `1x` → `_1x`, `` → `_`: every name Alertmanager can take, deterministically. */
export function safeLabelName(name: string): string {
  if (LABEL_NAME.test(name) && name.length <= MAX_NAME) return name;
  // One `_` per code point (not per UTF-16 unit): `é-x` → `__x`.
  let out = Array.from(name, (c) => (/[a-zA-Z0-9_]/.test(c) ? c : '_')).join('');
  if (out === '' || /^[0-9]/.test(out)) out = `_${out}`;
  return out.slice(0, MAX_NAME);
}

/**
 * A label value on one line: control characters (C0, DEL, C1), line and paragraph separators become
 * a space (tabs and newlines) or U+FFFD (the rest), bidi embedding/override/isolate controls and
 * lone surrogates U+FFFD; then at most `max` characters, the cut marked `…[+N]` (N characters cut).
 */
export function safeLabelValue(value: LabelInput, max = MAX_LABEL_VALUE): string {
  return truncate(clean(stringOf(value), false), max);
}

/**
 * An annotation value: like a label value, but newlines and tabs stay (descriptions are multi-line;
 * CR LF and lone CR become LF) and the bound is larger.
 */
export function safeAnnotationValue(value: LabelInput, max = MAX_ANNOTATION_VALUE): string {
  return truncate(clean(stringOf(value), true), max);
}

/**
 * The labels of one alert, merged left to right (a later set overrides an earlier one, also when two
 * names become equal once rewritten), `alertname` last so that nothing overrides it. Names are
 * rewritten ({@link safeLabelName}), values cleaned and bounded ({@link safeLabelValue}); labels whose
 * value is empty (or null/undefined) are left out, as Prometheus and Alertmanager treat an empty
 * label as an absent one. Keys come out sorted, so equal label sets serialise equally.
 */
export function alertLabels(
  alertname: string,
  ...sets: ReadonlyArray<Readonly<Record<string, LabelInput>> | undefined>
): Record<string, string> {
  const merged = new Map<string, string>();
  for (const set of [...sets, { alertname }]) {
    if (!set) continue;
    for (const [name, raw] of Object.entries(set)) {
      const key = safeLabelName(name);
      const value = safeLabelValue(raw);
      if (value === '') merged.delete(key);
      else merged.set(key, value);
    }
  }
  if (!merged.has('alertname')) merged.set('alertname', '_'); // an alertname of only control characters
  return sortedRecord(merged);
}

/** Annotations, merged left to right like {@link alertLabels}; values by {@link safeAnnotationValue}. */
export function alertAnnotations(
  ...sets: ReadonlyArray<Readonly<Record<string, LabelInput>> | undefined>
): Record<string, string> {
  const merged = new Map<string, string>();
  for (const set of sets) {
    if (!set) continue;
    for (const [name, raw] of Object.entries(set)) {
      const value = safeAnnotationValue(raw);
      if (value === '') merged.delete(safeLabelName(name));
      else merged.set(safeLabelName(name), value);
    }
  }
  return sortedRecord(merged);
}

function stringOf(value: LabelInput): string {
  return value === null || value === undefined ? '' : String(value);
}

function sortedRecord(map: Map<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of [...map.keys()].sort()) out[key] = map.get(key)!;
  return out;
}

// Tabs, line breaks and the Unicode line/paragraph separators: whitespace that breaks a line.
const BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]/;
// C0, DEL, C1; bidi embeddings/overrides (U+202A–E) and isolates (U+2066–9): they reorder what a
// NOC operator reads ("Trojan source"); lone surrogates: not encodable as UTF-8.
const UNSAFE =
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function clean(s: string, multiline: boolean): string {
  if (multiline) s = s.replace(/\r\n?/g, '\n');
  return s.replace(UNSAFE, (c) => {
    if (multiline && (c === '\n' || c === '\t')) return c;
    return BREAKS.test(c) ? ' ' : '\ufffd';
  });
}

/** At most `max` code points, so a surrogate pair is never cut; the marker counts in `max`. */
function truncate(s: string, max: number): string {
  // Fast path: UTF-16 length bounds the number of code points.
  if (s.length <= max) return s;
  const points = Array.from(s);
  if (points.length <= max) return s;
  // The marker's length depends on N, which depends on how much the marker leaves room for.
  let keep = max;
  for (;;) {
    const marker = `…[+${points.length - keep}]`;
    if (keep + marker.length <= max || keep === 0) return points.slice(0, keep).join('') + marker;
    keep = Math.max(0, max - marker.length);
  }
}
