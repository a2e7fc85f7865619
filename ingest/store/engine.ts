/**
 * Runs store requests on chDB: the process's one Session on the data directory (which holds the
 * directory's lock for the store's lifetime) plus a pool of connections that execute requests.
 *
 * Settings of a request are applied the way the HTTP interface scopes them, to that request only:
 * - INSERTs of formats chDB's raw insert accepts carry them in their own `SETTINGS` clause;
 * - anything else runs after a `SET` on its borrowed connection, which is then closed rather than
 *   reused. So is a connection after any statement that may change session state (SET, USE,
 *   temporary tables, transactions): a ClickHouse server gives each request a fresh session.
 *
 * chDB itself is loaded when the first engine opens, not when this module is imported: the library
 * is 566 MB to map, and commands that never open a store (analyze) import this module through
 * the command table.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RawInsertFormat, Session } from 'chdb';
import { lockHolder } from './datadir.js';
import { ClickHouseException, StoreError, StoreLockedError } from './errors.js';
import {
  DEFAULT_OUTPUT_FORMAT,
  type InsertStatement,
  isBinaryFormat,
  isPlainIdentifier,
  isRawInsertFormat,
  quoteIdentifier,
  trailingFormat,
} from './formats.js';
import { reframeNative } from './native.js';
import { bindValue, placeholderTypes } from './params.js';
import { planRequest } from './plan.js';
import { ConnectionPool, type Lease } from './pool.js';
import type { StoreRequest } from './request.js';

/** `X-ClickHouse-Summary`: counters as decimal strings, as a ClickHouse server sends them. */
export interface Summary {
  read_rows: string;
  read_bytes: string;
  written_rows: string;
  written_bytes: string;
  total_rows_to_read: string;
  result_rows: string;
  result_bytes: string;
  elapsed_ns: string;
}

export interface Outcome {
  body: Buffer;
  /** The output format, for `X-ClickHouse-Format` and `Content-Type`. */
  format: string;
  summary: Summary;
}

export interface EngineOptions {
  /** Requests executing at once (default: libuv threads − 1, so file and zlib work still runs). */
  concurrency?: number;
}

export type Chdb = typeof import('chdb');

// Process-wide cache of the loaded native library: it is loaded once, by the first store opened.
let chdbModule: Promise<Chdb> | undefined;

/** The chDB module, loaded (and its native library mapped) on first call. */
export function loadChdb(): Promise<Chdb> {
  chdbModule ??= import('chdb').catch((error: unknown) => {
    chdbModule = undefined;
    throw new StoreError(
      `cannot load the chDB engine (npm package chdb): ${error instanceof Error ? error.message : String(error)}`,
      {},
      { cause: error },
    );
  });
  return chdbModule;
}

const STATEFUL_SQL = /\b(?:SET|USE|TEMPORARY|BEGIN|COMMIT|ROLLBACK)\b/i;
const READONLY_GET =
  'Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries';

export class ChdbEngine {
  private constructor(
    readonly dataDir: string,
    private readonly chdb: Chdb,
    private readonly primary: Session,
    private readonly pool: ConnectionPool,
    /** Engine version, as `SELECT version()`. */
    readonly version: string,
    readonly timezone: string,
  ) {}

  /** Opens `dataDir` (created if missing). The directory must not be open in another process. */
  static async open(dataDir: string, options: EngineOptions = {}): Promise<ChdbEngine> {
    mkdirSync(dataDir, { recursive: true });
    const chdb = await loadChdb();
    let primary: Session;
    try {
      primary = new chdb.Session(dataDir);
    } catch (error) {
      throw diagnoseOpenFailure(dataDir, error);
    }
    try {
      const info = await primary.queryAsync('SELECT version(), timezone()', { format: 'TabSeparated' });
      const [version, timezone] = info.text().trim().split('\t');
      const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
      const size = options.concurrency ?? Math.max(1, threads - 1);
      const pool = new ConnectionPool(dataDir, size, (dir) => new chdb.Session(dir));
      return new ChdbEngine(dataDir, chdb, primary, pool, version, timezone);
    } catch (error) {
      primary.close();
      throw new StoreError(`chDB opened ${dataDir} but cannot query it`, { dataDir }, { cause: error });
    }
  }

  /** Creates `database` unless it exists. */
  async createDatabase(database: string): Promise<void> {
    await this.primary.queryAsync(`CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)}`);
  }

