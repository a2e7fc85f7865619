import { describe, expect, it } from 'vitest';
import { redactUrl } from './client.js';
import { settingLiteral } from './engine.js';
import { ClickHouseException, exceptionReply } from './errors.js';
import { contentTypeOf, parseInsert, trailingFormat } from './formats.js';
import { parseMultipartFields } from './multipart.js';
import { bindValue, placeholderTypes } from './params.js';
import { planRequest } from './plan.js';
import { parseQueryString, type StoreRequest } from './request.js';

// The pieces of the HTTP interface that need no engine.

// How @clickhouse/client escapes a string parameter (common/data_formatter/format_query_params.js).
const clientEscape = (s: string) =>
  s.replace(/[\t\n\r'\\]/g, (c) => ({ '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c] ?? `\\${c}`);
const wire = (value: string | string[]) =>
  Buffer.from(
    typeof value === 'string'
      ? clientEscape(value)
      : `[${value.map((v) => `'${clientEscape(v)}'`).join(',')}]`,
  );

describe('query parameters', () => {
  it('decodes scalar values the way the engine reads escaped text', () => {
    for (const s of ["it's", 'a\\b', 'tab\there', 'nl\nx', 'cr\r', 'nul\0', 'ß😀', '\\N', '\\']) {
      expect(bindValue('s', wire(s), 'String')).toBe(s);
    }
    expect(bindValue('s', Buffer.from('\\N'), 'Nullable(String)')).toBeNull();
    expect(bindValue('s', Buffer.from('a\\Nb'), 'String')).toBe('ab');
    expect(bindValue('s', Buffer.from('100\\%'), 'String')).toBe('100\\%'); // LIKE escapes survive
    expect(bindValue('s', Buffer.from('\\x41\\x42'), 'String')).toBe('AB');
    expect(bindValue('n', Buffer.from('18446744073709551615'), 'UInt64')).toBe('18446744073709551615');
    expect(bindValue('u', Buffer.from('x'), undefined)).toBe('x');
  });

  it('re-quotes strings inside composite literals without backslashes', () => {
    expect(bindValue('a', wire(["it's", 'b\\c', 'd\te']), 'Array(String)')).toBe("['it''s','b\\c','d\te']");
    expect(bindValue('a', Buffer.from("[1.5,NULL,'x']"), 'Array(Nullable(String))')).toBe("[1.5,NULL,'x']");
    expect(bindValue('m', Buffer.from("{'k\\'':1}"), 'Map(String, UInt8)')).toBe("{'k''':1}");
    expect(bindValue('t', Buffer.from("('a''b',2)"), 'Tuple(String, UInt8)')).toBe("('a''b',2)");
  });

  it('refuses values chDB cannot carry, rather than altering them', () => {
    const invalid = () => bindValue('s', Buffer.from([0xff]), 'String');
    expect(invalid).toThrow(ClickHouseException);
    expect(invalid).toThrow(/not valid UTF-8/);
    expect(() => bindValue('s', Buffer.from('\\xFF'), 'String')).toThrow(/not valid UTF-8/);
    expect(() => bindValue('s', Buffer.from('oops\\'), 'String')).toThrow(/backslash at its end/);
    expect(() => bindValue('a', Buffer.from("['open"), 'Array(String)')).toThrow(/unterminated/);
  });

  it('finds the declared type of each placeholder', () => {
    const types = placeholderTypes(
      'SELECT {a:Array(String)}, { n : UInt64 }, {m:Map(String, Array(UInt8))}, {a:String}',
    );
    expect([...types]).toEqual([
      ['a', 'Array(String)'],
      ['n', 'UInt64'],
      ['m', 'Map(String, Array(UInt8))'],
    ]);
  });
});

