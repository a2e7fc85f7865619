/**
 * What the HTTP layer needs to know about ClickHouse formats and INSERT statements without parsing
 * SQL: the output format a query asked for (for `X-ClickHouse-Format` and `Content-Type`), and the
 * shape of an `INSERT ... FORMAT X` whose data follows in the request body.
 */

import type { RawInsertFormat } from 'chdb';

/** Formats chDB's raw insert accepts (`session.insert({ values: Buffer, format })`): zero-copy. */
const RAW_INSERT_FORMATS = new Set<string>([
  'JSONEachRow',
  'JSONCompactEachRow',
  'CSV',
  'CSVWithNames',
  'TSV',
  'TabSeparated',
  'TSVWithNames',
  'TabSeparatedWithNames',
]);

export function isRawInsertFormat(format: string): format is RawInsertFormat {
  return RAW_INSERT_FORMATS.has(format);
}

/** ClickHouse's HTTP interface answers in TabSeparated unless told otherwise. */
export const DEFAULT_OUTPUT_FORMAT = 'TabSeparated';

const FORMAT_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

export function isFormatName(name: string): boolean {
  return FORMAT_NAME.test(name);
}

// A trailing `FORMAT X` (what @clickhouse/client appends to every query), optionally followed by a
// SETTINGS clause and semicolons. Anything fancier (comments) falls back to the default format in
// the header only; the engine still honours the clause itself.
const TRAILING_FORMAT = /\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)(?:\s+SETTINGS\s[^;]*)?[\s;]*$/i;

/** The format named by a query's trailing FORMAT clause, if it has one. */
export function trailingFormat(sql: string): string | undefined {
  return TRAILING_FORMAT.exec(sql)?.[1];
}

const BINARY_FORMATS =
  /^(RowBinary\w*|Native|Parquet|Arrow\w*|ORC|Avro|AvroConfluent|Protobuf\w*|MsgPack|CapnProto|BSONEachRow|Npy|One)$/;

/** Formats whose data is binary (never sent inside a query's text). */
export function isBinaryFormat(format: string): boolean {
  return BINARY_FORMATS.test(format);
}

/** The Content-Type a ClickHouse server sends for a response in `format`. */
export function contentTypeOf(format: string): string {
  if (/^(JSON|ND?JSON)/.test(format)) return 'application/json; charset=UTF-8';
  if (/^(TabSeparated|TSV)/.test(format)) return 'text/tab-separated-values; charset=UTF-8';
  if (/^CSV/.test(format)) {
    return `text/csv; charset=UTF-8; header=${/WithNames/.test(format) ? 'present' : 'absent'}`;
  }
  if (BINARY_FORMATS.test(format)) return 'application/octet-stream';
  return 'text/plain; charset=UTF-8';
}

/** An `INSERT ... FORMAT X` whose data is the request body. */
export interface InsertStatement {
  /** The statement as sent, without trailing semicolons and whitespace. */
  sql: string;
  format: string;
  /**
   * Present when the statement is exactly `INSERT INTO [db.]table [(c1, ...)] FORMAT X` with plain
   * identifiers (what @clickhouse/client sends): such inserts can go through chDB's raw insert.
   */
  simple?: { table: string; columns?: string[] };
  /** A `SETTINGS` list to add (this process's own inserts), e.g. `a = 1, b = 'x'`. */
  settings?: string;
}

const INSERT_WITH_FORMAT = /^\s*INSERT\s+INTO\b[\s\S]*\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)[\s;]*$/i;
const IDENT = '[A-Za-z_][A-Za-z0-9_]*';
const SIMPLE_INSERT = new RegExp(
  `^\\s*INSERT\\s+INTO\\s+(?:TABLE\\s+)?(${IDENT}(?:\\.${IDENT})?)\\s*(?:\\(([^()]*)\\))?\\s*FORMAT\\s+([A-Za-z][A-Za-z0-9_]*)[\\s;]*$`,
  'i',
);
const PLAIN_IDENT = new RegExp(`^${IDENT}$`);

/** Recognises an INSERT whose data comes after `FORMAT X`; `undefined` for anything else. */
export function parseInsert(sql: string): InsertStatement | undefined {
  const general = INSERT_WITH_FORMAT.exec(sql);
  if (!general) return undefined;
  const statement: InsertStatement = { sql: sql.replace(/[\s;]+$/, ''), format: general[1] };
  const simple = SIMPLE_INSERT.exec(sql);
  if (simple) {
    const [, table, columnList] = simple;
    if (columnList === undefined) {
      statement.simple = { table };
    } else {
      const columns = columnList.split(',').map((c) => c.trim());
      if (columns.every((c) => PLAIN_IDENT.test(c))) statement.simple = { table, columns };
    }
  }
  return statement;
}

/** An identifier safe to splice unquoted into SQL (a database or table name). */
export function isPlainIdentifier(name: string): boolean {
  return PLAIN_IDENT.test(name);
}

/** Backtick-quotes an identifier for SQL, escaping what would end the quotes. */
export function quoteIdentifier(name: string): string {
  return `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}
