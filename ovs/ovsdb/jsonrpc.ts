/**
 * JSON-RPC 1.0 over a stream socket, as OVSDB (RFC 7047) and ovs-vswitchd's unixctl speak it: JSON
 * values written back to back with no delimiter. Requests `{method, params, id}`, replies
 * `{result, error, id}`, notifications `{method, params, id: null}`.
 *
 * Anything malformed the peer sends (not JSON, wrong shape, a reply nobody asked for) becomes a counted
 * `protocolError` event and never throws out of a socket callback; a message over the size limit closes
 * the connection, because the stream cannot be trusted after it.
 */
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// Targets

export type StreamTarget = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** `unix:/path`, `tcp:host:port`, `tcp:[v6addr]:port`, or a bare path (absolute or relative). */
export function parseTarget(target: string): StreamTarget {
  if (target.startsWith('unix:')) {
    const path = target.slice(5);
    if (!path) throw new Error(`invalid target ${JSON.stringify(target)}: empty unix socket path`);
    return { kind: 'unix', path };
  }
  if (target.startsWith('tcp:')) {
    const rest = target.slice(4);
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(rest) ?? /^([^:]+):(\d+)$/.exec(rest);
    const port = m ? Number(m[2]) : Number.NaN;
    if (!m || !(port > 0 && port < 65536)) {
      throw new Error(`invalid target ${JSON.stringify(target)}: expected tcp:host:port`);
    }
    return { kind: 'tcp', host: m[1], port };
  }
  if (/^[a-z]+:/.test(target) && !target.startsWith('/')) {
    throw new Error(`unsupported target ${JSON.stringify(target)}: only unix: and tcp: are supported`);
  }
  if (!target) throw new Error('invalid target: empty string');
  return { kind: 'unix', path: target };
}

export function formatTarget(t: StreamTarget): string {
  return t.kind === 'unix'
    ? `unix:${t.path}`
    : `tcp:${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}

// ---------------------------------------------------------------------------------------------------
// Errors

/** The peer answered a request with a non-null `error`. */
export class JsonRpcRemoteError extends Error {
  constructor(
    readonly target: string,
    readonly method: string,
    readonly remote: unknown,
  ) {
    super(`${target}: ${method} failed: ${describeRemoteError(remote)}`);
    this.name = 'JsonRpcRemoteError';
  }
}

/** The connection closed, could not be opened, or a reply did not come in time. */
export class JsonRpcConnectionError extends Error {
  constructor(
    readonly target: string,
    readonly reason: 'connect' | 'closed' | 'timeout' | 'not-connected',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${target}: ${message}`, options);
    this.name = 'JsonRpcConnectionError';
  }
}

/** The peer sent something that is not a valid JSON-RPC message. */
export class JsonRpcProtocolError extends Error {
  constructor(
    readonly target: string,
    message: string,
  ) {
    super(`${target}: protocol error: ${message}`);
    this.name = 'JsonRpcProtocolError';
  }
}

function describeRemoteError(e: unknown): string {
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object') {
    const o = e as Record<string, unknown>;
    if (typeof o.error === 'string') {
      return typeof o.details === 'string' && o.details ? `${o.error}: ${o.details}` : o.error;
    }
  }
  return JSON.stringify(e);
}

function preview(buf: Buffer | string, max = 80): string {
  const s = typeof buf === 'string' ? buf : buf.subarray(0, max * 4).toString('utf8');
  const one = s.replace(/\s+/g, ' ');
  return JSON.stringify(one.length > max ? `${one.slice(0, max)}…` : one);
}

// ---------------------------------------------------------------------------------------------------
// Framing

export type FramerEvent =
  | { kind: 'message'; data: Buffer }
  | { kind: 'garbage'; preview: string }
  | { kind: 'too-big'; bytes: number };

/**
 * Splits a byte stream into top-level JSON objects/arrays by tracking strings, escapes and nesting
 * depth. Scans each byte once and keeps unfinished messages as a list of chunks, so a large message
 * arriving in many reads costs O(n). UTF-8 continuation bytes are >= 0x80 and never match the ASCII
 * structural characters, so scanning bytes is safe.
 */
export class JsonFramer {
  private parts: Buffer[] = [];
  private partsLen = 0;
  private depth = 0;
  private inString = false;
  private escape = false;
  private inGarbage = false;
  private failed = false;

