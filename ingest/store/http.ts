/**
 * The ClickHouse HTTP interface, as far as @clickhouse/client (and curl users) need it, in front of
 * an executor: `/ping`, queries and inserts on `/`, replies and exceptions with the headers and
 * body text a ClickHouse server sends. Listens on 127.0.0.1 only: there is no authentication.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Logger } from '../../core/log.js';
import { ClickHouseException, exceptionReply, StoreError, StorePortInUseError } from './errors.js';
import { contentTypeOf } from './formats.js';
import {
  type Compression,
  parseQueryString,
  readBody,
  type StoreRequest,
  toStoreRequest,
} from './request.js';

export interface Outcome {
  body: Buffer;
  format: string;
  summary: object;
}

export interface Executor {
  execute(request: StoreRequest, signal: AbortSignal): Promise<Outcome>;
  readonly version: string;
  readonly timezone: string;
}

export interface HttpServerOptions {
  /** Largest request body accepted, after decompression. */
  maxBodyBytes: number;
  /** Requests handled at once (reading, queued or executing); more are refused with 503. */
  maxInFlight: number;
  /** The database of requests that name none (no `database` parameter or header). */
  defaultDatabase: string;
  logger: Logger;
}

const DISPLAY_NAME = 'callscope-embedded';
const HEADER_SAFE = /^[\x20-\x7e]{1,255}$/;

const compressors: Record<Compression, (body: Buffer) => Promise<Buffer>> = {
  gzip: promisify(zlib.gzip),
  deflate: promisify(zlib.deflate),
  br: promisify(zlib.brotliCompress),
};

/** What the server did since it started: for the store's periodic statistics. */
export interface StoreHttpStats {
  requests: number;
  failed: number;
  /** Bytes of answers sent. */
  bytesOut: number;
}

export class StoreHttpServer {
  readonly stats: StoreHttpStats = { requests: 0, failed: 0, bytesOut: 0 };
  private readonly server: Server;
  private readonly tasks = new Set<Promise<void>>();
  private closing?: Promise<void>;

  constructor(
    private readonly executor: Executor,
    private readonly options: HttpServerOptions,
  ) {
    // Generous header limit: other clients put long query parameters in the URL.
    this.server = createServer({ maxHeaderSize: 1024 * 1024 }, (req, res) => this.track(req, res));
  }

