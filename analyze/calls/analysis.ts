/**
 * Calls as `analyze` and `stats` summarise them: the call engine (CallSink) feeding the KPI counter,
 * and, when asked, the records themselves.
 */
import type { CallRecord } from '../../core/call.js';
import type { Logger } from '../../core/log.js';
import { CallKpiCounter, type CallsSummary } from './kpis.js';
import { CallSink, type CallSinkOptions } from './sink.js';

export interface CallAnalysisOptions extends Omit<CallSinkOptions, 'onRecord'> {
  logger?: Logger;
  /** Keep every record (for `calls`, tests); without, only the KPIs are kept. */
  keepRecords?: boolean;
  /** Also hand each record here. */
  onRecord?: (record: CallRecord) => void;
}

/** What the call engine gave up at its bounds (the summary's `limits`). */
export interface CallLimitsReached {
  callsEvicted: number;
  callLegsForgotten: number;
}

export class CallAnalysis {
  readonly sink: CallSink;
  readonly records: CallRecord[] = [];
  private readonly counter = new CallKpiCounter();

  constructor(options: CallAnalysisOptions = {}) {
    this.sink = new CallSink({
      ...options,
      onRecord: (record) => {
        this.counter.add(record);
        if (options.keepRecords) this.records.push(record);
        options.onRecord?.(record);
      },
    });
  }

  limits(): CallLimitsReached {
    const stats = this.sink.callStats();
    return { callsEvicted: stats.evicted, callLegsForgotten: stats.legsForgotten };
  }

  /** Closes the calls still open as of the input's end (capture time, ms) and summarises them all. */
  async finish(endMs?: number): Promise<CallsSummary> {
    await this.sink.close(endMs);
    return this.counter.summary();
  }
}
