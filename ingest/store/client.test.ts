import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log.js';
import { openStore, type Store } from './client.js';
import { StoreError } from './errors.js';

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

  it('fails with a StoreError naming the redacted URL when the server is unreachable', async () => {
    const error = await openStore({ clickhouseUrl: 'http://admin:pw@127.0.0.1:1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).message).toMatch(/^cannot reach ClickHouse at http:\/\/127\.0\.0\.1:1\//);
    expect((error as StoreError).message).not.toMatch(/pw/);
  });
});