  /** Executes one request; `signal` abandons it while it still waits for a connection. */
  async execute(request: StoreRequest, signal?: AbortSignal): Promise<Outcome> {
    const plan = planRequest(request);
    const lease = await this.pool.acquire(request.database, signal);
    let reusable = false;
    try {
      if (plan.kind === 'insert') {
        const raw = this.rawInsertTarget(request, plan.statement);
        if (raw) {
          reusable = true; // settings travel in the INSERT itself
          return await this.rawInsert(lease, request, plan.statement, raw, plan.data);
        }
        if (request.readOnly) throw new ClickHouseException('READONLY', READONLY_GET);
        reusable = !this.needsSettings(request);
        await this.applySettings(lease, request);
        return await this.textInsert(lease, plan.statement, plan.data);
      }
      reusable = !this.needsSettings(request) && !STATEFUL_SQL.test(plan.sql);
      await this.applySettings(lease, request);
      return await this.query(lease, request, plan.sql);
    } finally {
      this.pool.release(lease, reusable);
    }
  }

  /** Waits for executing requests, then closes every connection and releases the directory. */
  async close(): Promise<void> {
    await this.pool.close();
    this.primary.close();
    // close() defers tearing a connection down while any native operation runs; wait for it, so
    // the directory is free (and its lock released) when this resolves.
    await this.chdb.drainPending();
  }

  private needsSettings(request: StoreRequest): boolean {
    return request.settings.size > 0 || request.readOnly;
  }

  private async applySettings(lease: Lease, request: StoreRequest): Promise<void> {
    if (!this.needsSettings(request)) return;
    const settings = new Map(request.settings);
    // GET is read-only (2: settings may still change), unless the client asked for stricter.
    if (request.readOnly && settings.get('readonly') !== '1') settings.set('readonly', '2');
    const assignments = [...settings].map(([name, value]) => `${name} = ${settingLiteral(value)}`);
    await lease.session.queryAsync(`SET ${assignments.join(', ')}`);
  }

  /** The table for chDB's raw insert, or undefined when the statement needs the SQL path. */
  private rawInsertTarget(request: StoreRequest, statement: InsertStatement): string | undefined {
    if (!statement.simple || !isRawInsertFormat(statement.format) || request.readOnly) return undefined;
    const { table } = statement.simple;
    if (table.includes('.') || request.database === 'default') return table;
    return isPlainIdentifier(request.database) ? `${request.database}.${table}` : undefined;
  }

  private async rawInsert(
    lease: Lease,
    request: StoreRequest,
    statement: InsertStatement,
    table: string,
    data: Buffer,
  ): Promise<Outcome> {
    if (data.length === 0) return emptyInsert();
    const settings: Record<string, string | number> = {};
    for (const [name, value] of request.settings) settings[name] = rawSettingValue(value);
    const result = await lease.session.insert({
      table,
      columns: statement.simple?.columns,
      values: data,
      format: statement.format as RawInsertFormat,
      settings,
    });
    return {
      body: Buffer.alloc(0),
      format: DEFAULT_OUTPUT_FORMAT,
      summary: summary({
        writtenRows: result.rowsWritten,
        writtenBytes: result.bytesWritten,
        elapsed: result.elapsed,
      }),
    };
  }

