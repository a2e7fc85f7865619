/**
 * OVSDB client (RFC 7047, plus `monitor_cond` from ovsdb-server(7)) over {@link JsonRpcConnection}.
 *
 * A dropped connection is reopened with exponential backoff and every active monitor is issued again;
 * its fresh initial contents go to the monitor's callback flagged `replace`, since updates may have
 * been missed while disconnected. Requests made while disconnected fail at once rather than queue:
 * a transaction built on state read before the outage should be rebuilt by its owner.
 */
import { EventEmitter } from 'node:events';
import {
  type JsonRpcConnection as Conn,
  formatTarget,
  JsonRpcConnection,
  JsonRpcConnectionError,
  type JsonRpcOptions,
  parseTarget,
  type StreamTarget,
} from './jsonrpc.js';

export * from './datum.js';
export { JsonRpcConnectionError, JsonRpcProtocolError, JsonRpcRemoteError } from './jsonrpc.js';

// ---------------------------------------------------------------------------------------------------
// Types

export type Row = Record<string, unknown>;

/** One operation of a `transact` (RFC 7047 5.2); loosely typed, the server validates. */
export type OvsdbOperation =
  | { op: 'insert'; table: string; row: Row; 'uuid-name'?: string }
  | { op: 'select'; table: string; where: unknown[]; columns?: string[] }
  | { op: 'update'; table: string; where: unknown[]; row: Row }
  | { op: 'mutate'; table: string; where: unknown[]; mutations: unknown[] }
  | { op: 'delete'; table: string; where: unknown[] }
  | {
      op: 'wait';
      table: string;
      where: unknown[];
      columns: string[];
      until: '==' | '!=';
      rows: Row[];
      timeout?: number;
    }
  | { op: 'commit'; durable: boolean }
  | { op: 'abort' }
  | { op: 'comment'; comment: string }
  | { op: 'assert'; lock: string }
  | { op: string; [key: string]: unknown };

/** Per-op result: `{uuid}` for insert, `{rows}` for select, `{count}` for update/mutate/delete, `{}`. */
export interface OpResult {
  uuid?: unknown;
  rows?: Row[];
  count?: number;
  error?: string;
  details?: string;
  [key: string]: unknown;
}

export interface ColumnSchema {
  type: unknown;
  ephemeral?: boolean;
  mutable?: boolean;
}
export interface TableSchema {
  columns: Record<string, ColumnSchema>;
  maxRows?: number;
  isRoot?: boolean;
  indexes?: string[][];
}
export interface DatabaseSchema {
  name: string;
  version: string;
  cksum?: string;
  tables: Record<string, TableSchema>;
}

/** `monitor` request per table (RFC 7047 4.1.5). */
export interface MonitorRequest {
  columns?: string[];
  select?: { initial?: boolean; insert?: boolean; delete?: boolean; modify?: boolean };
}
/** `monitor_cond` request per table: adds a `where` condition (ovsdb-server(7)). */
export interface MonitorCondRequest extends MonitorRequest {
  where?: unknown[];
}

/** `update` notification body: table → row uuid → {old?, new?}. */
export type TableUpdates = Record<string, Record<string, { old?: Row; new?: Row }>>;
/** `update2` notification body: table → row uuid → {initial|insert|delete|modify}. */
export type TableUpdates2 = Record<
  string,
  Record<string, { initial?: Row; insert?: Row; delete?: null; modify?: Row }>
>;

export interface UpdateInfo {
  /** The monitor's (re-)issued initial contents rather than a change notification. */
  initial: boolean;
  /** Drop everything known from this monitor and take this as the full contents (after reconnect). */
  replace: boolean;
}

/** Any JSON value (RFC 7047 4.1.5); compared by its JSON text. */
export type MonitorId = string | number | boolean | null | unknown[] | { [key: string]: unknown };

export interface OvsdbClientOptions extends JsonRpcOptions {
  /** Send `echo` this often; no reply within the same interval closes the connection. Default 5000; 0 = off. */
  keepaliveIntervalMs?: number;
  /** Reconnect when the connection drops (default true). */
  reconnect?: boolean;
  /** Backoff between reconnect attempts: starts here, doubles up to `backoffMaxMs`. Default 100 / 8000. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** After reconnecting and re-issuing monitors (their callbacks already got the fresh contents). */
  onReconnect?: () => void;
  /** When an established connection is lost (before any reconnect attempt). */
  onDisconnect?: (err: Error | null) => void;
  /** Malformed messages from the server, failed reconnect attempts, errors in monitor callbacks. */
  onError?: (err: Error) => void;
}

