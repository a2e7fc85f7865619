/**
 * The events a pipeline test feeds in, and what the store must hold afterwards: a capture (generated
 * or given) analysed once, its events, its analyze summary, and for every event table the ids of
 * the rows its events make (the store's `event_id`, as decimal text).
 */
import { join } from 'node:path';
import { analyzeFile } from '../../analyze/analyze.js';
import type { AnalyzeSummary } from '../../analyze/summary.js';
import { type GeneratorOptions, generateCapture } from '../../capture/generator/generate.js';
import type { CaptureEvent } from '../../core/event.js';
import { eventRows } from '../../ingest/rows.js';
import type { EventTableName as StoredTableName } from '../../ingest/schema/tables.js';

/** The tables these pipeline tests check (the capture makes no HEP logs, their traffic no failovers). */
export type EventTableName = Exclude<StoredTableName, 'hep_logs' | 'failovers'>;

export const EVENT_TABLES: readonly EventTableName[] = ['sip_messages', 'media_reports', 'rtcp_reports'];

export interface SourceCapture {
  file: string;
  summary: AnalyzeSummary;
  /** Every event analyzeFile reported, in order. */
  events: CaptureEvent[];
  /** Per table: the event ids of the rows these events make (distinct). */
  expected: Record<EventTableName, Set<string>>;
}

/** Row ids per table that `events` make when written to the store. */
export function expectedRows(events: readonly CaptureEvent[]): Record<EventTableName, Set<string>> {
  const out: Record<EventTableName, Set<string>> = {
    sip_messages: new Set(),
    media_reports: new Set(),
    rtcp_reports: new Set(),
  };
  for (const e of events) {
    const { eventId, rows } = eventRows(e);
    for (const table of EVENT_TABLES) if (rows[table]) out[table].add(eventId.toString());
  }
  return out;
}

export async function sourceOf(file: string): Promise<SourceCapture> {
  const events: CaptureEvent[] = [];
  const summary = await analyzeFile(file, { onEvent: (e) => events.push(e) });
  return { file, summary, events, expected: expectedRows(events) };
}

/**
 * A generated capture of about 6,700 events (5,456 SIP messages, 1,216 RTP stream reports): 800
 * calls of every outcome between 6 VMs, 1-s talk time. Deterministic (fixed seed).
 */
export async function generatedSource(
  dir: string,
  options: Partial<GeneratorOptions> = {},
): Promise<SourceCapture> {
  const file = join(dir, 'pipeline.pcap');
  generateCapture({
    seed: 4242,
    vms: 6,
    calls: 800,
    callsPerSecond: 40,
    callDurationSec: 1,
    ...options,
    output: file,
  });
  return sourceOf(file);
}
