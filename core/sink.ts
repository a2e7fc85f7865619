/**
 * The one output interface. Everything that receives events is a sink: the store, the Kafka producer
 * with its spool, the HEP sender, the summary of `analyze`, and later stages (calls, alerts, metrics).
 * A command builds a source and its sinks and hands them to `drive` (core/drive.ts).
 *
 * Failure policy (the same for every sink):
 * - `write` resolves once the sink has taken the events (it may wait: backpressure). A destination that
 *   fails for good (the store down past its retries) is replaced inside the sink; the events the
 *   failed destination held are counted in `lost` with a reason, and the sink carries on.
 * - `flush` resolves once everything taken is delivered or counted lost. The driver compares a sink's
 *   `lost` before a delivery and after its flush: for a source that can offer events again (Kafka) a
 *   loss in between fails the delivery (SinkLossError), and the source offers the batch again; the
 *   other sources just count the loss.
 * - Events a sink has no place for (a protocol type without a table, SIP that does not parse) are
 *   `skipped`, counted by reason and logged: never silently dropped.
 */
import type { CaptureEvent } from './event.js';
import type { HealthRecord } from './health.js';
import type { VmInventoryEntry } from './vm.js';

export interface SinkStats {
  /** Events handed to write(). */
  accepted: number;
  /** Events the destination acknowledged: stored, acknowledged by Kafka, sent on the wire, counted. */
  delivered: number;
  /** Events accepted and not yet delivered, skipped or lost: batched, in flight, spooled on disk. */
  pending: number;
  /** Events the sink does not deliver by design, by reason. */
  skipped: Record<string, number>;
  /** Events accepted and then lost, by reason. */
  lost: Record<string, number>;
}

export interface EventSink {
  /** Names the sink in logs and reports: 'store', 'kafka', 'hep', 'summary'. */
  readonly name: string;
  write(events: readonly CaptureEvent[]): Promise<void>;
  /** Live capture health; sinks with no place for it leave this out. */
  writeHealth?(record: HealthRecord): void;
  /** The VMs behind the mirrors, with the addresses learned for them. */
  writeInventory?(entries: readonly VmInventoryEntry[]): Promise<void>;
  flush(): Promise<void>;
  /** Flushes (losses are in the stats, not thrown) and releases what the sink opened. */
  close(): Promise<void>;
  stats(): SinkStats;
}

/** Events were lost while a batch was delivered (the sink's stats say how many, and why). */
export class SinkLossError extends Error {
  constructor(
    readonly sink: string,
    readonly lost: number,
    options?: { cause?: unknown },
  ) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(`${sink}: ${lost} event${lost === 1 ? '' : 's'} lost${cause}`, options);
    this.name = 'SinkLossError';
  }
}

export function emptySinkStats(): SinkStats {
  return { accepted: 0, delivered: 0, pending: 0, skipped: {}, lost: {} };
}

/** Adds `n` to `counts[reason]`. */
export function countReason(counts: Record<string, number>, reason: string, n = 1): void {
  counts[reason] = (counts[reason] ?? 0) + n;
}

/** All the reasons' counts together. */
export function totalOf(counts: Record<string, number>): number {
  let n = 0;
  for (const v of Object.values(counts)) n += v;
  return n;
}

/** A sink that hands each event to a function (tests, tools, a library user's own processing). */
export class CallbackSink implements EventSink {
  readonly name: string;
  private accepted = 0;

  constructor(
    private readonly onEvent: (event: CaptureEvent) => void,
    name = 'callback',
  ) {
    this.name = name;
  }

  async write(events: readonly CaptureEvent[]): Promise<void> {
    for (const event of events) {
      this.accepted++;
      this.onEvent(event);
    }
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}

  stats(): SinkStats {
    return { ...emptySinkStats(), accepted: this.accepted, delivered: this.accepted };
  }
}