describe('request text', () => {
  it('decodes URL parameters to bytes', () => {
    expect(parseQueryString('?a=1&b=x%20y+z&c=%FF%00&d&e=%zz')).toEqual([
      ['a', Buffer.from('1')],
      ['b', Buffer.from('x y z')],
      ['c', Buffer.from([0xff, 0])],
      ['d', Buffer.alloc(0)],
      ['e', Buffer.from('%zz')],
    ]);
  });

  it('reads the multipart fields @clickhouse/client sends', () => {
    const body = Buffer.from(
      '--B\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT {v:String}\r\n' +
        '--B\r\nContent-Disposition: form-data; name="param_v"\r\n\r\nline1\r\nline2\r\n--B--\r\n',
    );
    const fields = parseMultipartFields(body, 'B');
    expect(fields.get('query')?.toString()).toBe('SELECT {v:String}');
    expect(fields.get('param_v')?.toString()).toBe('line1\r\nline2');
    const file = Buffer.from(
      '--B\r\nContent-Disposition: form-data; name="t"; filename="t.tsv"\r\n\r\n1\r\n--B--\r\n',
    );
    expect(() => parseMultipartFields(file, 'B')).toThrow(/External data/);
  });

  it('recognises INSERTs whose data follows, and which can take the raw path', () => {
    expect(parseInsert('INSERT INTO db.t (a, b) FORMAT JSONEachRow')).toEqual({
      sql: 'INSERT INTO db.t (a, b) FORMAT JSONEachRow',
      format: 'JSONEachRow',
      simple: { table: 'db.t', columns: ['a', 'b'] },
    });
    expect(parseInsert('INSERT INTO t (* EXCEPT (a)) FORMAT CSV')).toEqual({
      sql: 'INSERT INTO t (* EXCEPT (a)) FORMAT CSV',
      format: 'CSV',
    });
    expect(
      parseInsert('insert into `odd name` SETTINGS async_insert=1 FORMAT TSV;\n')?.simple,
    ).toBeUndefined();
    expect(parseInsert('INSERT INTO t VALUES')).toBeUndefined();
    expect(parseInsert("INSERT INTO t SELECT 'FORMAT CSV'")).toBeUndefined();
    expect(trailingFormat('SELECT 1 \nFORMAT JSONEachRow')).toBe('JSONEachRow');
    expect(trailingFormat('SELECT 1 FORMAT CSV SETTINGS max_threads = 1;')).toBe('CSV');
    expect(trailingFormat('SELECT 1')).toBeUndefined();
    expect(contentTypeOf('CSVWithNames')).toBe('text/csv; charset=UTF-8; header=present');
    expect(contentTypeOf('RowBinary')).toBe('application/octet-stream');
  });

  it('splits query and data as a server reads them', () => {
    const request = (query: string | undefined, body: string | Buffer): StoreRequest => ({
      readOnly: false,
      queryId: 'q',
      database: 'default',
      query,
      body: Buffer.from(body),
      params: new Map(),
      settings: new Map(),
      clientProtocolVersion: 0,
    });
    expect(planRequest(request('SELECT', '1'))).toEqual({ kind: 'query', sql: 'SELECT\n1' });
    const data = Buffer.from([0x31, 0x09, 0xff, 0x0a]);
    const fromUrl = planRequest(request('INSERT INTO t FORMAT TSV', data));
    expect(fromUrl.kind === 'insert' && fromUrl.data.equals(data)).toBe(true);
    const fromBody = planRequest(
      request(undefined, Buffer.concat([Buffer.from('INSERT INTO t FORMAT TSV\n'), data])),
    );
    expect(fromBody.kind === 'insert' && fromBody.data.equals(data)).toBe(true);
    expect(() => planRequest(request(undefined, ''))).toThrow(/Empty query/);
    expect(() => planRequest(request(undefined, Buffer.from([0xff])))).toThrow(/not valid UTF-8/);
  });

  it('renders setting values as literals, never as SQL', () => {
    expect(settingLiteral('1')).toBe('1');
    expect(settingLiteral('0.5')).toBe('0.5');
    expect(settingLiteral("x'; DROP TABLE t; --\\")).toBe("'x\\'; DROP TABLE t; --\\\\'");
  });
});

describe('replies', () => {
  it('formats exceptions as a server does, for the client parser', () => {
    const engine = new Error(
      "Code: 60. DB::Exception: Unknown table expression identifier 'x' in scope SELECT * FROM x. (UNKNOWN_TABLE)",
    );
    expect(exceptionReply(engine, '26.7.2.1')).toEqual({
      status: 500,
      code: 60,
      body: "Code: 60. DB::Exception: Unknown table expression identifier 'x' in scope SELECT * FROM x. (UNKNOWN_TABLE) (version 26.7.2.1)\n",
    });
    const ours = exceptionReply(new ClickHouseException('LIMIT_EXCEEDED', 'Too big', 413), '1');
    expect(ours).toEqual({
      status: 413,
      code: 290,
      body: 'Code: 290. DB::Exception: Too big. (LIMIT_EXCEEDED) (version 1)\n',
    });
    expect(exceptionReply(new Error('closed'), '1').body).toBe(
      'Code: 1002. DB::Exception: closed. (UNKNOWN_EXCEPTION) (version 1)\n',
    );
  });

  it('redacts credentials from URLs', () => {
    expect(redactUrl('http://user:secret@ch.example:8123/db?password=x&ch_max_threads=2')).toBe(
      'http://ch.example:8123/db?ch_max_threads=2',
    );
    expect(redactUrl('https://ch.example/?PASSWORD=x&access_token=y')).toBe('https://ch.example/');
    expect(redactUrl('http://user:pw@host:99999999/?a=1&password=x')).toBe('http://host:99999999/?a=1');
    expect(redactUrl('user:pw@host?password=x')).toBe('host');
    expect(redactUrl('user:pw@host?password=x&a=1')).toBe('host?a=1');
  });
});
