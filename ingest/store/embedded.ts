/**
 * The embedded store: chDB owning a data directory, served on 127.0.0.1 over the ClickHouse HTTP
 * interface. chDB locks its directory to one process, so the process that owns the store serves
 * it to everything else (CLI queries, Grafana, the rest of callscope through @clickhouse/client).
 */
import { mkdirSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseError } from '@clickhouse/client';
import { type Logger, silentLogger } from '../../core/log.js';
import type { RowInserter } from '../inserter.js';
import { dataDirState, lockHolder, publishServedUrl, withdrawServedUrl } from './datadir.js';
import { ChdbEngine } from './engine.js';
import { exceptionReply, StoreError, StoreLockedError, StoreNotFoundError } from './errors.js';
import { StoreHttpServer, type StoreHttpStats } from './http.js';

/** callscope's database: the `--database` default, and what the HTTP interface serves by default. */
export const DEFAULT_DATABASE = 'callscope';

export interface EmbeddedStoreOptions {
  dataDir: string;
  /**
   * Open only a directory that already holds a store (for read-only commands): otherwise throw
   * StoreNotFoundError and create nothing. Default false: the directory is created if missing.
   */
  mustExist?: boolean;
  /**
   * The database of HTTP requests that name none, created if missing (default 'callscope'), so
   * `SHOW TABLES` and unqualified names in clickhouse-client or Grafana find callscope's tables.
   */
  defaultDatabase?: string;
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  logger?: Logger;
  /** Queries executing at once (default: libuv threads − 1). */
  concurrency?: number;
  /** Largest request body, after decompression (default 256 MiB). Bodies are held whole. */
  maxBodyBytes?: number;
  /** Requests accepted at once, including queued ones (default 64); more get 503. */
  maxInFlight?: number;
}

const DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024;
const DEFAULT_MAX_IN_FLIGHT = 64;

// chDB binds one data directory per process, and would let a second Session share it silently;
// this is the process's own record of which directory a store owns.
let openDir: string | undefined;

export class EmbeddedStore {
  private closing?: Promise<void>;

  private constructor(
    readonly url: string,
    readonly dataDir: string,
    /** The database of requests that name none. */
    readonly defaultDatabase: string,
    private readonly engine: ChdbEngine,
    private readonly http: StoreHttpServer,
    private readonly logger: Logger,
  ) {}

  /** Engine version (ClickHouse's, e.g. 26.7.2.1). */
  /** Requests served over HTTP, failed ones, answer bytes. */
  get httpStats(): StoreHttpStats {
    return { ...this.http.stats };
  }

  get version(): string {
    return this.engine.version;
  }

  /**
   * Inserts from this process straight into the engine (no HTTP hop, no client). A refusal is the
   * ClickHouseError the client would have raised for the same request over HTTP.
   */
  readonly inserter: RowInserter = {
    name: 'embedded',
    insert: async ({ table, columns, data, settings }) => {
      const flat: Record<string, string | number> = {};
      for (const [name, value] of Object.entries(settings)) {
        if (value !== undefined) flat[name] = typeof value === 'number' ? value : String(value);
      }
      try {
        await this.engine.insertNative(table, columns, data, flat);
      } catch (error) {
        const reply = exceptionReply(error, this.engine.version);
        throw Object.assign(parseError(reply.body.trim()), { cause: error });
      }
    },
  };

  static async start(options: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    const logger = options.logger ?? silentLogger;
    const started = performance.now();
    const defaultDatabase = options.defaultDatabase ?? DEFAULT_DATABASE;
    if (options.mustExist) {
      const state = dataDirState(options.dataDir);
      if (state !== 'store') throw new StoreNotFoundError(options.dataDir, state);
    }
    let dataDir: string;
    try {
      if (!options.mustExist) mkdirSync(options.dataDir, { recursive: true });
      dataDir = realpathSync(resolve(options.dataDir));
    } catch (error) {
      throw new StoreError(
        `cannot use ${options.dataDir} as the store's data directory: ${(error as NodeJS.ErrnoException).code ?? error}`,
        { dataDir: options.dataDir },
        { cause: error },
      );
    }
    if (openDir === dataDir) throw new StoreLockedError(dataDir, { pid: process.pid });
    // Checked before chDB is loaded: it would only fail, and print the engine's reason on stderr.
    const holder = lockHolder(dataDir);
    if (holder) throw new StoreLockedError(dataDir, holder);
    if (openDir) {
      throw new StoreError(
        `cannot open ${dataDir}: chDB serves one data directory per process and this process serves ${openDir}; close that store first`,
        { dataDir, open: openDir },
      );
    }
    openDir = dataDir;
    let engine: ChdbEngine | undefined;
    let http: StoreHttpServer | undefined;
    try {
      engine = await ChdbEngine.open(dataDir, { concurrency: options.concurrency });
      await engine.createDatabase(defaultDatabase);
      http = new StoreHttpServer(engine, {
        maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
        defaultDatabase,
        logger,
      });
      const port = await http.listen(options.port ?? 0);
      const store = new EmbeddedStore(
        `http://127.0.0.1:${port}`,
        dataDir,
        defaultDatabase,
        engine,
        http,
        logger,
      );
      publishServedUrl(dataDir, store.url);
      logger.info('embedded store started', {
        dataDir,
        url: store.url,
        defaultDatabase,
        chdb: engine.version,
        ms: Math.round(performance.now() - started),
      });
      return store;
    } catch (error) {
      await http?.close().catch(() => undefined);
      await engine?.close().catch(() => undefined);
      openDir = undefined;
      throw error;
    }
  }

  /**
   * Stops accepting requests, lets the ones in progress finish, then closes the chDB connections
   * and releases the directory (another process may open it once this resolves). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        withdrawServedUrl(this.dataDir);
        await this.http.close();
        await this.engine.close();
      } finally {
        if (openDir === this.dataDir) openDir = undefined;
      }
      this.logger.info('embedded store closed', { dataDir: this.dataDir });
    })();
    return this.closing;
  }
}