  constructor(readonly maxBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  /** Feeds a chunk; returns what completed. After `too-big` the framer stays failed. */
  push(chunk: Buffer): FramerEvent[] {
    const out: FramerEvent[] = [];
    if (this.failed) return out;
    let segStart = 0;
    let garbageStart = -1;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.depth === 0) {
        if (b === 0x7b /* { */ || b === 0x5b /* [ */) {
          if (this.inGarbage) {
            out.push({ kind: 'garbage', preview: preview(chunk.subarray(garbageStart, i)) });
            this.inGarbage = false;
          }
          this.depth = 1;
          segStart = i;
        } else if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) {
          // whitespace between values
        } else if (!this.inGarbage) {
          // Anything else at top level is not a JSON-RPC message; skip to the next `{` or `[`.
          this.inGarbage = true;
          garbageStart = i;
        }
        continue;
      }
      if (this.inString) {
        if (this.escape) this.escape = false;
        else if (b === 0x5c /* \ */) this.escape = true;
        else if (b === 0x22 /* " */) this.inString = false;
      } else if (b === 0x22) {
        this.inString = true;
      } else if (b === 0x7b || b === 0x5b) {
        this.depth++;
      } else if (b === 0x7d || b === 0x5d) {
        this.depth--;
        if (this.depth === 0) {
          const tail = chunk.subarray(segStart, i + 1);
          const data = this.parts.length === 0 ? tail : Buffer.concat([...this.parts, tail]);
          this.parts = [];
          this.partsLen = 0;
          if (data.length > this.maxBytes) {
            this.failed = true;
            out.push({ kind: 'too-big', bytes: data.length });
            return out;
          }
          out.push({ kind: 'message', data });
          segStart = i + 1;
        }
      }
      if (this.partsLen + (i + 1 - segStart) > this.maxBytes) {
        this.failed = true;
        this.parts = [];
        out.push({ kind: 'too-big', bytes: this.partsLen + (i + 1 - segStart) });
        return out;
      }
    }
    if (this.depth > 0) {
      this.parts.push(chunk.subarray(segStart));
      this.partsLen += chunk.length - segStart;
    } else if (this.inGarbage) {
      // Reported per chunk, so a garbage run never waits for a `{` that may not come.
      out.push({ kind: 'garbage', preview: preview(chunk.subarray(garbageStart)) });
      this.inGarbage = false;
    }
    return out;
  }

  /** Bytes held for an unfinished message. */
  get pendingBytes(): number {
    return this.partsLen;
  }
}

// ---------------------------------------------------------------------------------------------------
// Connection

export type JsonRpcId = string | number;

export interface JsonRpcOptions {
  /** Largest accepted message; a bigger one closes the connection. Default 64 MiB. */
  maxMessageBytes?: number;
  /** Default time to wait for a reply. Default 30 s; 0 = no timeout. */
  requestTimeoutMs?: number;
  /** Time to wait for the socket to connect. Default 5 s. */
  connectTimeoutMs?: number;
}

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | null;
}

export interface JsonRpcStats {
  messagesIn: number;
  messagesOut: number;
  protocolErrors: number;
}

/**
 * Events:
 * - `notification` (method: string, params: unknown[])
 * - `request` (method: string, params: unknown[], id: unknown): a peer request other than `echo`; if
 *   nobody listens it is answered with an "unknown method" error.
 * - `protocolError` (err: JsonRpcProtocolError): counted in `stats.protocolErrors`.
 * - `close` (err: Error | null): once; `err` null after `close()`.
 */
export class JsonRpcConnection extends EventEmitter {
  readonly stats: JsonRpcStats = { messagesIn: 0, messagesOut: 0, protocolErrors: 0 };
  private readonly framer: JsonFramer;
  private readonly pending = new Map<JsonRpcId, Pending>();
  private nextId = 1;
  private closedWith: Error | null | undefined = undefined;
  private readonly requestTimeoutMs: number;

