/**
 * How the writer's blocks reach the store. Two ways, one interface:
 * - `clientInserter`: over HTTP with @clickhouse/client (a ClickHouse server, or an embedded store
 *   another process serves): `INSERT … FORMAT Native` with the block as the request body;
 * - the embedded store this process owns (`EmbeddedStore.inserter`): the engine reads the block from
 *   a file of its own, skipping the HTTP hop and the client (docs/PERFORMANCE.md, "Store and stream").
 * Either way a refusal is a ClickHouseError with the engine's code, so the writer's retry and
 * quarantine rules read the same.
 */
import { Readable } from 'node:stream';
import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';

export interface InsertRequest {
  /** `database.table`, plain identifiers (ingest/schema/ddl.ts insertTarget). */
  table: string;
  columns: readonly string[];
  /** One Native block, in parts (NativeBlock.sliceParts), sent one after the other. */
  data: readonly Buffer[];
  settings: ClickHouseSettings;
}

export interface RowInserter {
  /** Where the rows go, for logs (`http://…` or `embedded`). */
  readonly name: string;
  insert(request: InsertRequest): Promise<void>;
}

export function insertSql(table: string, columns: readonly string[]): string {
  return `INSERT INTO ${table} (${columns.join(', ')}) FORMAT Native`;
}

export function clientInserter(client: ClickHouseClient): RowInserter {
  return {
    name: 'http',
    async insert(request) {
      const result = await client.exec({
        query: insertSql(request.table, request.columns),
        // A fresh byte stream per attempt; objectMode off so the client sends the bytes as they are.
        values: Readable.from(request.data, { objectMode: false }),
        clickhouse_settings: request.settings,
      });
      // An INSERT answers nothing; the socket goes back to the pool once the reply is read.
      result.stream.resume();
      await new Promise<void>((resolve, reject) => {
        result.stream.once('end', resolve).once('error', reject);
      });
    },
  };
}
