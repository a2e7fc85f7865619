/**
 * One way to reach the store in both modes: a ClickHouse server when a URL is configured, else an
 * embedded store this process starts and serves. Either way callers get an @clickhouse/client
 * client, so there is one code path for queries and inserts.
 */
import {
  type ClickHouseClient,
  ClickHouseLogLevel,
  type Logger as ClientLogger,
  createClient,
  type ErrorLogParams,
  type LogParams,
  type WarnLogParams,
} from '@clickhouse/client';
import { type Logger, silentLogger } from '../../core/log.js';
import { EmbeddedStore } from './embedded.js';
import { StoreError } from './errors.js';
import { quoteIdentifier } from './formats.js';

export interface StoreConnection {
  url: string;
  username?: string;
  password?: string;
  database?: string;
}

export interface OpenStoreOptions {
  clickhouseUrl?: string;
  username?: string;
  password?: string;
  database?: string;
  dataDir?: string;
  logger?: Logger;
}

export interface Store {
  client: ClickHouseClient;
  mode: 'embedded' | 'server';
  /** URL without credentials, safe to log */
  displayUrl: string;
  embedded: EmbeddedStore | null;
  close(): Promise<void>;
}

export const DEFAULT_DATA_DIR = './callscope-data';

const SECRET_PARAMS = new Set(['password', 'access_token', 'token', 'secret']);

/** `url` without `user:password@` and without password-like query parameters. */
export function redactUrl(url: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  // `user:pw@host` parses too, as scheme `user:`; only http(s) URLs are taken apart.
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) return redactText(url);
  parsed.username = '';
  parsed.password = '';
  for (const key of [...parsed.searchParams.keys()]) {
    if (SECRET_PARAMS.has(key.toLowerCase())) parsed.searchParams.delete(key);
  }
  return parsed.toString();
}

/** Best effort for text that is not an http(s) URL but may still carry secrets. */
function redactText(text: string): string {
  return text
    .replace(/[^\s/?#@]*@/, '')
    .replace(
      /([?&])(?:password|access_token|token|secret)=[^&#\s]*(&|(?=#)|$)/gi,
      (_m, lead: string, tail: string) => (tail === '&' ? lead : ''),
    );
}

/**
 * Server mode when `clickhouseUrl` is given, else starts an EmbeddedStore on `dataDir` (default
 * ./callscope-data) and connects to it. Either way the store answered a ping before this resolves.
 */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const logger = options.logger ?? silentLogger;
  if (options.clickhouseUrl) {
    const displayUrl = redactUrl(options.clickhouseUrl);
    const client = createClient({
      url: options.clickhouseUrl,
      username: options.username,
      password: options.password,
      database: options.database,
      log: clientLog(logger),
    });
    try {
      await ensureReachable(client, displayUrl);
    } catch (error) {
      await client.close();
      throw error;
    }
    logger.info('store: using ClickHouse server', { url: displayUrl, database: options.database });
    return storeOf(client, 'server', displayUrl, null);
  }

  const embedded = await EmbeddedStore.start({ dataDir: options.dataDir ?? DEFAULT_DATA_DIR, logger });
  try {
    const database = options.database ?? 'default';
    if (database !== 'default') {
      // The store is ours, so the database is created on first use; a server's is the admin's.
      const bootstrap = createClient({ url: embedded.url, log: clientLog(logger) });
      try {
        await bootstrap.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)}` });
      } finally {
        await bootstrap.close();
      }
    }
    // Credentials are not passed: the embedded store listens on loopback only and has no users.
    const client = createClient({ url: embedded.url, database, log: clientLog(logger) });
    await ensureReachable(client, embedded.url);
    return storeOf(client, 'embedded', embedded.url, embedded);
  } catch (error) {
    await embedded.close();
    throw error;
  }
}

/**
 * Routes the client's own log into ours, so logs stay JSON lines. Its errors are the failures it
 * also throws to the caller, who reports them with context; they are kept at debug level here.
 */
function clientLog(logger: Logger): { LoggerClass: new () => ClientLogger; level: ClickHouseLogLevel } {
  const fields = (p: LogParams & { err?: Error }) => ({
    module: p.module,
    error: p.err?.message,
    queryId: typeof p.args?.query_id === 'string' ? p.args.query_id : undefined,
  });
  class Bridge implements ClientLogger {
    trace(p: LogParams) {
      logger.debug(`clickhouse client: ${p.message}`, fields(p));
    }
    debug(p: LogParams) {
      logger.debug(`clickhouse client: ${p.message}`, fields(p));
    }
    info(p: LogParams) {
      logger.info(`clickhouse client: ${p.message}`, fields(p));
    }
    warn(p: WarnLogParams) {
      logger.warn(`clickhouse client: ${p.message}`, fields(p));
    }
    error(p: ErrorLogParams) {
      logger.debug(`clickhouse client: ${p.message}`, fields(p));
    }
  }
  return { LoggerClass: Bridge, level: ClickHouseLogLevel.WARN };
}

async function ensureReachable(client: ClickHouseClient, displayUrl: string): Promise<void> {
  // A SELECT, unlike /ping, also checks credentials and the database.
  const ping = await client.ping({ select: true });
  if (!ping.success) {
    throw new StoreError(
      `cannot reach ClickHouse at ${displayUrl}: ${ping.error.message}`,
      { url: displayUrl },
      { cause: ping.error },
    );
  }
}

function storeOf(
  client: ClickHouseClient,
  mode: Store['mode'],
  displayUrl: string,
  embedded: EmbeddedStore | null,
): Store {
  let closing: Promise<void> | undefined;
  return {
    client,
    mode,
    displayUrl,
    embedded,
    close() {
      closing ??= (async () => {
        try {
          await client.close();
        } finally {
          await embedded?.close();
        }
      })();
      return closing;
    },
  };
}
