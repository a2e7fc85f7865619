/**
 * What the transaction trackers (analyze/registrations, analyze/probes) share: capture-time helpers,
 * bounded delay samples, the sink that drives them, and deadlines in capture time — a binary min-heap
 * by `at`. An entry carries the stamp its owner had when it was scheduled; the owner bumps its stamp on
 * every change, so a popped entry whose stamp is stale is simply skipped (no removal from the middle).
 */
import type { CaptureEvent } from '../core/event.js';
import { type EventSink, emptySinkStats, type SinkStats } from '../core/sink.js';

export interface Deadline<T> {
  /** Capture time, ms. */
  at: number;
  owner: T;
  /** The owner's stamp when scheduled. */
  stamp: number;
}

export class DeadlineHeap<T> {
  private readonly heap: Deadline<T>[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(item: Deadline<T>): void {
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= heap[i]!.at) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  /** The earliest deadline, if it is due by `now`; removed from the heap. */
  popDue(now: number): Deadline<T> | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined || top.at > now) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && heap[l]!.at < heap[m]!.at) m = l;
        if (r < heap.length && heap[r]!.at < heap[m]!.at) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i]!, heap[m]!];
        i = m;
      }
    }
    return top;
  }

  /**
   * Drops entries whose owner is gone or changed (`live` false), when they outnumber the live ones:
   * evicted owners must not leave their deadlines behind without bound.
   */
  compact(live: (d: Deadline<T>) => boolean, liveCount: number): void {
    if (this.heap.length <= 2 * liveCount + 1024) return;
    const kept = this.heap.filter(live);
    this.heap.length = 0;
    for (const d of kept) this.push(d);
  }
}

/** Capture time of an event in ms, with microsecond precision (exact in a double for epoch times). */
export function eventTimeMs(timestampNs: bigint): number {
  return Number(timestampNs / 1000n) / 1000;
}

/**
 * Capture time of an event in whole ms (truncated, as the store's millisecond columns keep it), without
 * a BigInt division per event: the double nearest the ns count is off by at most 128 ns, which can only
 * matter within 1 µs of a ms boundary, where the exact division decides.
 */
export function eventWholeMs(timestampNs: bigint): number {
  const ns = Number(timestampNs);
  const within = ns % 1e6;
  if (ns >= 0 && within >= 1000 && within <= 999_000) return Math.round((ns - within) / 1e6);
  return Number(timestampNs / 1_000_000n);
}

/** Rounds a duration in ms to the microsecond. */
export function roundUs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** `ip:port`, IPv6 in brackets. */
export function addressOf(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Mean, median, 95th percentile and maximum of delay samples (ms), nulls when there are none. */
export interface DelayStats {
  /** Samples taken (the percentiles come from a uniform subset of them past a million). */
  count: number;
  mean: number | null;
  p50: number | null;
  p95: number | null;
  max: number | null;
}

/**
 * Delay samples kept for percentiles, bounded: past `max` samples every other one is dropped and only
 * every 2nd (4th, ...) new one is kept, so the kept ones stay a uniform sample. The mean and the maximum
 * are exact over every sample.
 */
export class DelaySampler {
  private samples: number[] = [];
  private stride = 1;
  private seen = 0;
  private sum = 0;
  private maximum = -Infinity;

  constructor(private readonly max = 1_000_000) {}

  add(ms: number): void {
    this.sum += ms;
    if (ms > this.maximum) this.maximum = ms;
    if (this.seen++ % this.stride !== 0) return;
    this.samples.push(ms);
    if (this.samples.length >= this.max) {
      this.samples = this.samples.filter((_, i) => i % 2 === 0);
      this.stride *= 2;
    }
  }

  stats(): DelayStats {
    if (this.seen === 0) return { count: 0, mean: null, p50: null, p95: null, max: null };
    const sorted = [...this.samples].sort((a, b) => a - b);
    const pct = (p: number) =>
      sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
    return {
      count: this.seen,
      mean: roundUs(this.sum / this.seen),
      p50: roundUs(pct(50)),
      p95: roundUs(pct(95)),
      max: roundUs(this.maximum),
    };
  }
}

/** FNV-1a (32 bits) of a string, continued from `h`: keys compared by hash, not kept. */
export function fnv1a(text: string, h = 0x811c9dc5): number {
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Two 32-bit hashes of the same parts (FNV-1a, and the same walk with another basis and prime), as
 * one number below 2^53: a per-call key whose collisions are negligible (≤ 1,024 keys per call).
 */
export class KeyHash {
  private a = 0x811c9dc5;
  private b = 0x9e3779b9;

  reset(): this {
    this.a = 0x811c9dc5;
    this.b = 0x9e3779b9;
    return this;
  }

  text(text: string): this {
    let a = this.a;
    let b = this.b;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
    // A separator, so that ("ab", "c") and ("a", "bc") differ.
    this.a = Math.imul(a ^ 0x1f, 0x01000193);
    this.b = Math.imul(b ^ 0x1f, 0x5bd1e995);
    return this;
  }

  number(n: number): this {
    this.a = Math.imul(this.a ^ (n | 0), 0x01000193);
    this.b = Math.imul(this.b ^ (n | 0), 0x5bd1e995);
    return this;
  }

  value(): number {
    return (this.a >>> 0) * 2_097_152 + ((this.b >>> 0) >>> 11);
  }
}

/** What a tracker takes: one event at a time, synchronously (its state is its own). */
export interface EventTracker {
  add(event: CaptureEvent): void;
}

/** Trackers behind the one sink interface, so that a command drives them beside its other sinks. */
export class TrackerSink implements EventSink {
  private accepted = 0;

  constructor(
    readonly name: string,
    private readonly trackers: readonly EventTracker[],
  ) {}

  async write(events: readonly CaptureEvent[]): Promise<void> {
    for (const event of events) for (const tracker of this.trackers) tracker.add(event);
    this.accepted += events.length;
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}

  stats(): SinkStats {
    return { ...emptySinkStats(), accepted: this.accepted, delivered: this.accepted };
  }
}
