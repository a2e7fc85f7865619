/**
 * `analyze` as a library call: a capture source driven into a SummarySink (and any other sinks),
 * summarised. The CLI's `analyze`, the tests and the benchmarks use these.
 */

import {
  FileSource,
  type FileSourceOptions,
  InterfaceSource,
  type InterfaceSourceOptions,
} from '../capture/sources.js';
import { drive } from '../core/drive.js';
import type { CaptureEvent } from '../core/event.js';
import { CallbackSink, type EventSink } from '../core/sink.js';
import { type AnalyzeSummary, CaptureSummary } from './summary.js';

export interface AnalyzeOptions {
  /** Every event, as it is delivered (in capture order). */
  onEvent?: (event: CaptureEvent) => void;
  /** More sinks to drive beside the summary. */
  sinks?: EventSink[];
}

function sinksOf(summary: CaptureSummary, options: AnalyzeOptions): EventSink[] {
  const sinks: EventSink[] = [...summary.sinks, ...(options.sinks ?? [])];
  if (options.onEvent) sinks.push(new CallbackSink(options.onEvent));
  return sinks;
}

/** Reads a capture file end to end and summarises it. Throws CaptureFormatError for unusable files. */
export async function analyzeFile(
  path: string,
  options: FileSourceOptions & AnalyzeOptions = {},
): Promise<AnalyzeSummary> {
  const summary = new CaptureSummary({ logger: options.logger });
  const result = await drive(new FileSource(path, options), sinksOf(summary, options), {
    logger: options.logger,
  });
  return summary.of(result.source);
}

/**
 * Captures on an interface until `signal` aborts (or durationSec / packetLimit), then summarises, as
 * analyzeFile does for a file (format 'live', with the kernel's capture figures in `capture`).
 */
export async function analyzeInterface(
  name: string,
  options: InterfaceSourceOptions & AnalyzeOptions & { signal?: AbortSignal; maxQueuedEvents?: number } = {},
): Promise<AnalyzeSummary> {
  const summary = new CaptureSummary({ logger: options.logger });
  const result = await drive(new InterfaceSource(name, options), sinksOf(summary, options), {
    logger: options.logger,
    signal: options.signal,
    maxQueuedEvents: options.maxQueuedEvents,
  });
  return summary.of(result.source);
}
