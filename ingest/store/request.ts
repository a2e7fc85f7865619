/**
 * Reads an HTTP request of ClickHouse's HTTP interface into a `StoreRequest`: URL (and multipart
 * form) parameters split into the query, `param_*` values, settings and the few parameters the
 * HTTP layer itself interprets; and the body, decompressed and bounded.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { ClickHouseException } from './errors.js';
import { isFormatName } from './formats.js';
import { multipartBoundary, parseMultipartFields } from './multipart.js';
import { queryText } from './plan.js';

export type Compression = 'gzip' | 'deflate' | 'br';

export interface StoreRequest {
  /** GET requests run read-only, as on a ClickHouse server (a link must not change data). */
  readOnly: boolean;
  queryId: string;
  database: string;
  /** Output format when the query has no FORMAT clause (`default_format`). */
  defaultFormat?: string;
  /** The `query` parameter, if any; the body then holds INSERT data or the rest of the query. */
  query?: string;
  /** Decompressed body (empty for multipart forms, whose fields are parameters). */
  body: Buffer;
  /** `param_NAME` values by NAME, still escaped as sent. */
  params: Map<string, Buffer>;
  /** ClickHouse settings: every parameter that is not reserved by the HTTP interface. */
  settings: Map<string, string>;
  /** Response compression, when the client both set enable_http_compression=1 and accepts one. */
  responseCompression?: Compression;
  /**
   * `client_protocol_version`: the Native protocol revision the client decodes replies with
   * (clickhouse-go sends it); 0 when absent, and then Native replies are chDB's revision-0 bytes.
   */
  clientProtocolVersion: number;
}

// Parameters a ClickHouse server interprets itself rather than as settings.
const RESERVED = new Set([
  'query',
  'database',
  'default_format',
  'query_id',
  'session_id',
  'session_timeout',
  'session_check',
  'close_session',
  'user',
  'password',
  'quota_key',
  'role',
  'compress',
  'decompress',
  'buffer_size',
  'wait_end_of_query',
  'stacktrace',
  'client_protocol_version',
]);

// Settings that only steer the HTTP layer; chDB would apply them to nothing, so they are consumed
// here (enable_http_compression) or ignored (progress headers: results are sent whole).
const HTTP_ONLY_SETTINGS = new Set([
  'enable_http_compression',
  'http_zlib_compression_level',
  'send_progress_in_http_headers',
  'http_headers_progress_interval_ms',
  'http_response_buffer_size',
  'http_wait_end_of_query',
]);

/** `application/x-www-form-urlencoded` decoding that keeps bytes (values may be any bytes). */
export function parseQueryString(search: string): Array<[string, Buffer]> {
  const pairs: Array<[string, Buffer]> = [];
  for (const piece of search.replace(/^\?/, '').split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const key = decodeComponent(eq < 0 ? piece : piece.slice(0, eq)).toString('utf8');
    pairs.push([key, decodeComponent(eq < 0 ? '' : piece.slice(eq + 1))]);
  }
  return pairs;
}

function decodeComponent(text: string): Buffer {
  const ascii = Buffer.from(text.replace(/\+/g, ' '), 'utf8');
  if (!ascii.includes(0x25)) return ascii;
  const out = Buffer.allocUnsafe(ascii.length);
  let n = 0;
  for (let i = 0; i < ascii.length; i++) {
    const c = ascii[i];
    if (c === 0x25 && i + 2 < ascii.length && isHex(ascii[i + 1]) && isHex(ascii[i + 2])) {
      out[n++] = Number.parseInt(String.fromCharCode(ascii[i + 1], ascii[i + 2]), 16);
      i += 2;
    } else {
      out[n++] = c; // a stray % stays literal, as with URLSearchParams
    }
  }
  return out.subarray(0, n);
}

function isHex(c: number | undefined): boolean {
  return (
    c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66))
  );
}

function bodyTooLarge(limit: number): ClickHouseException {
  return new ClickHouseException(
    'LIMIT_EXCEEDED',
    `Request body exceeds the embedded store's limit of ${limit} bytes (after decompression)`,
    413,
  );
}

function decompressor(encoding: string): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | undefined {
  switch (encoding) {
    case 'gzip':
    case 'x-gzip':
      return zlib.createGunzip();
    case 'deflate':
      return zlib.createInflate();
    case 'br':
      return zlib.createBrotliDecompress();
    default:
      return undefined;
  }
}

/**
 * Collects a stream into one Buffer, failing past `limit` bytes. Events rather than `for await`:
 * leaving an async iterator destroys the request, and with it the socket the refusal is sent on.
 */
function collect(stream: Readable, limit: number, onOverflow: () => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      reject(error);
    };
    stream.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > limit) {
        fail(bodyTooLarge(limit));
        onOverflow();
        return;
      }
      chunks.push(chunk);
    });
    stream.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(chunks, size));
    });
    stream.on('error', fail);
    stream.on('close', () => fail(new Error('request body ended early: the client went away')));
  });
}