  /** INSERT of a format the raw path does not take: data as text after the statement, or a file. */
  private async textInsert(lease: Lease, statement: InsertStatement, data: Buffer): Promise<Outcome> {
    if (data.length === 0) return emptyInsert();
    // Binary data (Native, RowBinary, Parquet, ...) cannot travel in a query string (a row starting
    // with a newline byte would be cut), even when its bytes happen to be valid UTF-8.
    if (isBinaryFormat(statement.format)) return await this.fileInsert(lease, statement, data);
    let text: string | undefined;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      const result = await lease.session.queryAsync(`${statement.sql}\n${text}`);
      return { body: Buffer.alloc(0), format: DEFAULT_OUTPUT_FORMAT, summary: summary(result) };
    }
    // Text that is not UTF-8 cannot travel in a query string either; chDB reads it byte for byte.
    return await this.fileInsert(lease, statement, data);
  }

  /**
   * INSERT whose data chDB reads from a file: binary formats, and this process's own writer
   * (`insertNative`). `FROM INFILE` goes before the trailing `SETTINGS … FORMAT X`.
   */
  private async fileInsert(
    lease: Lease,
    statement: InsertStatement,
    data: Buffer | readonly Buffer[],
  ): Promise<Outcome> {
    if (!statement.simple) {
      throw new ClickHouseException(
        'NOT_IMPLEMENTED',
        'Binary INSERT data is supported only for INSERT INTO table [(columns)] FORMAT X',
        400,
      );
    }
    const dir = join(this.dataDir, 'tmp');
    const file = join(dir, `callscope-insert-${randomUUID()}.bin`);
    mkdirSync(dir, { recursive: true });
    try {
      // Written on a libuv thread: the main thread encodes the next batch meanwhile.
      await writeFile(file, Buffer.isBuffer(data) ? [data] : data);
      const path = `'${file.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
      const { table, columns } = statement.simple;
      const settings = statement.settings ? ` SETTINGS ${statement.settings}` : '';
      const sql = `INSERT INTO ${table}${columns ? ` (${columns.join(', ')})` : ''} FROM INFILE ${path}${settings} FORMAT ${statement.format}`;
      const result = await lease.session.queryAsync(sql);
      return { body: Buffer.alloc(0), format: DEFAULT_OUTPUT_FORMAT, summary: summary(result) };
    } finally {
      rmSync(file, { force: true });
    }
  }

  /**
   * A Native block into `database.table` from this process (the store's own writer): no HTTP, no
   * text. Settings apply to this INSERT only. Failures are the engine's exceptions, as over HTTP.
   */
  async insertNative(
    table: string,
    columns: readonly string[],
    data: readonly Buffer[],
    settings: Readonly<Record<string, string | number>>,
  ): Promise<Outcome> {
    const assignments = Object.entries(settings).map(
      ([name, value]) => `${name} = ${settingLiteral(String(value))}`,
    );
    const lease = await this.pool.acquire('default');
    try {
      return await this.fileInsert(
        lease,
        {
          sql: '',
          format: 'Native',
          simple: { table, columns: [...columns] },
          settings: assignments.join(', ') || undefined,
        },
        data,
      );
    } finally {
      this.pool.release(lease, true);
    }
  }

  private async query(lease: Lease, request: StoreRequest, sql: string): Promise<Outcome> {
    const format = request.defaultFormat ?? DEFAULT_OUTPUT_FORMAT;
    let result: Awaited<ReturnType<Session['queryAsync']>>;
    if (request.params.size > 0) {
      const types = placeholderTypes(sql);
      const params: Record<string, string | null> = {};
      for (const [name, raw] of request.params) params[name] = bindValue(name, raw, types.get(name));
      result = await lease.session.queryBindAsync(sql, params, { format });
    } else {
      result = await lease.session.queryAsync(sql, { format });
    }
    const bytes = result.bytes();
    let body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const replyFormat = trailingFormat(sql) ?? format;
    // A client that names its protocol revision (clickhouse-go) reads Native as a server writes it
    // for that revision; chDB writes revision 0. The reply is whole already, so it is re-framed whole.
    if (request.clientProtocolVersion > 0 && replyFormat.toLowerCase() === 'native') {
      body = reframeNative(body, request.clientProtocolVersion);
    }
    return {
      body,
      format: replyFormat,
      summary: summary({ ...result, resultBytes: body.length }),
    };
  }
}

function emptyInsert(): Outcome {
  return { body: Buffer.alloc(0), format: DEFAULT_OUTPUT_FORMAT, summary: summary({}) };
}

interface Counters {
  rowsRead?: number;
  bytesRead?: number;
  writtenRows?: number;
  writtenBytes?: number;
  resultBytes?: number;
  /** Seconds. */
  elapsed?: number;
}

function summary(c: Counters): Summary {
  const n = (v: number | undefined) => String(Math.max(0, Math.round(v ?? 0)));
  return {
    read_rows: n(c.rowsRead),
    read_bytes: n(c.bytesRead),
    written_rows: n(c.writtenRows),
    written_bytes: n(c.writtenBytes),
    total_rows_to_read: n(c.rowsRead),
    // chDB reports no result row count; an INSERT's result rows are the rows it wrote.
    result_rows: n(c.writtenRows),
    result_bytes: n(c.resultBytes),
    elapsed_ns: n((c.elapsed ?? 0) * 1e9),
  };
}

const NUMBER = /^-?\d+(?:\.\d+)?$/;

/** A setting value as SQL: numbers bare, anything else a quoted, escaped string literal. */
export function settingLiteral(value: string): string {
  if (NUMBER.test(value)) return value;
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\0/g, '\\0')}'`;
}

/** A setting value for chDB's raw insert, which renders strings as quoted literals itself. */
function rawSettingValue(value: string): string | number {
  if (/^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
  return value;
}

/**
 * chDB only says "Failed to create connection" (the engine prints the reason on stderr). A lock
 * held by another process is told by the kernel's lock table (or ClickHouse's `status` file).
 */
function diagnoseOpenFailure(dataDir: string, error: unknown): StoreError {
  const message = error instanceof Error ? error.message : String(error);
  const holder = lockHolder(dataDir);
  if (holder && holder.pid !== process.pid) return new StoreLockedError(dataDir, holder, { cause: error });
  if (/one active data directory per process/.test(message)) {
    return new StoreError(
      `cannot open ${dataDir}: chDB serves one data directory per process and this process has another open`,
      { dataDir },
      { cause: error },
    );
  }
  return new StoreError(
    `cannot open chDB data directory ${dataDir}: ${message}`,
    { dataDir },
    { cause: error },
  );
}
