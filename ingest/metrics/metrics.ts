/**
 * Prometheus metrics of one callscope process (docs/METRICS.md): one prom-client Registry that the
 * command owns and closes, never prom-client's global one. Metrics are an output like any other:
 *
 * - events are counted by a sink (MetricsSink) beside the others, one `inc` per type per batch;
 * - everything else (capture counters, sinks' losses, the Kafka spool and consumer lag, the store
 *   writer) is read from the stats objects the stages keep anyway, by `collect` callbacks that run
 *   only when Prometheus scrapes, so the hot path pays nothing;
 * - calls are counted once each, when the calls job first writes them settled (analyze/calls/job.ts,
 *   `onSettled`).
 *
 * A metric of something the process does not run (Kafka in `run`, a live capture in `ingest`) is
 * listed without samples rather than as a misleading 0.
 *
 * Label values that come from the network (VM names, SIP statuses, reasons, file names) are bounded:
 * at most a few dozen to a few hundred distinct values per label (then "other"), at most 128
 * characters each, control characters replaced; what was folded or cut is counted.
 */
import { createHash } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CallsJob } from '../../analyze/calls/job.js';
import { InterfaceSource } from '../../capture/sources.js';
import type { CallRecord } from '../../core/call.js';
import {
  type CaptureEvent,
  HEP_PROTO_LOG,
  HEP_PROTO_RTCP_JSON,
  HEP_PROTO_RTCP_XR_MOS,
  HEP_PROTO_RTP_QOS_JSON,
  HEP_PROTO_SIP,
} from '../../core/event.js';
import { type EventSink, emptySinkStats, type SinkStats } from '../../core/sink.js';
import type { EventSource } from '../../core/source.js';
import type { HepListener } from '../hep/listener.js';
import type { EventProducer } from '../kafka/producer.js';
import type { KafkaSource } from '../kafka/source.js';
import type { StoreSink } from '../store-sink.js';

/** Longest label value exposed, in UTF-16 code units (the ellipsis included). */
export const MAX_LABEL_LENGTH = 128;
/** What a label value beyond its label's bound becomes. */
export const OTHER = 'other';
/** A label value for "nothing": no final status, no VM. */
export const NONE = 'none';

/** Distinct values kept per label before the rest become "other". */
export const DEFAULT_LABEL_LIMITS: Readonly<Record<string, number>> = {
  caller_vm: 200,
  callee_vm: 200,
  final_status: 64,
  reason: 64,
  source: 16,
  topic: 16,
  partition: 256,
};
const FALLBACK_LABEL_LIMIT = 64;
/** callscope_calls_total series at most: beyond, new VM pairs are counted as other → other. */
export const DEFAULT_MAX_CALL_SERIES = 10_000;

/** PDD buckets, seconds: fast local calls to slow international ones, 30 s a call that rang long. */
export const PDD_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 12, 20, 30];

export type EventType = 'sip' | 'media' | 'rtcp' | 'log' | 'other';
const EVENT_TYPES: readonly EventType[] = ['sip', 'media', 'rtcp', 'log', 'other'];

/** The `type` label of an event, from its HEP protocol type. */
export function eventTypeOf(protoType: number): EventType {
  switch (protoType) {
    case HEP_PROTO_SIP:
      return 'sip';
    case HEP_PROTO_RTP_QOS_JSON:
      return 'media';
    case HEP_PROTO_RTCP_JSON:
    case HEP_PROTO_RTCP_XR_MOS:
      return 'rtcp';
    case HEP_PROTO_LOG:
      return 'log';
    default:
      return 'other';
  }
}

// C0 controls and DEL except tab and newline (prom-client escapes newlines): a label value pasted in a
// terminal or a Grafana legend must not carry escape sequences.
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;

/** Raw values whose bounded form is remembered, per label (beyond, each use is bounded and counted again). */
const REMEMBERED_VALUES = 10_000;

/**
 * The bounds on label values: each label admits its first `limit` distinct values, later ones become
 * "other"; a value longer than MAX_LABEL_LENGTH is cut (and ends with "…"). Both are counted, once
 * per distinct value: a value seen again (at every scrape, for reasons) is looked up, not counted.
 */