/** Reads the whole body, decompressing per Content-Encoding, refusing more than `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || encoding === '') {
    if (Number(req.headers['content-length']) > limit) throw bodyTooLarge(limit);
    return collect(req, limit, () => undefined);
  }
  const inflate = decompressor(encoding);
  if (!inflate) {
    throw new ClickHouseException('NOT_IMPLEMENTED', `Unsupported Content-Encoding '${encoding}'`, 400);
  }
  // The compressed body is bounded by the same limit, so a client cannot stream forever.
  let failure: unknown;
  const stop = (error: unknown) => {
    failure ??= error;
    req.unpipe(inflate);
    inflate.destroy();
  };
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > limit) stop(bodyTooLarge(limit));
  });
  req.on('close', () => {
    if (!req.complete) stop(new Error('request body ended early: the client went away'));
  });
  req.pipe(inflate);
  try {
    return await collect(inflate, limit, () => stop(bodyTooLarge(limit)));
  } catch (error) {
    const cause = failure ?? error;
    if (cause instanceof ClickHouseException) throw cause;
    throw new ClickHouseException(
      'CANNOT_DECOMPRESS',
      `Cannot decompress the ${encoding} request body: ${(cause as Error).message}`,
      400,
    );
  }
}

function acceptedCompression(acceptEncoding: string | undefined): Compression | undefined {
  if (!acceptEncoding) return undefined;
  const offered = acceptEncoding.split(',').map((e) => e.trim().split(';')[0].toLowerCase());
  return (['gzip', 'br', 'deflate'] as const).find((c) => offered.includes(c));
}

// Setting and parameter names are identifiers; checked before they reach SQL or a JS object.
const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Builds the StoreRequest from the parameters (URL, then multipart fields) and the body. The
 * database is the `X-ClickHouse-Database` header's, else the `database` parameter's (as a server
 * ranks them), else `defaultDatabase`.
 */
export function toStoreRequest(
  req: IncomingMessage,
  search: string,
  body: Buffer,
  defaultDatabase: string,
): StoreRequest {
  const pairs = parseQueryString(search);
  const boundary = req.method === 'POST' ? multipartBoundary(req.headers['content-type']) : undefined;
  if (boundary !== undefined) {
    for (const [name, value] of parseMultipartFields(body, boundary)) pairs.push([name, value]);
    body = Buffer.alloc(0);
  }
  const header = req.headers['x-clickhouse-database'];
  const headerDatabase = typeof header === 'string' && header !== '' ? header : undefined;
  const request: StoreRequest = {
    readOnly: req.method === 'GET' || req.method === 'HEAD',
    queryId: randomUUID(),
    database: headerDatabase ?? defaultDatabase,
    body,
    params: new Map(),
    settings: new Map(),
    clientProtocolVersion: 0,
  };
  let httpCompression = false;
  for (const [key, value] of pairs) {
    if (key.startsWith('param_')) {
      const name = key.slice('param_'.length);
      if (!SETTING_NAME.test(name)) {
        throw new ClickHouseException(
          'BAD_QUERY_PARAMETER',
          `Invalid query parameter name ${JSON.stringify(name)}`,
          400,
        );
      }
      request.params.set(name, value);
      continue;
    }
    const text = value.toString('utf8');
    if (HTTP_ONLY_SETTINGS.has(key)) {
      if (key === 'enable_http_compression') httpCompression = text === '1' || text === 'true';
      continue;
    }
    if (!RESERVED.has(key)) {
      if (!SETTING_NAME.test(key)) {
        throw new ClickHouseException('BAD_ARGUMENTS', `Invalid setting name ${JSON.stringify(key)}`, 400);
      }
      request.settings.set(key, text);
      continue;
    }
    switch (key) {
      case 'query':
        request.query = queryText(value);
        break;
      case 'database':
        if (text !== '' && headerDatabase === undefined) request.database = text;
        break;
      case 'default_format':
        if (!isFormatName(text)) {
          throw new ClickHouseException(
            'BAD_ARGUMENTS',
            `Invalid default_format ${JSON.stringify(text)}`,
            400,
          );
        }
        request.defaultFormat = text;
        break;
      case 'query_id':
        if (text !== '') request.queryId = text;
        break;
      case 'client_protocol_version':
        // As a server: anything but an unsigned number (or nothing, revision 0) is refused.
        if (!/^\d{0,9}$/.test(text)) {
          throw new ClickHouseException(
            'BAD_ARGUMENTS',
            `Invalid client_protocol_version ${JSON.stringify(text)}`,
            400,
          );
        }
        request.clientProtocolVersion = Number(text);
        break;
      case 'session_id':
        throw new ClickHouseException(
          'NOT_IMPLEMENTED',
          'HTTP sessions (session_id) are not supported by the embedded store: every request runs on its own',
          400,
        );
      case 'compress':
      case 'decompress':
        if (text === '1') {
          throw new ClickHouseException(
            'NOT_IMPLEMENTED',
            `ClickHouse's native HTTP compression (${key}=1) is not supported by the embedded store; use Content-Encoding/enable_http_compression`,
            400,
          );
        }
        break;
      default:
        // user, password, role, wait_end_of_query...: loopback-only store, results always whole.
        break;
    }
  }
  if (httpCompression) request.responseCompression = acceptedCompression(req.headers['accept-encoding']);
  return request;
}
