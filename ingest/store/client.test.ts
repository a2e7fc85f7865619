import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log.js';
import { openStore, type Store } from './client.js';
import { StoreConfigError, StoreExit, StoreNotFoundError, StoreUnreachableError } from './errors.js';

// Both modes through openStore; "server mode" talks to this process's embedded store, which is
// what a ClickHouse server looks like to the client.
let dir: string;
let embedded: Store;
const logLines: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'callscope-openstore-'));
  embedded = await openStore({
    dataDir: dir,
    database: 'callscope',
    logger: createLogger({ level: 'info', write: (line) => logLines.push(line) }),
  });
});

afterAll(async () => {
  await embedded?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('openStore', () => {
  it('starts an embedded store when no URL is given, in the requested database', async () => {
    expect(embedded.mode).toBe('embedded');
    expect(embedded.embedded?.dataDir).toBe(dir);
    expect(embedded.displayUrl).toBe(embedded.embedded?.url);
    const rs = await embedded.client.query({
      query: 'SELECT currentDatabase() AS db',
      format: 'JSONEachRow',
    });
    expect(await rs.json()).toEqual([{ db: 'callscope' }]);
    expect(logLines.some((l) => JSON.parse(l).msg === 'embedded store started')).toBe(true);
  });

  it('connects to a server URL, keeping credentials out of displayUrl', async () => {
    const url = new URL(embedded.embedded?.url ?? '');
    url.username = 'reader';
    url.password = 's3cret';
    const server = await openStore({ clickhouseUrl: url.toString(), database: 'callscope' });
    try {
      expect(server.mode).toBe('server');
      expect(server.embedded).toBeNull();
      expect(server.displayUrl).toBe(`${embedded.embedded?.url}/`);
      await server.client.command({ query: 'CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x' });
      await server.client.insert({ table: 't', values: [{ x: 7 }], format: 'JSONEachRow' });
      const rs = await embedded.client.query({ query: 'SELECT x FROM callscope.t', format: 'JSONEachRow' });
      expect(await rs.json()).toEqual([{ x: 7 }]);
    } finally {
      await server.close();
      await server.close();
    }
  });

  it('fails with StoreUnreachableError naming the redacted URL when the server does not answer', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (line) => lines.push(line) });
    for (const options of [
      { clickhouseUrl: 'http://admin:pw-in-url@127.0.0.1:1' },
      { clickhouseUrl: 'http://127.0.0.1:1', username: 'admin', password: 'pw-as-option' },
    ]) {
      const error = await openStore({ ...options, logger }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnreachableError);
      const unreachable = error as StoreUnreachableError;
      expect(unreachable.code).toBe('STORE_UNREACHABLE');
      expect(unreachable.exitCode).toBe(StoreExit.UNAVAILABLE);
      expect(unreachable.url).toBe('http://127.0.0.1:1/');
      expect(unreachable.message).toBe(
        'ClickHouse at http://127.0.0.1:1/ does not answer (connect ECONNREFUSED 127.0.0.1:1); ' +
          'check --clickhouse and that the server is running',
      );
    }
    // The client's own report of the failed ping stays at debug level, and nothing logs a password.
    expect(lines.map((l) => JSON.parse(l).level)).not.toContain('warn');
    expect(lines.join('\n')).not.toMatch(/pw-/);
  });

  it('fails with StoreConfigError, redacted, for a URL the client refuses', async () => {
    const error = await openStore({
      clickhouseUrl: 'http://admin:pw-url@127.0.0.1:1/?password=pw-query',
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreConfigError);
    expect((error as StoreConfigError).exitCode).toBe(StoreExit.USAGE);
    expect((error as StoreConfigError).message).toBe(
      'cannot use --clickhouse http://127.0.0.1:1/: Unknown URL parameters: password',
    );
  });

  it('opens only an existing store with mustExist, creating nothing otherwise', async () => {
    const missing = join(dir, 'typo');
    const error = await openStore({ dataDir: missing, mustExist: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreNotFoundError);
    expect((error as StoreNotFoundError).message).toMatch(
      /^no callscope store at .*typo \(no such directory\)/,
    );
    expect(existsSync(missing)).toBe(false);
  });
});