  constructor(
    private readonly socket: Socket,
    readonly target: string,
    options: JsonRpcOptions = {},
  ) {
    super();
    this.framer = new JsonFramer(options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) =>
      this.shutdown(
        new JsonRpcConnectionError(target, 'closed', `connection error: ${err.message}`, { cause: err }),
      ),
    );
    socket.on('close', () =>
      this.shutdown(new JsonRpcConnectionError(target, 'closed', 'connection closed by peer')),
    );
  }

  /** Opens a connection to `target` (see {@link parseTarget}). */
  static connect(target: string | StreamTarget, options: JsonRpcOptions = {}): Promise<JsonRpcConnection> {
    const t = typeof target === 'string' ? parseTarget(target) : target;
    const name = formatTarget(t);
    const timeoutMs = options.connectTimeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const socket =
        t.kind === 'unix'
          ? createConnection({ path: t.path })
          : createConnection({ host: t.host, port: t.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new JsonRpcConnectionError(name, 'connect', `connect timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(new JsonRpcConnectionError(name, 'connect', `cannot connect: ${err.message}`, { cause: err }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.setNoDelay?.(true);
        resolve(new JsonRpcConnection(socket, name, options));
      });
    });
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Sends a request and resolves with its `result`; rejects on `error`, close or timeout. */
  request(method: string, params: unknown[], options: { timeoutMs?: number } = {}): Promise<unknown> {
    if (this.closedWith !== undefined) {
      return Promise.reject(
        new JsonRpcConnectionError(
          this.target,
          'not-connected',
          `cannot send ${method}: connection is closed`,
        ),
      );
    }
    const id = this.nextId++;
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const p: Pending = { method, resolve, reject, timer: null };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(
            new JsonRpcConnectionError(
              this.target,
              'timeout',
              `no reply to ${method} (id ${id}) within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
      }
      this.pending.set(id, p);
      this.send({ method, params, id });
    });
  }

  /** Sends a notification (no reply expected). */
  notify(method: string, params: unknown[]): void {
    if (this.closedWith === undefined) this.send({ method, params, id: null });
  }

  /** Closes the connection; pending requests are rejected. Idempotent. */
  close(): void {
    this.shutdown(null);
    this.socket.destroy();
  }

  /** Closes the connection because of `reason` (e.g. keepalive failure); pending requests get it. */
  destroy(reason: string): void {
    this.shutdown(new JsonRpcConnectionError(this.target, 'closed', reason));
    this.socket.destroy();
  }

  private send(msg: unknown): void {
    this.stats.messagesOut++;
    this.socket.write(JSON.stringify(msg));
  }

  private shutdown(err: Error | null): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = err;
    const why = err ? err.message : 'connection closed';
    for (const [id, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(
        new JsonRpcConnectionError(
          this.target,
          'closed',
          `${p.method} (id ${id}) not answered: ${stripTarget(why, this.target)}`,
          {
            cause: err ?? undefined,
          },
        ),
      );
    }
    this.pending.clear();
    this.emit('close', err);
  }

  private protocolError(message: string): void {
    this.stats.protocolErrors++;
    const err = new JsonRpcProtocolError(this.target, message);
    // An EventEmitter 'error' without listener would throw; this event is informational.
    this.emit('protocolError', err);
  }

  private onData(chunk: Buffer): void {
    if (this.closedWith !== undefined) return;
    for (const ev of this.framer.push(chunk)) {
      if (ev.kind === 'garbage') {
        this.protocolError(`not JSON: skipped bytes ${ev.preview}`);
      } else if (ev.kind === 'too-big') {
        this.protocolError(
          `message larger than the ${this.framerLimit()} limit (at least ${ev.bytes} bytes); closing`,
        );
        this.destroy(`message larger than the ${this.framerLimit()} limit`);
        return;
      } else {
        this.onMessage(ev.data);
        if (this.closedWith !== undefined) return;
      }
    }
  }

  private framerLimit(): string {
    const b = this.framer.maxBytes;
    return b % (1024 * 1024) === 0 ? `${b / 1024 / 1024} MiB` : `${b} bytes`;
  }

  private onMessage(data: Buffer): void {
    this.stats.messagesIn++;
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString('utf8'));
    } catch (e) {
      this.protocolError(`not JSON (${(e as Error).message}): ${preview(data)}`);
      return;
    }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
      this.protocolError(`message is not a JSON object: ${preview(data)}`);
      return;
    }
    const m = msg as Record<string, unknown>;
    if ('method' in m) {
      this.onRequest(m, data);
      return;
    }
    const id = m.id;
    if (typeof id !== 'number' && typeof id !== 'string') {
      this.protocolError(`reply without a usable id: ${preview(data)}`);
      return;
    }
    const p = this.pending.get(id);
    if (!p) {
      this.protocolError(
        `reply with unknown id ${JSON.stringify(id)} (no request pending): ${preview(data)}`,
      );
      return;
    }
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    const hasResult = 'result' in m;
    const hasError = 'error' in m;
    if (!hasResult && !hasError) {
      const msgText = `reply to ${p.method} (id ${id}) has neither result nor error: ${preview(data)}`;
      this.protocolError(msgText);
      p.reject(new JsonRpcProtocolError(this.target, msgText));
    } else if (hasError && m.error !== null && m.error !== undefined) {
      p.reject(new JsonRpcRemoteError(this.target, p.method, m.error));
    } else {
      p.resolve(m.result);
    }
  }

  private onRequest(m: Record<string, unknown>, data: Buffer): void {
    const { method, params, id } = m;
    if (typeof method !== 'string') {
      this.protocolError(`request with non-string method: ${preview(data)}`);
      return;
    }
    const args = Array.isArray(params) ? params : params === undefined ? [] : null;
    if (args === null) {
      this.protocolError(`${method}: params is not an array: ${preview(data)}`);
      return;
    }
    if (id === null || id === undefined) {
      this.emit('notification', method, args);
      return;
    }
    if (method === 'echo') {
      // RFC 7047 4.1.11: the reply echoes the params; ovsdb-server uses this as its own keepalive.
      this.send({ result: args, error: null, id });
      return;
    }
    if (this.listenerCount('request') > 0) {
      this.emit('request', method, args, id);
    } else {
      this.reply(id, null, { error: 'unknown method', details: method });
    }
  }

  /** Answers a peer request received through the `request` event. */
  reply(id: unknown, result: unknown, error: unknown = null): void {
    if (this.closedWith === undefined) this.send({ result, error, id });
  }
}

function stripTarget(message: string, target: string): string {
  return message.startsWith(`${target}: `) ? message.slice(target.length + 2) : message;
}