/** A `transact` op failed; the whole transaction was rolled back by the server. */
export class OvsdbTransactionError extends Error {
  constructor(
    readonly target: string,
    readonly db: string,
    /** Index of the failing op; equals `ops.length` when the failure is the commit itself. */
    readonly index: number,
    readonly op: OvsdbOperation | null,
    readonly error: string,
    readonly details: string | undefined,
    readonly results: (OpResult | null)[],
  ) {
    const what = op ? `op ${index} (${describeOp(op)})` : `commit after op ${index - 1}`;
    super(`${target}: transact on ${db}: ${what} failed: ${error}${details ? `: ${details}` : ''}`);
    this.name = 'OvsdbTransactionError';
  }
}

/** The server's reply does not have the shape the method's RFC 7047 result has. */
export class OvsdbReplyError extends Error {
  constructor(
    readonly target: string,
    /** `transact Open_vSwitch`, `monitor Open_vSwitch`, … */
    readonly method: string,
    message: string,
  ) {
    super(`${target}: ${method}: malformed reply: ${message}`);
    this.name = 'OvsdbReplyError';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

const preview = (v: unknown) => {
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
};

function describeOp(op: OvsdbOperation): string {
  const table =
    typeof (op as { table?: unknown }).table === 'string' ? ` ${(op as { table: string }).table}` : '';
  return `${op.op}${table}`;
}

interface ActiveMonitor {
  method: 'monitor' | 'monitor_cond';
  db: string;
  id: MonitorId;
  requests: Record<string, unknown>;
  onUpdate: (updates: never, info: UpdateInfo) => void;
}

// ---------------------------------------------------------------------------------------------------

/**
 * Events: `reconnect` (), `disconnect` (err), `error` is NOT used (an unhandled one would throw);
 * problems go to `protocolError` (err) and `warning` (err), mirrored by the option callbacks.
 */
export class OvsdbClient extends EventEmitter {
  private conn: Conn | null = null;
  private readonly monitors = new Map<string, ActiveMonitor>();
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  private closed = false;
  private echoInFlight = false;
  readonly target: string;
  /** Successful reconnects so far. */
  reconnects = 0;
  /** Malformed server messages over all connections. */
  protocolErrors = 0;

  private constructor(
    private readonly streamTarget: StreamTarget,
    private readonly options: OvsdbClientOptions,
  ) {
    super();
    this.target = formatTarget(streamTarget);
    this.backoffMs = options.backoffMinMs ?? 100;
  }

  /** Connects to `unix:/path`, `tcp:host:port` or a bare socket path. The first connect must succeed. */
  static async connect(target: string, options: OvsdbClientOptions = {}): Promise<OvsdbClient> {
    const client = new OvsdbClient(parseTarget(target), options);
    client.attach(await JsonRpcConnection.connect(client.streamTarget, options));
    client.startKeepalive();
    return client;
  }

  get connected(): boolean {
    return this.conn !== null && !this.conn.closed;
  }

  // ---- RFC 7047 methods --------------------------------------------------------------------------

  async listDbs(): Promise<string[]> {
    const r = await this.call('list_dbs', []);
    if (!Array.isArray(r) || !r.every((x) => typeof x === 'string')) {
      throw new Error(`${this.target}: list_dbs: unexpected result ${JSON.stringify(r).slice(0, 200)}`);
    }
    return r;
  }

  async getSchema(db: string): Promise<DatabaseSchema> {
    const r = (await this.call('get_schema', [db])) as DatabaseSchema;
    if (!r || typeof r !== 'object' || typeof r.tables !== 'object') {
      throw new Error(`${this.target}: get_schema ${db}: result has no tables`);
    }
    return r;
  }

  /**
   * Runs `ops` atomically. Returns one result per op; throws {@link OvsdbTransactionError} when any
   * op (or the commit, reported as an extra result) failed.
   */
  async transact(
    db: string,
    ops: OvsdbOperation[],
    options: { timeoutMs?: number } = {},
  ): Promise<OpResult[]> {
    const r = await this.call('transact', [db, ...ops], options.timeoutMs, `transact ${db}`);
    if (!Array.isArray(r)) {
      throw new Error(
        `${this.target}: transact on ${db}: result is not an array: ${JSON.stringify(r).slice(0, 200)}`,
      );
    }
    const results = r as (OpResult | null)[];
    results.forEach((res, i) => {
      if (res && typeof res === 'object' && typeof res.error === 'string') {
        throw new OvsdbTransactionError(this.target, db, i, ops[i] ?? null, res.error, res.details, results);
      }
    });
    if (results.length < ops.length) {
      throw new Error(`${this.target}: transact on ${db}: ${results.length} results for ${ops.length} ops`);
    }
    // No op failed: every op has an object result; a select's has a `rows` array.
    for (let i = 0; i < ops.length; i++) {
      const res = results[i];
      const what = `result ${i} (${describeOp(ops[i])})`;
      if (!isObject(res))
        throw new OvsdbReplyError(this.target, `transact ${db}`, `${what} is not an object: ${preview(res)}`);
      if (ops[i].op === 'select' && !Array.isArray(res.rows))
        throw new OvsdbReplyError(
          this.target,
          `transact ${db}`,
          `${what} has no rows array: ${preview(res.rows)}`,
        );
    }
    return results.slice(0, ops.length) as OpResult[];
  }

  /** `monitor`: returns the initial contents; later changes arrive through `onUpdate`. */
  async monitor(
    db: string,
    monitorId: MonitorId,
    requests: Record<string, MonitorRequest | MonitorRequest[]>,
    onUpdate: (updates: TableUpdates, info: UpdateInfo) => void,
  ): Promise<TableUpdates> {
    return (await this.startMonitor({
      method: 'monitor',
      db,
      id: monitorId,
      requests,
      onUpdate,
    })) as TableUpdates;
  }

  /** `monitor_cond` (update2 format, server-side `where` filtering). */
  async monitorCond(
    db: string,
    monitorId: MonitorId,
    requests: Record<string, MonitorCondRequest | MonitorCondRequest[]>,
    onUpdate: (updates: TableUpdates2, info: UpdateInfo) => void,
  ): Promise<TableUpdates2> {
    return (await this.startMonitor({
      method: 'monitor_cond',
      db,
      id: monitorId,
      requests,
      onUpdate,
    })) as TableUpdates2;
  }

  async monitorCancel(monitorId: MonitorId): Promise<void> {
    const key = JSON.stringify(monitorId);
    if (!this.monitors.has(key)) throw new Error(`${this.target}: monitor_cancel: no active monitor ${key}`);
    this.monitors.delete(key);
    if (this.connected) await this.call('monitor_cancel', [monitorId]);
  }

  /** Round trip; resolves with the echoed params. */
  async echo(...params: unknown[]): Promise<unknown[]> {
    return (await this.call('echo', params)) as unknown[];
  }

  /** Ends the connection, monitors and all timers. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.keepaliveTimer = null;
    this.reconnectTimer = null;
    this.monitors.clear();
    const c = this.conn;
    this.conn = null;
    c?.close();
    this.emit('close');
  }

  // ---- internals ---------------------------------------------------------------------------------

  private call(method: string, params: unknown[], timeoutMs?: number, label = method): Promise<unknown> {
    const c = this.conn;
    if (this.closed)
      return Promise.reject(new Error(`${this.target}: cannot send ${label}: client is closed`));
    if (!c || c.closed) {
      return Promise.reject(
        new JsonRpcConnectionError(
          this.target,
          'not-connected',
          `cannot send ${label}: not connected (reconnecting)`,
        ),
      );
    }
    return c.request(method, params, timeoutMs === undefined ? {} : { timeoutMs });
  }

  private async startMonitor(m: ActiveMonitor): Promise<unknown> {
    const key = JSON.stringify(m.id);
    if (this.monitors.has(key))
      throw new Error(`${this.target}: ${m.method}: monitor id ${key} is already in use`);
    // Registered before the reply so notifications racing the reply are not dropped.
    this.monitors.set(key, m);
    try {
      const initial = await this.call(m.method, [m.db, m.id, m.requests], undefined, `${m.method} ${m.db}`);
      if (!isObject(initial))
        throw new OvsdbReplyError(
          this.target,
          `${m.method} ${m.db}`,
          `initial contents are not a table-updates object: ${preview(initial)}`,
        );
      return initial;
    } catch (err) {
      this.monitors.delete(key);
      throw err;
    }
  }

  private attach(conn: Conn): void {
    this.conn = conn;
    conn.on('notification', (method: string, params: unknown[]) => this.onNotification(method, params));
    conn.on('protocolError', (err: Error) => {
      this.protocolErrors++;
      this.emit('protocolError', err);
      this.options.onError?.(err);
    });
    conn.on('close', (err: Error | null) => {
      if (this.conn !== conn) return;
      this.conn = null;
      this.echoInFlight = false;
      if (this.closed) return;
      this.emit('disconnect', err);
      this.options.onDisconnect?.(err);
      if (this.options.reconnect ?? true) this.scheduleReconnect();
    });
  }

  private onNotification(method: string, params: unknown[]): void {
    if (method !== 'update' && method !== 'update2') return;
    const [id, updates] = params;
    const m = this.monitors.get(JSON.stringify(id));
    if (!m) return;
    if (!isObject(updates)) {
      this.warn(
        new OvsdbReplyError(
          this.target,
          `${method} ${m.db}`,
          `notification for monitor ${JSON.stringify(id)} has no table-updates object: ${preview(updates)}`,
        ),
      );
      return;
    }
    this.deliver(m, updates, { initial: false, replace: false });
  }

  private deliver(m: ActiveMonitor, updates: unknown, info: UpdateInfo): void {
    try {
      m.onUpdate(updates as never, info);
    } catch (err) {
      // An exception from user code must not tear down the socket's data handler.
      this.warn(
        new Error(
          `${this.target}: monitor ${JSON.stringify(m.id)} callback threw: ${(err as Error).message}`,
        ),
      );
    }
  }

  private warn(err: Error): void {
    this.emit('warning', err);
    this.options.onError?.(err);
  }

  private startKeepalive(): void {
    const interval = this.options.keepaliveIntervalMs ?? 5000;
    if (interval <= 0) return;
    this.keepaliveTimer = setInterval(() => {
      const c = this.conn;
      if (!c || c.closed || this.echoInFlight) return;
      this.echoInFlight = true;
      c.request('echo', [], { timeoutMs: interval }).then(
        () => {
          if (this.conn === c) this.echoInFlight = false;
        },
        (err: Error) => {
          if (this.conn === c) this.echoInFlight = false;
          if (err instanceof JsonRpcConnectionError && err.reason === 'timeout') {
            c.destroy(`keepalive: no echo reply within ${interval} ms; connection considered dead`);
          }
        },
      );
    }, interval);
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.backoffMaxMs ?? 8000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.reconnect();
    }, delay);
  }

  private async reconnect(): Promise<void> {
    if (this.closed) return;
    let conn: Conn;
    try {
      conn = await JsonRpcConnection.connect(this.streamTarget, this.options);
    } catch (err) {
      this.warn(new Error(`${this.target}: reconnect failed: ${(err as Error).message}`));
      this.scheduleReconnect();
      return;
    }
    if (this.closed) {
      conn.close();
      return;
    }
    this.attach(conn);
    try {
      for (const m of [...this.monitors.values()]) {
        const initial = await conn.request(m.method, [m.db, m.id, m.requests]);
        if (this.closed || this.conn !== conn) return;
        if (!this.monitors.has(JSON.stringify(m.id))) continue; // cancelled meanwhile
        if (!isObject(initial))
          throw new OvsdbReplyError(
            this.target,
            `${m.method} ${m.db}`,
            `re-issued monitor's contents are not a table-updates object: ${preview(initial)}`,
          );
        this.deliver(m, initial, { initial: true, replace: true });
      }
    } catch (err) {
      this.warn(
        new Error(`${this.target}: re-issuing monitors after reconnect failed: ${(err as Error).message}`),
      );
      // The close handler schedules the next attempt.
      if (this.conn === conn) conn.destroy('re-issuing monitors failed');
      return;
    }
    this.backoffMs = this.options.backoffMinMs ?? 100;
    this.reconnects++;
    this.emit('reconnect');
    this.options.onReconnect?.();
  }
}
