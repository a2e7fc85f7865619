/**
 * TEST-ONLY: a fresh embedded store (chDB served over the ClickHouse HTTP interface) in a temporary
 * directory, so schema, writer and stats tests run against a real ClickHouse engine through
 * `@clickhouse/client`, exactly as production code does.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { openStore } from '../store/client.js';

export interface TestStore {
  client: ClickHouseClient;
  close(): Promise<void>;
}

export async function openTestStore(): Promise<TestStore> {
  const dataDir = mkdtempSync(join(tmpdir(), 'callscope-store-test-'));
  const store = await openStore({ dataDir });
  return {
    client: store.client,
    async close() {
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
