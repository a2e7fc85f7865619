/**
 * TEST-ONLY: a fresh embedded store (chDB served over the ClickHouse HTTP interface) in a temporary
 * directory, so schema, writer and stats tests run against a real ClickHouse engine through
 * `@clickhouse/client`, exactly as production code does. With `CLICKHOUSE_URL` set (and optionally
 * `CLICKHOUSE_USER`, `CLICKHOUSE_PASSWORD`) they run against that ClickHouse server instead; tests use
 * their own database names there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import type { RowInserter } from '../inserter.js';
import { openStore } from '../store/client.js';

export interface TestStore {
  client: ClickHouseClient;
  /** The writer's way in (straight into the engine for the embedded store). */
  inserter: RowInserter;
  close(): Promise<void>;
}

export async function openTestStore(): Promise<TestStore> {
  const url = process.env.CLICKHOUSE_URL;
  if (url) {
    const server = await openStore({
      clickhouseUrl: url,
      username: process.env.CLICKHOUSE_USER,
      password: process.env.CLICKHOUSE_PASSWORD,
    });
    return { client: server.client, inserter: server.inserter, close: () => server.close() };
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'callscope-store-test-'));
  const store = await openStore({ dataDir });
  return {
    client: store.client,
    inserter: store.inserter,
    async close() {
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
