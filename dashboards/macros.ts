/**
 * What Grafana and its ClickHouse datasource do to a panel's SQL before ClickHouse sees it: dashboard
 * variables interpolated, then the plugin's macros expanded for the dashboard's time range. There is
 * no Grafana server here, so the tests expand every panel and variable query with this and run the
 * result against the embedded store (CONTEXT §4 lists the macros).
 *
 * Variable formats as Grafana writes them:
 * - `$var`, `${var}`: a single value as it is; a multi-value variable as `'a','b'` (the datasource's
 *   default for lists), each value's `\` and `'` escaped;
 * - `${var:percentencode}`: every byte but A–Z a–z 0–9 - _ . ~ percent-encoded, `'` included, which is
 *   why free text (a Call-ID, a user) reaches SQL only as `decodeURLComponent('${var:percentencode}')`;
 * - `${var:sqlstring}`: `'value'` with `'` doubled (not safe for ClickHouse with a `\` in the value: it
 *   is not used by our dashboards, only implemented to show that);
 * - `${var:raw}`: as it is.
 * `$__all` (the value of an "All" selection) and an empty list make `$__conditionalAll(cond, $var)` true.
 */

export const ALL = '$__all';

export interface MacroContext {
  from: Date;
  to: Date;
  /** The panel's interval in seconds ($__interval_s; $__timeInterval's bucket). */
  intervalSec: number;
  vars: Record<string, string | string[]>;
}

/** encodeURIComponent plus ! ' ( ) *, as Grafana's percentencode format writes them. */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function quoted(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function isAll(value: string | string[] | undefined): boolean {
  if (value === undefined) return true;
  const list = Array.isArray(value) ? value : [value];
  return list.length === 0 || list.includes(ALL);
}

function formatted(name: string, format: string | undefined, value: string | string[] | undefined): string {
  if (value === undefined) throw new Error(`dashboard variable ${name} has no value`);
  const list = Array.isArray(value) ? value : [value];
  switch (format) {
    case undefined:
      return Array.isArray(value) ? list.map(quoted).join(',') : (value as string);
    case 'raw':
      return list.join(',');
    case 'percentencode':
      return list.map(percentEncode).join(',');
    case 'sqlstring':
      return list.map((v) => `'${v.replace(/'/g, "''")}'`).join(',');
    case 'singlequote':
      return list.map(quoted).join(',');
    default:
      throw new Error(`variable format ${format} of ${name} is not one Grafana has`);
  }
}

/** The arguments of the macro call whose `(` is at `open`: split on top-level commas; end index. */
function argumentsAt(sql: string, open: number): { args: string[]; end: number } {
  const args: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = open + 1;
  for (let i = open; i < sql.length; i++) {
    const c = sql[i];
    if (quote !== null) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') {
      depth--;
      if (depth === 0) {
        args.push(sql.slice(start, i).trim());
        return { args, end: i + 1 };
      }
    } else if (c === ',' && depth === 1) {
      args.push(sql.slice(start, i).trim());
      start = i + 1;
    }
  }
  throw new Error(`unbalanced parentheses after ${sql.slice(Math.max(0, open - 20), open)}`);
}

function replaceMacro(sql: string, name: string, expand: (args: string[]) => string): string {
  const pattern = new RegExp(`\\$__${name}\\b(?!_)`);
  let out = sql;
  for (;;) {
    const m = pattern.exec(out);
    if (m === null) return out;
    const after = m.index + m[0].length;
    if (out[after] === '(') {
      const { args, end } = argumentsAt(out, after);
      out = out.slice(0, m.index) + expand(args) + out.slice(end);
    } else {
      out = out.slice(0, m.index) + expand([]) + out.slice(after);
    }
  }
}

/** The SQL ClickHouse receives for `sql` in a dashboard showing `ctx`. */
export function expandMacros(sql: string, ctx: MacroContext): string {
  const from = Math.floor(ctx.from.getTime() / 1000);
  const to = Math.floor(ctx.to.getTime() / 1000);
  const fromMs = ctx.from.getTime();
  const toMs = ctx.to.getTime();
  // The plugin decides conditionalAll on the variable before Grafana interpolates it.
  let out = replaceMacro(sql, 'conditionalAll', ([cond, variable]) => {
    if (cond === undefined || variable === undefined) throw new Error('$__conditionalAll needs 2 arguments');
    const name = variable.replace(/^\$\{?/, '').replace(/(:\w+)?\}?$/, '');
    return isAll(ctx.vars[name]) ? '1=1' : cond;
  });
  out = out.replace(
    /\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)/g,
    (_m, braced: string | undefined, format: string | undefined, bare: string | undefined) => {
      const name = (braced ?? bare) as string;
      return formatted(name, format, ctx.vars[name]);
    },
  );
  out = replaceMacro(out, 'timeFilter_ms', ([c]) => {
    return `${c} >= fromUnixTimestamp64Milli(${fromMs}) AND ${c} <= fromUnixTimestamp64Milli(${toMs})`;
  });
  out = replaceMacro(out, 'timeFilter', ([c]) => `${c} >= toDateTime(${from}) AND ${c} <= toDateTime(${to})`);
  out = replaceMacro(
    out,
    'timeInterval_ms',
    ([c]) => `toStartOfInterval(toDateTime64(${c}, 3), INTERVAL ${ctx.intervalSec * 1000} millisecond)`,
  );
  out = replaceMacro(
    out,
    'timeInterval',
    ([c]) => `toStartOfInterval(toDateTime(${c}), INTERVAL ${ctx.intervalSec} second)`,
  );
  out = replaceMacro(out, 'fromTime', () => `toDateTime(${from})`);
  out = replaceMacro(out, 'toTime', () => `toDateTime(${to})`);
  out = replaceMacro(out, 'interval_s', () => String(ctx.intervalSec));
  const left = /\$__\w+/.exec(out);
  if (left !== null) throw new Error(`macro ${left[0]} is not one the ClickHouse datasource has`);
  return out;
}
