/**
 * The one input interface: a capture file, a live interface, a Kafka consumer group or a HEP listener.
 * A source runs until its input ends (a file) or it is stopped (the others), handing events to its
 * output as they come; `drive` (core/drive.ts) connects that output to the sinks.
 */
import type { CaptureEvent } from './event.js';
import type { HealthRecord } from './health.js';
import type { LogFields } from './log.js';

export interface SourceOutput {
  /**
   * Hands over a batch of events. A paced source waits for the promise before reading on (that is its
   * backpressure); a live source cannot wait and does not.
   */
  events(batch: CaptureEvent[]): Promise<void>;
  /** A live capture's health record (droppedEvents is filled in by the driver). */
  health(record: HealthRecord): void;
}

export interface EventSource<Result> {
  /** File path, interface, `kafka:TOPIC` or `hep:PORT`: names the source in logs and reports. */
  readonly name: string;
  /**
   * 'paced': the source waits for each delivery (a file, a Kafka consumer, a HEP listener, which
   * pauses its TCP peers). 'live': it cannot wait (an interface): the driver queues, bounded, and
   * counts what it has to drop.
   */
  readonly pace: 'paced' | 'live';
  /**
   * The source offers a batch again when its delivery fails (Kafka: uncommitted offsets), so each
   * delivery must be durable before it resolves: the driver flushes the sinks after every batch and
   * lets a failure through to the source instead of counting it lost.
   */
  readonly redelivers: boolean;
  /** Runs to the end of input or until `signal` aborts; resolves with what the source knows. */
  run(output: SourceOutput, signal?: AbortSignal): Promise<Result>;
  /** Its counters so far, for the periodic statistics line (flat log fields). */
  progress?(): LogFields;
}

/** Resolves when `signal` aborts (never without one: a source then runs until the process ends). */
export function aborted(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal === undefined) return;
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
