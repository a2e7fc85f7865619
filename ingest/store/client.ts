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
import { clientInserter, type RowInserter } from '../inserter.js';
import { DEFAULT_DATABASE, EmbeddedStore } from './embedded.js';
import { StoreConfigError, StoreError, StoreUnreachableError } from './errors.js';
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
  /** The client's database; unset, the server's default (the embedded store's `defaultDatabase`). */
  database?: string;
  dataDir?: string;
  /** Embedded mode: the database of requests that name none (default `database`, else 'callscope'). */
  defaultDatabase?: string;
  /** Embedded mode: open only a directory that holds a store, else throw StoreNotFoundError. */
  mustExist?: boolean;
  logger?: Logger;
}

export interface Store {
  client: ClickHouseClient;
  mode: 'embedded' | 'server';
  /** URL without credentials, safe to log */
  displayUrl: string;
  embedded: EmbeddedStore | null;
  /** The writer's way in: straight into the engine when this process owns the store, else HTTP. */
  inserter: RowInserter;
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
    const secrets = [options.password, urlPassword(options.clickhouseUrl)];
    let client: ClickHouseClient;
    try {
      client = createClient({
        url: options.clickhouseUrl,
        username: options.username,
        password: options.password,
        database: options.database,
        log: clientLog(logger),
      });
    } catch (error) {
      throw new StoreConfigError(displayUrl, scrub((error as Error).message, secrets), { cause: error });
    }
    try {
      await ensureReachable(client, displayUrl, secrets);
    } catch (error) {
      await client.close();
      throw error;
    }
    logger.info('store: using ClickHouse server', { url: displayUrl, database: options.database });
    return storeOf(client, 'server', displayUrl, null);
  }

  const defaultDatabase = options.defaultDatabase ?? options.database ?? DEFAULT_DATABASE;
  const embedded = await EmbeddedStore.start({
    dataDir: options.dataDir ?? DEFAULT_DATA_DIR,
    defaultDatabase,
    mustExist: options.mustExist,
    logger,
  });
  try {
    const database = options.database;
    if (database !== undefined && database !== defaultDatabase) {
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
    await ensureReachable(client, embedded.url, []);
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
      // A failed ping is thrown to the caller by ensureReachable, with context.
      const level = p.message.startsWith('Ping:') ? 'debug' : 'warn';
      logger[level](`clickhouse client: ${p.message}`, fields(p));
    }
    error(p: ErrorLogParams) {
      logger.debug(`clickhouse client: ${p.message}`, fields(p));
    }
  }
  return { LoggerClass: Bridge, level: ClickHouseLogLevel.WARN };
}

// Failures that mean nothing answered (or a proxy in front of nothing), not a refusal by ClickHouse.
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EPIPE',
  'UND_ERR_SOCKET',
]);

/** Whether a ping failure means the server did not answer at all. */
function isUnreachable(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== undefined && UNREACHABLE_CODES.has(code)) return true;
  return /^Timeout error/i.test(error.message) || /socket hang up/i.test(error.message);
}

async function ensureReachable(
  client: ClickHouseClient,
  displayUrl: string,
  secrets: Array<string | undefined>,
): Promise<void> {
  // A SELECT, unlike /ping, also checks credentials.
  const ping = await client.ping({ select: true });
  if (ping.success) return;
  const detail = scrub(ping.error.message, secrets);
  if (isUnreachable(ping.error)) throw new StoreUnreachableError(displayUrl, detail, { cause: ping.error });
  const message = `ClickHouse at ${displayUrl} refused the connection check: ${detail}`;
  throw new StoreError(message, { url: displayUrl }, { cause: ping.error });
}

function urlPassword(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).password) || undefined;
  } catch {
    return undefined;
  }
}

/** `text` with every secret replaced: an error may quote what it was sent. */
function scrub(text: string, secrets: Array<string | undefined>): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret) continue;
    out = out.split(secret).join('***');
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) out = out.split(encoded).join('***');
  }
  return out;
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
    inserter: embedded?.inserter ?? clientInserter(client),
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
