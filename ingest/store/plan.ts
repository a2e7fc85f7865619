/**
 * What a request asks the engine to do, decided the way a ClickHouse server reads a request: the
 * `query` parameter followed by the body form one text, and an `INSERT ... FORMAT X` statement ends
 * where its data begins. The data is kept as bytes so it reaches the engine unchanged.
 */
import { ClickHouseException } from './errors.js';
import { type InsertStatement, parseInsert } from './formats.js';
import type { StoreRequest } from './request.js';

export type Plan =
  | { kind: 'insert'; statement: InsertStatement; data: Buffer }
  | { kind: 'query'; sql: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

// A body that starts with an INSERT statement line is split there, so its data stays bytes.
const MAX_STATEMENT_LINE = 64 * 1024;

export function planRequest(request: StoreRequest): Plan {
  const { query, body } = request;
  if (query !== undefined && query.trim() !== '') {
    const statement = parseInsert(query);
    if (statement) return { kind: 'insert', statement, data: body };
    return { kind: 'query', sql: body.length === 0 ? query : `${query}\n${queryText(body)}` };
  }
  if (body.length === 0) throw new ClickHouseException('SYNTAX_ERROR', 'Empty query', 400);
  const newline = body.indexOf(0x0a);
  if (newline > 0 && newline <= MAX_STATEMENT_LINE) {
    const line = body.subarray(0, newline).toString('latin1');
    // latin1 maps bytes one to one; an INSERT line of plain identifiers is ASCII either way.
    const statement = /^[\x00-\x7f]*$/.test(line) ? parseInsert(line) : undefined;
    if (statement) return { kind: 'insert', statement, data: body.subarray(newline + 1) };
  }
  return { kind: 'query', sql: queryText(body) };
}

/** Query text must be UTF-8: chDB takes it as a JavaScript string. */
export function queryText(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ClickHouseException(
      'BAD_ARGUMENTS',
      'Query text is not valid UTF-8: the embedded store passes query text to chDB as a string; write such bytes as escapes (\\xFF) or send them as INSERT data',
      400,
    );
  }
}