  /** Listens on 127.0.0.1:`port` (0: any free port) and returns the port. */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'EADDRINUSE'
            ? new StorePortInUseError(port, { cause: error })
            : new StoreError(
                `cannot listen on 127.0.0.1:${port}: ${error.code ?? error.message}`,
                { port },
                { cause: error },
              ),
        );
      this.server.once('error', onError);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', onError);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting, lets requests in progress finish, closes every connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeIdleConnections();
      while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
      this.server.closeAllConnections();
      await closed;
    })();
    return this.closing;
  }

  private track(req: IncomingMessage, res: ServerResponse): void {
    this.stats.requests++;
    const task = this.serve(req, res).catch((error: unknown) => {
      // serve() answers every failure itself; reaching here means even that failed.
      this.options.logger.error('embedded store: unhandled request failure', {
        error: error instanceof Error ? error.message : String(error),
      });
      if (!res.headersSent) res.destroy();
    });
    this.tasks.add(task);
    task.finally(() => this.tasks.delete(task));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A client that goes away must not take the server with it.
    res.on('error', () => {});
    req.on('error', () => {});
    const started = performance.now();
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const search = q < 0 ? '' : rawUrl.slice(q);
    const method = req.method ?? 'GET';

    if (this.closing) {
      return this.refuse(
        req,
        res,
        new ClickHouseException('ABORTED', 'The embedded store is shutting down', 503),
      );
    }
    if (path === '/ping' && (method === 'GET' || method === 'HEAD')) return this.text(res, 200, 'Ok.\n');
    const foreign = foreignCaller(req);
    if (foreign) return this.refuse(req, res, new ClickHouseException('ACCESS_DENIED', foreign, 403));
    if (path !== '/') {
      return this.text(
        res,
        404,
        `There is no handle ${path}\n\nUse / or /ping for health checks.\nSend queries with POST or GET /?query=...\n`,
        req,
      );
    }
    if (method !== 'GET' && method !== 'POST' && method !== 'HEAD') {
      return this.refuse(
        req,
        res,
        new ClickHouseException('NOT_IMPLEMENTED', `HTTP method ${method} is not supported`, 405),
      );
    }
    if (this.tasks.size >= this.options.maxInFlight) {
      return this.refuse(
        req,
        res,
        new ClickHouseException(
          'TOO_MANY_SIMULTANEOUS_QUERIES',
          `Too many simultaneous queries. Maximum: ${this.options.maxInFlight}`,
          503,
        ),
      );
    }

    const abandon = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abandon.abort();
    });
    let queryId = queryIdFrom(search);
    try {
      const body = await readBody(req, this.options.maxBodyBytes);
      const request = toStoreRequest(req, search, body, this.options.defaultDatabase);
      queryId = request.queryId;
      if (!HEADER_SAFE.test(queryId)) {
        queryId = undefined;
        throw new ClickHouseException(
          'BAD_ARGUMENTS',
          'query_id must be 1 to 255 printable ASCII characters',
          400,
        );
      }
      if (request.query === undefined && request.body.length === 0 && method !== 'POST') {
        return this.text(res, 200, 'Ok.\n'); // what a server answers to a bare GET /
      }
      const outcome = await this.executor.execute(request, abandon.signal);
      await this.reply(res, request, outcome, method === 'HEAD');
      this.options.logger.debug('embedded store: request served', {
        queryId,
        format: outcome.format,
        bytes: outcome.body.length,
        ms: Math.round(performance.now() - started),
      });
    } catch (error) {
      if (abandon.signal.aborted) return; // nobody left to answer
      this.exception(req, res, error, queryId);
    }
  }

  private async reply(
    res: ServerResponse,
    request: StoreRequest,
    outcome: Outcome,
    head: boolean,
  ): Promise<void> {
    let body = outcome.body;
    const headers: Record<string, string | number> = {
      'Content-Type': contentTypeOf(outcome.format),
      'X-ClickHouse-Server-Display-Name': DISPLAY_NAME,
      'X-ClickHouse-Query-Id': request.queryId,
      'X-ClickHouse-Format': outcome.format,
      'X-ClickHouse-Timezone': this.executor.timezone,
      'X-ClickHouse-Summary': JSON.stringify(outcome.summary),
    };
    if (request.responseCompression) {
      body = await compressors[request.responseCompression](body);
      headers['Content-Encoding'] = request.responseCompression;
    }
    headers['Content-Length'] = body.length;
    this.stats.bytesOut += body.length;
    res.writeHead(200, headers);
    res.end(head ? undefined : body);
  }

  private exception(
    req: IncomingMessage,
    res: ServerResponse,
    error: unknown,
    queryId: string | undefined,
  ): void {
    this.stats.failed++;
    const reply = exceptionReply(error, this.executor.version);
    const internal =
      !(error instanceof ClickHouseException) && !/^Code: \d+\./.test(String((error as Error)?.message));
    this.options.logger[internal ? 'warn' : 'debug']('embedded store: request failed', {
      queryId,
      code: reply.code,
      status: reply.status,
      error: reply.body.trimEnd().slice(0, 500),
    });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: Record<string, string | number> = {
      'Content-Type': 'text/plain; charset=UTF-8',
      'X-ClickHouse-Server-Display-Name': DISPLAY_NAME,
      'X-ClickHouse-Exception-Code': reply.code,
      'Content-Length': Buffer.byteLength(reply.body),
    };
    if (queryId) headers['X-ClickHouse-Query-Id'] = queryId;
    if (!req.complete) headers.Connection = 'close'; // the unread rest of the body is discarded
    res.writeHead(reply.status, headers);
    res.end(reply.body);
    if (!req.complete) req.resume();
  }

  /** Answers without reading the request; its body is discarded. */
  private refuse(req: IncomingMessage, res: ServerResponse, error: ClickHouseException): void {
    this.exception(req, res, error, queryIdFrom(req.url ?? ''));
  }

  private text(res: ServerResponse, status: number, text: string, req?: IncomingMessage): void {
    res.writeHead(status, {
      'Content-Type': 'text/plain; charset=UTF-8',
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
    if (req && !req.complete) req.resume();
  }
}

const LOOPBACK_HOST = /^(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?$/i;

/**
 * Why a request must be refused as not coming from a local program, if it must. Without
 * authentication, loopback alone does not keep web pages out: a browser sends their requests
 * with an Origin header, and a DNS-rebinding page with a foreign Host.
 */
function foreignCaller(req: IncomingMessage): string | undefined {
  if (req.headers.origin !== undefined) {
    return 'Requests from web pages (with an Origin header) are refused: the embedded store has no authentication';
  }
  const host = req.headers.host;
  if (host !== undefined && !LOOPBACK_HOST.test(host)) {
    return `Host ${JSON.stringify(host)} is not a loopback address: the embedded store serves local programs only`;
  }
  return undefined;
}

function queryIdFrom(search: string): string | undefined {
  const q = search.indexOf('?');
  const pair = parseQueryString(q < 0 ? search : search.slice(q)).find(([key]) => key === 'query_id');
  const id = pair?.[1].toString('utf8');
  return id && HEADER_SAFE.test(id) ? id : undefined;
}