export class LabelBounds {
  private readonly admitted = new Map<string, Set<string>>();
  /** Raw value (a digest of a long one, so a hostile 64 KB name is not kept) → its bounded form. */
  private readonly remembered = new Map<string, Map<string, string>>();
  /** Values replaced by "other", by label. */
  readonly folded: Record<string, number> = {};
  /** Values cut to MAX_LABEL_LENGTH, by label. */
  readonly truncated: Record<string, number> = {};

  constructor(private readonly limits: Readonly<Record<string, number>> = DEFAULT_LABEL_LIMITS) {}

  value(label: string, raw: string): string {
    let memo = this.remembered.get(label);
    if (memo === undefined) {
      memo = new Map();
      this.remembered.set(label, memo);
    }
    const key =
      raw.length <= 2 * MAX_LABEL_LENGTH ? raw : `\0${createHash('sha256').update(raw).digest('base64')}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    const bounded = this.bound(label, raw);
    if (memo.size < REMEMBERED_VALUES) memo.set(key, bounded);
    return bounded;
  }

  private bound(label: string, raw: string): string {
    let value = raw;
    if (value.length > MAX_LABEL_LENGTH) {
      let cut = MAX_LABEL_LENGTH - 1;
      // Never split a surrogate pair: half of one would be encoded as U+FFFD.
      const last = value.charCodeAt(cut - 1);
      if (last >= 0xd800 && last <= 0xdbff) cut--;
      value = `${value.slice(0, cut)}…`;
      this.truncated[label] = (this.truncated[label] ?? 0) + 1;
    }
    value = value.replace(CONTROL, '\ufffd');
    let seen = this.admitted.get(label);
    if (seen === undefined) {
      seen = new Set();
      this.admitted.set(label, seen);
    }
    if (seen.has(value)) return value;
    if (seen.size >= (this.limits[label] ?? FALLBACK_LABEL_LIMIT)) {
      this.folded[label] = (this.folded[label] ?? 0) + 1;
      return OTHER;
    }
    seen.add(value);
    return value;
  }
}

/** What a capture source has counted so far (a file has packets only). */
interface CaptureCounters {
  packets: number;
  drops: { kernel: number; interface: number; overload: number } | null;
  reopenings: number;
}

type Reader<T> = () => T;

export interface CallscopeMetricsOptions {
  /** The command: the `command` label of callscope_info. */
  command: string;
  /** Distinct values per label (tests set them small); missing labels keep the defaults. */
  labelLimits?: Readonly<Record<string, number>>;
  maxCallSeries?: number;
}

/**
 * The registry of one process and the metrics on it. Commands register what they run (`watch*`),
 * put `sink` among their sinks, give `countSettledCalls` to the calls job, and `close()` at the end.
 */
export class CallscopeMetrics {
  readonly registry = new Registry();
  /** Counts events by type: put it among a command's sinks. */
  readonly sink: MetricsSink;
  readonly labels: LabelBounds;
  private readonly captures: Array<{ source: string; read: Reader<CaptureCounters> }> = [];
  private readonly watchedSinks: EventSink[] = [];
  private readonly stores: StoreSink[] = [];
  private readonly producers: EventProducer[] = [];
  private readonly consumers: KafkaSource[] = [];
  private readonly listeners: HepListener[] = [];
  private readonly jobs: CallsJob[] = [];
  private readonly queues: Array<{ readonly length: number; readonly dropped: number }> = [];
  private readonly callSeries = new Set<string>();
  private readonly maxCallSeries: number;
  private readonly calls: Counter<'outcome' | 'final_status' | 'caller_vm' | 'callee_vm'>;
  private readonly pdd: Histogram<'callee_vm'>;
  private closed = false;

  constructor(options: CallscopeMetricsOptions) {
    this.labels = new LabelBounds({ ...DEFAULT_LABEL_LIMITS, ...options.labelLimits });
    this.maxCallSeries = options.maxCallSeries ?? DEFAULT_MAX_CALL_SERIES;
    const registers = [this.registry];
    // `self` in the collect callbacks: prom-client calls them with the metric as `this`.
    const self = this;

    new Gauge({
      name: 'callscope_info',
      help: 'Always 1: the callscope command this process runs.',
      labelNames: ['command'],
      registers,
    }).set({ command: options.command }, 1);

    // --- capture -----------------------------------------------------------------------------
    new Counter({
      name: 'callscope_packets_total',
      help: 'Packets captured and decoded, by capture source (interface or file).',
      labelNames: ['source'],
      registers,
      collect() {
        this.reset();
        for (const c of self.captures) this.inc({ source: c.source }, c.read().packets);
      },
    });
    new Counter({
      name: 'callscope_capture_drops_total',
      help:
        'Packets a live capture lost: kernel (the capture buffer was full), interface (the NIC dropped ' +
        'them), overload (read but not decoded: the decoder and its backlog were full).',
      labelNames: ['reason', 'source'],
      registers,
      collect() {
        this.reset();
        for (const c of self.captures) {
          const drops = c.read().drops;
          if (drops === null) continue;
          this.inc({ reason: 'kernel', source: c.source }, drops.kernel);
          this.inc({ reason: 'interface', source: c.source }, drops.interface);
          this.inc({ reason: 'overload', source: c.source }, drops.overload);
        }
      },
    });
    new Counter({
      name: 'callscope_capture_reopenings_total',
      help: 'Times a live capture reopened its interface after an error (deleted, recreated, read error).',
      labelNames: ['source'],
      registers,
      collect() {
        this.reset();
        for (const c of self.captures) {
          const counters = c.read();
          if (counters.drops !== null) this.inc({ source: c.source }, counters.reopenings);
        }
      },
    });
    new Gauge({
      name: 'callscope_live_queue_events',
      help: 'Live capture: events the queue holds now, waiting or being delivered to the sinks.',
      registers,
      collect() {
        if (self.queues.length === 0) this.remove();
        else this.set(self.queues.reduce((n, q) => n + q.length, 0));
      },
    });
    new Counter({
      name: 'callscope_live_queue_dropped_total',
      help: 'Live capture: events dropped because the sinks could not keep up (the queue was full).',
      registers,
      collect() {
        this.reset();
        if (self.queues.length === 0) this.remove();
        else this.inc(self.queues.reduce((n, q) => n + q.dropped, 0));
      },
    });

    // --- events and sinks --------------------------------------------------------------------
    const events = new Counter({
      name: 'callscope_events_total',
      help:
        'Events handed to the sinks, by type: sip (messages), media (RTP stream reports), rtcp, log ' +
        '(HEP type 100), other. A Kafka batch offered again after a store failure counts again.',
      labelNames: ['type'],
      registers,
    });
    for (const type of EVENT_TYPES) events.inc({ type }, 0);
    this.sink = new MetricsSink(events);
    const bySinkReason = (pick: (s: SinkStats) => Record<string, number>) =>
      function collect(this: Counter<'sink' | 'reason'>) {
        this.reset();
        for (const sink of self.watchedSinks)
          for (const [reason, n] of Object.entries(pick(sink.stats())))
            this.inc({ sink: sink.name, reason: self.labels.value('reason', reason) }, n);
      };
    new Counter({
      name: 'callscope_events_skipped_total',
      help: 'Events a sink does not deliver by design (no table for them, not encodable), by sink and reason.',
      labelNames: ['sink', 'reason'],
      registers,
      collect: bySinkReason((s) => s.skipped),
    });
    new Counter({
      name: 'callscope_events_lost_total',
      help: 'Events a sink accepted and then lost (store failed, queue full, refused), by sink and reason.',
      labelNames: ['sink', 'reason'],
      registers,
      collect: bySinkReason((s) => s.lost),
    });
    new Counter({
      name: 'callscope_events_delivered_total',
      help: 'Events a sink delivered: stored, acknowledged by Kafka, sent as HEP.',
      labelNames: ['sink'],
      registers,
      collect() {
        this.reset();
        for (const sink of self.watchedSinks) this.inc({ sink: sink.name }, sink.stats().delivered);
      },
    });

    // --- Kafka -------------------------------------------------------------------------------
    new Gauge({
      name: 'callscope_kafka_spool_bytes',
      help: 'Bytes of events waiting in the disk spool for Kafka (the brokers were unreachable or slow).',
      registers,
      collect() {
        if (self.producers.length === 0) this.remove();
        else this.set(self.producers.reduce((n, p) => n + p.stats().spoolBytes, 0));
      },
    });
    new Gauge({
      name: 'callscope_kafka_spool_events',
      help: 'Events waiting in the disk spool for Kafka.',
      registers,
      collect() {
        if (self.producers.length === 0) this.remove();
        else this.set(self.producers.reduce((n, p) => n + p.stats().spoolSize, 0));
      },
    });
    new Gauge({
      name: 'callscope_kafka_queued_events',
      help: 'Events in the Kafka producer memory queue, not yet acknowledged nor spooled.',
      registers,
      collect() {
        if (self.producers.length === 0) this.remove();
        else this.set(self.producers.reduce((n, p) => n + p.stats().queued, 0));
      },
    });
    new Gauge({
      name: 'callscope_kafka_consumer_lag',
      help:
        'Messages behind the high watermark, per partition this ingest consumes, as of its last fetch ' +
        '(the partition high watermark minus the next offset to write).',
      labelNames: ['topic', 'partition'],
      registers,
      collect() {
        this.reset();
        for (const consumer of self.consumers)
          for (const p of consumer.lag())
            this.set(
              {
                topic: self.labels.value('topic', p.topic),
                partition: self.labels.value('partition', String(p.partition)),
              },
              p.lag,
            );
      },
    });
    new Counter({
      name: 'callscope_kafka_consumed_total',
      help: 'Kafka messages read by the ingest consumer (a message read again after a failure counts again).',
      registers,
      collect() {
        this.reset();
        if (self.consumers.length === 0) this.remove();
        else this.inc(self.consumers.reduce((n, c) => n + c.stats().messages, 0));
      },
    });
    new Counter({
      name: 'callscope_kafka_dead_letters_total',
      help: 'Kafka messages that did not decode as HEP3, sent to the dead-letter topic.',
      registers,
      collect() {
        this.reset();
        if (self.consumers.length === 0) this.remove();
        else this.inc(self.consumers.reduce((n, c) => n + c.stats().deadLettered, 0));
      },
    });

    // --- HEP listener ------------------------------------------------------------------------
    new Counter({
      name: 'callscope_hep_frames_total',
      help: 'HEP frames received by the listener (UDP datagrams and TCP frames), whatever became of them.',
      registers,
      collect() {
        this.reset();
        if (self.listeners.length === 0) this.remove();
        else this.inc(self.listeners.reduce((n, l) => n + l.stats.frames, 0));
      },
    });
    new Counter({
      name: 'callscope_hep_frames_dropped_total',
      help:
        'HEP frames not turned into events: malformed, auth (missing or wrong key), overload (UDP ' +
        'frames beyond the queue while the store was busy).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        if (self.listeners.length === 0) return;
        const sum = (pick: (l: HepListener) => number) => self.listeners.reduce((n, l) => n + pick(l), 0);
        this.inc(
          { reason: 'malformed' },
          sum((l) => l.stats.malformed),
        );
        this.inc(
          { reason: 'auth' },
          sum((l) => l.stats.authFailures),
        );
        this.inc(
          { reason: 'overload' },
          sum((l) => l.stats.dropped),
        );
      },
    });

    // --- store -------------------------------------------------------------------------------
    new Counter({
      name: 'callscope_store_rows_total',
      help:
        'Rows the store acknowledged, by table (event tables, capture_health, vm_inventory; calls: call ' +
        'versions and tombstones the calls job wrote).',
      labelNames: ['table'],
      registers,
      collect() {
        this.reset();
        if (self.stores.length > 0) {
          for (const store of self.stores) {
            const s = store.stats();
            for (const [table, n] of Object.entries(s.writer.rowsByTable)) this.inc({ table }, n);
            this.inc({ table: 'capture_health' }, s.healthRows);
            this.inc({ table: 'vm_inventory' }, s.inventoryRows);
          }
        }
        for (const job of self.jobs) {
          const s = job.stats();
          this.inc({ table: 'calls' }, s.versionsWritten + s.tombstones);
        }
      },
    });
    new Counter({
      name: 'callscope_store_insert_errors_total',
      help:
        'Store inserts that failed for good: batch_lost (a batch given up after its retries: its events ' +
        'are lost) and row_quarantined (a row the store refused, kept in the quarantine table).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        if (self.stores.length === 0) return;
        let lost = 0;
        let quarantined = 0;
        for (const store of self.stores) {
          const w = store.stats().writer;
          lost += w.failures;
          quarantined += w.quarantinedRows;
        }
        this.inc({ reason: 'batch_lost' }, lost);
        this.inc({ reason: 'row_quarantined' }, quarantined);
      },
    });
    new Counter({
      name: 'callscope_store_retries_total',
      help: 'Store insert attempts repeated after a transient error (timeout, overload, connection).',
      registers,
      collect() {
        this.reset();
        if (self.stores.length === 0) this.remove();
        else this.inc(self.stores.reduce((n, s) => n + s.stats().writer.retries, 0));
      },
    });
    new Gauge({
      name: 'callscope_ingest_lag_seconds',
      help:
        'Now minus the capture time of the newest event the store acknowledged (a capture time later than ' +
        'its arrival counts as its arrival). Absent until the first event is stored.',
      registers,
      collect() {
        const newest = self.stores.reduce((t, s) => Math.max(t, s.stats().writer.newestStoredMs), 0);
        if (newest > 0) this.set(Math.max(0, Date.now() - newest) / 1000);
        else this.remove();
      },
    });

    // --- calls -------------------------------------------------------------------------------
    this.calls = new Counter({
      name: 'callscope_calls_total',
      help:
        'Calls, each counted once when it is first stored settled (not open), edge legs only (where the ' +
        'call entered, as the KPIs count), by outcome, final status ("none": no final response) and VMs.',
      labelNames: ['outcome', 'final_status', 'caller_vm', 'callee_vm'],
      registers,
    });
    this.pdd = new Histogram({
      name: 'callscope_call_pdd_seconds',
      help: 'Post-dial delay of each settled edge call that has one (start to first 18x, else to the final response).',
      labelNames: ['callee_vm'],
      buckets: PDD_BUCKETS,
      registers,
    });
    new Counter({
      name: 'callscope_calls_job_cycles_total',
      help: 'Cycles of the calls job (it keeps the calls table current): ok, or failed (retried next cycle).',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        if (self.jobs.length === 0) return;
        this.inc(
          { result: 'ok' },
          self.jobs.reduce((n, j) => n + j.stats().cycles, 0),
        );
        this.inc(
          { result: 'failed' },
          self.jobs.reduce((n, j) => n + j.stats().failures, 0),
        );
      },
    });

    // --- the bounds themselves ----------------------------------------------------------------
    new Counter({
      name: 'callscope_metrics_label_values_bounded_total',
      help:
        'Label values changed to bound the metrics: folded (the label had too many distinct values: ' +
        'counted as "other") or truncated (longer than 128 characters).',
      labelNames: ['label', 'action'],
      registers,
      collect() {
        this.reset();
        for (const [label, n] of Object.entries(self.labels.folded)) this.inc({ label, action: 'folded' }, n);
        for (const [label, n] of Object.entries(self.labels.truncated))
          this.inc({ label, action: 'truncated' }, n);
      },
    });
  }

  /** A capture source: packets, and for a live one its drops and reopenings. */
  watchCapture(source: EventSource<unknown>): void {
    const name = this.labels.value('source', source.name);
    if (source instanceof InterfaceSource)
      this.captures.push({
        source: name,
        read: () => {
          const t = source.totals();
          return {
            packets: t?.packets ?? 0,
            drops: {
              kernel: t?.droppedKernel ?? 0,
              interface: t?.droppedInterface ?? 0,
              overload: t?.droppedOverload ?? 0,
            },
            reopenings: t?.reopenings ?? 0,
          };
        },
      });
    else
      this.captures.push({
        source: name,
        read: () => ({ packets: Number(source.progress?.().packets ?? 0), drops: null, reopenings: 0 }),
      });
  }

  /** Output sinks whose skipped, lost and delivered events are exposed (store, kafka, hep). */
  watchSinks(sinks: readonly EventSink[]): void {
    this.watchedSinks.push(...sinks);
  }

  /** A store sink's writer figures: rows, insert errors, retries, ingest lag. */
  watchStore(sink: StoreSink): void {
    this.stores.push(sink);
  }

  watchProducer(producer: EventProducer): void {
    this.producers.push(producer);
  }

  watchConsumer(source: KafkaSource): void {
    this.consumers.push(source);
  }

  watchHepListener(listener: HepListener): void {
    this.listeners.push(listener);
  }

  watchCallsJob(job: CallsJob): void {
    this.jobs.push(job);
  }

  /** A live capture's event queue (core/drive.ts). */
  watchLiveQueue(queue: { readonly length: number; readonly dropped: number }): void {
    this.queues.push(queue);
  }

  /**
   * The calls job's `onSettled`: records written settled for the first time. Only edge legs count
   * (the job passes those only; a later leg here would be counted twice with its edge).
   */
  readonly countSettledCalls = (records: readonly CallRecord[]): void => {
    if (this.closed) return;
    for (const record of records) {
      if (record.edgeCallId !== record.callId) continue;
      const outcome = this.labels.value('outcome', record.outcome);
      const status = this.labels.value(
        'final_status',
        record.finalStatus === null ? NONE : String(record.finalStatus),
      );
      let caller = this.labels.value('caller_vm', record.caller.vm ?? NONE);
      let callee = this.labels.value('callee_vm', record.callee.vm ?? NONE);
      let key = `${outcome}\0${status}\0${caller}\0${callee}`;
      if (!this.callSeries.has(key)) {
        if (this.callSeries.size >= this.maxCallSeries) {
          // Too many VM pairs: outcome and status stay exact, the pair becomes other → other.
          this.labels.folded.series = (this.labels.folded.series ?? 0) + 1;
          caller = OTHER;
          callee = OTHER;
          key = `${outcome}\0${status}\0${caller}\0${callee}`;
        }
        this.callSeries.add(key);
      }
      this.calls.inc({ outcome, final_status: status, caller_vm: caller, callee_vm: callee });
      if (record.pddMs !== null && Number.isFinite(record.pddMs))
        this.pdd.observe({ callee_vm: callee }, Math.max(0, record.pddMs) / 1000);
    }
  };

  /** The text exposition (what /metrics serves). */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  /** Forgets every metric and what it watched; the registry serves nothing after. */
  close(): void {
    this.closed = true;
    this.registry.clear();
    for (const list of [
      this.captures,
      this.watchedSinks,
      this.stores,
      this.producers,
      this.consumers,
      this.listeners,
      this.jobs,
      this.queues,
    ] as unknown[][])
      list.length = 0;
  }
}

/**
 * Counts events by type as a sink (core/sink.ts): one pass over each batch, one counter increment
 * per type present. It never waits, loses or skips anything.
 */
export class MetricsSink implements EventSink {
  readonly name = 'metrics';
  private accepted = 0;

  constructor(private readonly events: Counter<'type'>) {}

  async write(batch: readonly CaptureEvent[]): Promise<void> {
    let sip = 0;
    let media = 0;
    let rtcp = 0;
    let log = 0;
    let other = 0;
    for (const event of batch) {
      switch (eventTypeOf(event.protoType)) {
        case 'sip':
          sip++;
          break;
        case 'media':
          media++;
          break;
        case 'rtcp':
          rtcp++;
          break;
        case 'log':
          log++;
          break;
        default:
          other++;
      }
    }
    this.accepted += batch.length;
    if (sip > 0) this.events.inc({ type: 'sip' }, sip);
    if (media > 0) this.events.inc({ type: 'media' }, media);
    if (rtcp > 0) this.events.inc({ type: 'rtcp' }, rtcp);
    if (log > 0) this.events.inc({ type: 'log' }, log);
    if (other > 0) this.events.inc({ type: 'other' }, other);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}

  stats(): SinkStats {
    return { ...emptySinkStats(), accepted: this.accepted, delivered: this.accepted };
  }
}
