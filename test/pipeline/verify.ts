/**
 * What the store holds, read back exactly: per event table the rows after deduplication (`FINAL`),
 * the rows physically present (duplicates not merged away yet), the distinct event ids, and the ids
 * themselves (as decimal text: 64-bit integers do not survive JSON numbers).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { EventTableName } from './source.js';
import { EVENT_TABLES } from './source.js';

export interface TableCounts {
  /** `SELECT count() FROM t FINAL`: what every exact query sees. */
  final: number;
  /** `SELECT count() FROM t`: rows stored, repeats not yet merged included. */
  raw: number;
  /** `SELECT uniqExact(event_id) FROM t`. */
  distinct: number;
}

export type StoreCounts = Record<EventTableName, TableCounts>;

async function rows<T>(
  client: ClickHouseClient,
  query: string,
  params: Record<string, unknown>,
): Promise<T[]> {
  const result = await client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

export async function storeCounts(client: ClickHouseClient, database: string): Promise<StoreCounts> {
  const out = {} as StoreCounts;
  for (const table of EVENT_TABLES) {
    const [r] = await rows<{ final: string; raw: string; distinct: string }>(
      client,
      `SELECT toString((SELECT count() FROM {db:Identifier}.{t:Identifier} FINAL)) AS final,
              toString((SELECT count() FROM {db:Identifier}.{t:Identifier})) AS raw,
              toString((SELECT uniqExact(event_id) FROM {db:Identifier}.{t:Identifier})) AS distinct`,
      { db: database, t: table },
    );
    out[table] = { final: Number(r.final), raw: Number(r.raw), distinct: Number(r.distinct) };
  }
  return out;
}

/** The event ids of a table after deduplication. */
export async function storedIds(
  client: ClickHouseClient,
  database: string,
  table: EventTableName,
): Promise<Set<string>> {
  const r = await rows<{ id: string }>(
    client,
    'SELECT toString(event_id) AS id FROM {db:Identifier}.{t:Identifier} FINAL',
    { db: database, t: table },
  );
  return new Set(r.map((x) => x.id));
}

/** Final row counts only, for polling until the store is complete (errors count as "not yet"). */
export async function finalCounts(
  client: ClickHouseClient,
  database: string,
): Promise<Record<EventTableName, number> | null> {
  try {
    const c = await storeCounts(client, database);
    return {
      sip_messages: c.sip_messages.final,
      media_reports: c.media_reports.final,
      rtcp_reports: c.rtcp_reports.final,
    };
  } catch {
    return null;
  }
}

export function sizes(expected: Record<EventTableName, Set<string>>): Record<EventTableName, number> {
  return {
    sip_messages: expected.sip_messages.size,
    media_reports: expected.media_reports.size,
    rtcp_reports: expected.rtcp_reports.size,
  };
}

/** Polls until the store's final counts reach `want` (or pass it: the caller's assertions then fail). */
export async function waitForCounts(
  client: ClickHouseClient,
  database: string,
  want: Record<EventTableName, number>,
  timeoutMs: number,
): Promise<Record<EventTableName, number> | null> {
  const end = Date.now() + timeoutMs;
  let last: Record<EventTableName, number> | null = null;
  for (;;) {
    last = await finalCounts(client, database);
    if (last && EVENT_TABLES.every((t) => last![t] >= want[t])) return last;
    if (Date.now() > end) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
}
