/**
 * Single-process mode: a capture file → the capture pipeline → an in-process queue → the store (embedded
 * chDB or a ClickHouse server, always through @clickhouse/client). Reading pauses while the writer has
 * no room, so memory stays bounded however large the file is.
 */
import { randomUUID } from 'node:crypto';
import { type AnalyzeOptions, type AnalyzeSummary, analyzeFile } from '../capture/analyze.js';
import type { CaptureEvent } from '../capture/event.js';
import { captureRunFromSummary } from './rows.js';
import { migrate } from './schema/migrate.js';
import type { Store } from './store/client.js';
import { StoreWriter, type StoreWriterStats } from './writer.js';

export interface IngestFileOptions extends Omit<AnalyzeOptions, 'onEvent' | 'pause'> {
  store: Store;
  database: string;
  /** Days rows are kept; 0 forever. Applied by the migration (changing it alters the tables' TTL). */
  ttlDays: number;
  /** Defaults to a new UUID. */
  runId?: string;
}

export interface IngestFileResult {
  runId: string;
  summary: AnalyzeSummary;
  writer: StoreWriterStats;
}

/** Reads `path` into the store and records the run; resolves once every row is stored. */
export async function ingestFile(path: string, options: IngestFileOptions): Promise<IngestFileResult> {
  const { store, database, ttlDays, ...analyze } = options;
  const runId = options.runId ?? randomUUID();
  await migrate(store.client, { database, ttlDays, logger: options.logger });
  const writer = new StoreWriter(store.client, { database, runId, logger: options.logger });
  let queue: CaptureEvent[] = [];
  const drain = (): Promise<void> => {
    const batch = queue;
    queue = [];
    return writer.write(batch);
  };
  try {
    const summary = await analyzeFile(path, {
      ...analyze,
      onEvent: (event) => {
        queue.push(event);
      },
      // After each read chunk its events go to the writer; reading resumes once the writer took them
      // (at once, unless a batch is in flight and the next one is full).
      pause: () => (queue.length === 0 ? null : drain()),
    });
    await drain();
    await writer.flush();
    await writer.writeCaptureRun(
      captureRunFromSummary(summary, { runId, captureId: options.captureId, nodeName: options.nodeName }),
    );
    return { runId, summary, writer: { ...writer.stats } };
  } finally {
    await writer.close().catch(() => {});
  }
}
