/**
 * EventProducer: the capture side of the Kafka transport.
 *
 * Events are encoded as HEP3 (key = Call-ID), queued in memory (bounded), and sent in batches
 * (by count, bytes or linger time), gzip-compressed, with acks = all. One batch is in flight at a
 * time, so Kafka receives events in the order `send` accepted them, and every event of a call (same
 * key, same partition) stays in order.
 *
 * When the brokers cannot be reached (connection refused/closed, request timeouts, no leader) the
 * producer switches to spooling: the failed batch, the rest of the queue and every later event go to
 * the on-disk spool, in order, and a replay loop sends the spool's oldest records until it is empty;
 * only then do events go straight to Kafka again. New events never overtake spooled ones, so the
 * per-Call-ID order survives the outage. A batch that times out may in fact have been written, so
 * the transport is at-least-once: consumers deduplicate by event id.
 *
 * Backpressure: `send` resolves once the event is accepted (queued or spooled). With the queue full
 * (brokers slow) or the spool full (a long outage), it waits.
 *
 * Not the idempotent producer: its InitProducerId goes to the controller, which librdkafka's mock
 * cluster reports as a broker that does not exist, and the ordering it would add is already given
 * by one batch in flight.
 */
import {
  CompressionTypes,
  type ICustomPartitioner,
  type Kafka,
  type Message,
  Partitioners,
  type PartitionMetadata,
  type Producer,
  type RetryOptions,
} from 'kafkajs';
import type { CaptureEvent } from '../../core/event.js';
import { type Logger, silentLogger } from '../../core/log.js';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { DEFAULT_TOPIC } from './constants.js';
import { describeError, isBrokerUnavailable, KafkaTransportError } from './errors.js';
import {
  type EventMessage,
  eventMessage,
  keyPartition,
  messageBytes,
  messageFromSpoolRecord,
  spoolRecord,
} from './message.js';
import { Spool, type SpoolOptions } from './spool.js';

/** Codecs kafkajs has without extra packages (lz4, zstd and snappy need codec packages). */
export type ProducerCompression = 'none' | 'gzip';

export interface EventProducerOptions {
  kafka: Kafka;
  topic?: string;
  /** Where events wait while Kafka is unreachable; the producer opens and closes it. */
  spool: SpoolOptions;
  logger?: Logger;
  /**
   * Most events per produce request. Default 5,000: under load the queue fills while a request is in
   * flight, and one large request costs far less per event than many small ones (the linger still
   * bounds the wait at low rates).
   */
  batchSize?: number;
  /** Most uncompressed bytes per produce request. Default 4 MiB (and at most 896 KiB per partition). */
  batchBytes?: number;
  /**
   * Most events packed into one Kafka message (HEP3 frames back to back, see message.ts). Events are
   * packed only with events of the same partition (the one their Call-ID hashes to), so per-call
   * order is kept. Default 64; 1 sends one frame per message, keyed by Call-ID.
   */
  maxEventsPerMessage?: number;
  /** How long a partial batch waits for company, ms. Default 20. */
  lingerMs?: number;
  /** In-memory queue bound, events. Default 20,000. */
  maxQueued?: number;
  /** In-memory queue bound, bytes. Default 32 MiB. */
  maxQueuedBytes?: number;
  /** Default gzip (see {@link ProducerCompression}). */
  compression?: ProducerCompression;
  /** Broker-side wait for acks from all in-sync replicas, ms. Default 10,000. */
  ackTimeoutMs?: number;
  /**
   * kafkajs's retries inside one send. Kept short: after they run out the events are safe on disk,
   * and the replay loop takes over the waiting. Default 3 retries, 200 ms to 2 s.
   */
  retry?: RetryOptions;
  /** Pause between replay attempts while the brokers stay unreachable. Default 250 ms up to 5 s. */
  replayBackoff?: BackoffOptions;
}

export interface EventProducerStats {
  /** Events Kafka acknowledged straight from the memory queue. */
  sent: number;
  /** Events written to the spool. */
  spooled: number;
  /** Spooled events Kafka has since acknowledged. */
  replayed: number;
  /** Events given up on: not encodable, refused by Kafka for good, or still unsent at close. */
  failed: number;
  queued: number;
  spoolSize: number;
  /** Bytes the spool's files hold (framing included). */
  spoolBytes: number;
  mode: 'direct' | 'spooling';
}

interface Queued {
  message: EventMessage;
  bytes: number;
  /** Call-ID, for error context. */
  callId: string;
}

interface Waiter extends Queued {
  resolve: () => void;
  reject: (e: Error) => void;
}

const RESOLVED = Promise.resolve();
/** Most frame bytes one partition gets in one request: below a broker's default message.max.bytes (1 MiB). */
const PARTITION_BYTES = 896 * 1024;
/** A packed message is closed at this size (or at maxEventsPerMessage frames). */
const MESSAGE_BYTES = 64 * 1024;

export class EventProducer {
  readonly topic: string;
  private readonly kafka: Kafka;
  private readonly logger: Logger;
  private readonly spoolOptions: SpoolOptions;
  private readonly batchSize: number;
  private readonly batchBytes: number;
  private readonly lingerMs: number;
  private readonly maxQueued: number;
  private readonly maxQueuedBytes: number;
  private readonly compression: CompressionTypes;
  private readonly ackTimeoutMs: number;
  private readonly replayBackoff: BackoffOptions;
  private readonly producer: Producer;
  private readonly maxEventsPerMessage: number;
  /** The topic's partitions as kafkajs last saw them (learnt from its partitioner calls). */
  private partitionMetadata: PartitionMetadata[] | null = null;
  private nullKeyCounter = 0;

  private spool: Spool | null = null;
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private readonly waiters: Waiter[] = [];
  private mode: 'direct' | 'spooling' = 'direct';
  private connected = false;
  /**
   * Whether the last exchange with Kafka worked. Spooling ends only once a replay proved the
   * brokers are back, not merely because the spool happens to be empty.
   */
  private reachable = false;
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';
  private loopDone: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private flushing = 0;
  private spillScheduled = false;
  private readonly listeners = new Set<() => void>();
  private readonly counters = { sent: 0, spooled: 0, replayed: 0, failed: 0 };

  constructor(options: EventProducerOptions) {
    this.kafka = options.kafka;
    this.topic = options.topic ?? DEFAULT_TOPIC;
    this.logger = options.logger ?? silentLogger;
    this.spoolOptions = { logger: this.logger, ...options.spool };
    this.batchSize = options.batchSize ?? 5000;
    this.batchBytes = options.batchBytes ?? 4 * 1024 * 1024;
    this.lingerMs = options.lingerMs ?? 20;
    this.maxQueued = options.maxQueued ?? 20_000;
    this.maxEventsPerMessage = Math.max(1, options.maxEventsPerMessage ?? 64);
    this.maxQueuedBytes = options.maxQueuedBytes ?? 32 * 1024 * 1024;
    this.compression = options.compression === 'none' ? CompressionTypes.None : CompressionTypes.GZIP;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    this.replayBackoff = options.replayBackoff ?? { initialMs: 250, maxMs: 5000 };
    this.producer = this.kafka.producer({
      allowAutoTopicCreation: false,
      idempotent: false,
      createPartitioner: this.spyingPartitioner(),
      retry: options.retry ?? { retries: 3, initialRetryTime: 200, maxRetryTime: 2000 },
    });
    this.producer.on('producer.disconnect', () => {
      this.connected = false;
    });
  }

  /**
   * Opens the spool and connects. Unreachable brokers are not an error here: the producer starts in
   * spooling mode and keeps trying. A spool left non-empty by a previous run is replayed first.
   */
  async connect(): Promise<void> {
    if (this.state !== 'new') throw new KafkaTransportError('EventProducer.connect called twice', {});
    this.spool = Spool.open(this.spoolOptions);
    this.state = 'running';
    if (this.spool.size > 0) {
      this.mode = 'spooling';
      this.logger.info('kafka producer: replaying events spooled by a previous run', {
        topic: this.topic,
        spooled: this.spool.size,
      });
    }
    try {
      await this.producer.connect();
      this.connected = true;
      this.reachable = true;
    } catch (e) {
      if (!isBrokerUnavailable(e)) {
        this.state = 'closed';
        this.spool.close();
        throw new KafkaTransportError(`kafka producer: cannot connect: ${describeError(e)}`, {
          topic: this.topic,
        });
      }
      this.enterSpooling(e);
    }
    this.loopDone = this.loop();
  }

  /**
   * Accepts one event. Resolves when it is queued in memory or written to the spool; waits while
   * both are full. Rejects with the codec's error when the event cannot be encoded (counted failed).
   */
  send(event: CaptureEvent): Promise<void> {
    if (this.state !== 'running') {
      return Promise.reject(
        new KafkaTransportError(`kafka producer: send while ${this.state}`, {
          topic: this.topic,
          callId: event.correlationId,
        }),
      );
    }
    let message: EventMessage;
    try {
      message = eventMessage(event);
    } catch (e) {
      this.counters.failed++;
      return Promise.reject(e);
    }
    const item: Queued = { message, bytes: messageBytes(message), callId: event.correlationId };
    if (this.waiters.length === 0 && this.tryQueue(item)) return RESOLVED;
    return new Promise((resolve, reject) => this.waiters.push({ ...item, resolve, reject }));
  }

  /**
   * Resolves when every event accepted so far has either been acknowledged by Kafka or written to
   * the spool (and the spool fsynced). Does not wait for the spool to drain: see {@link drain}.
   */
  async flush(): Promise<void> {
    this.flushing++;
    try {
      this.wake?.();
      await this.until(() => this.queue.length === 0 && this.waiters.length === 0);
      if (this.spool && this.spool.size > 0) this.spool.sync();
    } finally {
      this.flushing--;
    }
  }

  /**
   * Resolves true once everything accepted is in Kafka (queue and spool empty), false when
   * `timeoutMs` passes first.
   */
  async drain(timeoutMs = 60_000): Promise<boolean> {
    this.flushing++;
    try {
      this.wake?.();
      return await this.until(
        () => this.queue.length === 0 && this.waiters.length === 0 && (this.spool?.size ?? 0) === 0,
        timeoutMs,
      );
    } finally {
      this.flushing--;
    }
  }

  stats(): EventProducerStats {
    return {
      ...this.counters,
      queued: this.queue.length + this.waiters.length,
      spoolSize: this.spool?.size ?? 0,
      spoolBytes: this.spool?.bytes ?? 0,
      mode: this.mode,
    };
  }

  /**
   * Sends or spools what is queued (waiting at most `timeoutMs`), stops, disconnects and closes the
   * spool. Spooled events stay on disk for the next run. Events that could be neither sent nor
   * spooled in time are counted failed and their `send` promises rejected.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return;
    if (this.state === 'new') {
      this.state = 'closed';
      return;
    }
    this.flushing++;
    this.wake?.();
    const done = await this.until(() => this.queue.length === 0 && this.waiters.length === 0, timeoutMs);
    this.state = 'closing';
    this.wake?.();
    await this.loopDone;
    if (!done) {
      // Last chance for what is still in memory: the spool, if it has room.
      this.mode = 'spooling';
      this.spill();
      const lost = this.queue.length + this.waiters.length;
      if (lost > 0) {
        this.counters.failed += lost;
        this.logger.error('kafka producer: events neither sent nor spooled before close', {
          topic: this.topic,
          events: lost,
          spoolBytes: this.spool?.bytes,
        });
        const err = new KafkaTransportError(
          'kafka producer closed before the event could be sent or spooled',
          {
            topic: this.topic,
          },
        );
        for (const w of this.waiters.splice(0)) w.reject(err);
        this.queue = [];
        this.queuedBytes = 0;
      }
    }
    this.flushing--;
    try {
      await this.producer.disconnect();
    } catch (e) {
      this.logger.warn('kafka producer: disconnect failed', { topic: this.topic, error: describeError(e) });
    }
    const left = this.spool?.size ?? 0;
    this.spool?.close();
    this.state = 'closed';
    this.logger.info('kafka producer closed', { topic: this.topic, ...this.counters, spoolLeft: left });
  }

  // -------------------------------------------------------------------------------------------

  private tryQueue(item: Queued): boolean {
    if (
      this.queue.length >= this.maxQueued ||
      (this.queue.length > 0 && this.queuedBytes + item.bytes > this.maxQueuedBytes)
    ) {
      return false;
    }
    this.queue.push(item);
    this.queuedBytes += item.bytes;
    if (this.mode === 'spooling') this.scheduleSpill();
    else if (this.queue.length >= this.batchSize) this.wake?.();
    else if (this.queue.length === 1) this.wake?.();
    return true;
  }

  /** Moves waiting senders into the queue, in order, as far as there is room. */
  private admitWaiters(): void {
    while (this.waiters.length > 0 && this.tryQueue(this.waiters[0])) this.waiters.shift()!.resolve();
    this.notify();
  }

  /** Spilling is deferred a turn so that a burst of sends becomes one write (and one fsync). */
  private scheduleSpill(): void {
    if (this.spillScheduled) return;
    this.spillScheduled = true;
    setImmediate(() => {
      this.spillScheduled = false;
      if (this.mode === 'spooling' && this.spool && this.state !== 'closed') this.spill();
    });
  }

  /**
   * Queue → spool, oldest first, as far as the spool has room; then lets waiting senders in. It does
   * not wake the loop: while spooling, the loop is replaying or backing off, and new events must not
   * turn its backoff into a busy retry.
   */
  private spill(): void {
    const spool = this.spool;
    if (!spool || this.queue.length === 0) return;
    do {
      let n: number;
      try {
        n = spool.append(this.queue.map((q) => spoolRecord(q.message)));
      } catch (e) {
        if (e instanceof RangeError) {
          // A record that can never fit (spool bound below one event): it cannot wait its turn.
          const [dropped] = this.queue.splice(0, 1);
          this.queuedBytes -= dropped.bytes;
          this.counters.failed++;
          this.logger.error('kafka producer: event too large for the spool, dropped', {
            callId: dropped.callId,
            bytes: dropped.bytes,
            error: e.message,
          });
          continue;
        }
        // Disk trouble (ENOSPC, EIO): keep the events in memory; senders wait once it is full.
        this.logger.error('kafka producer: cannot write to the spool', {
          spoolDir: spool.dir,
          queued: this.queue.length,
          error: describeError(e),
        });
        break;
      }
      if (n === 0) break;
      for (const q of this.queue.splice(0, n)) this.queuedBytes -= q.bytes;
      this.counters.spooled += n;
      // Room in the queue lets waiters in, and they go to the spool too, in order.
      while (this.waiters.length > 0 && this.tryQueueRaw(this.waiters[0])) this.waiters.shift()!.resolve();
    } while (this.queue.length > 0);
    this.notify();
  }

  /** tryQueue without scheduling (used inside spill, which loops itself). */
  private tryQueueRaw(item: Queued): boolean {
    if (
      this.queue.length >= this.maxQueued ||
      (this.queue.length > 0 && this.queuedBytes + item.bytes > this.maxQueuedBytes)
    ) {
      return false;
    }
    this.queue.push(item);
    this.queuedBytes += item.bytes;
    return true;
  }

  private enterSpooling(e: unknown): void {
    this.reachable = false;
    if (this.mode !== 'spooling') {
      this.logger.warn('kafka producer: brokers unreachable, spooling events to disk', {
        topic: this.topic,
        spoolDir: this.spool?.dir,
        queued: this.queue.length,
        error: describeError(e),
      });
    }
    this.mode = 'spooling';
    this.spill();
  }

  /** The one loop that talks to Kafka: sends the queue (direct) or replays the spool (spooling). */
  private async loop(): Promise<void> {
    let failures = 0;
    while (this.state === 'running' || (this.mode === 'direct' && this.queue.length > 0 && this.connected)) {
      if (this.mode === 'spooling') {
        this.spill();
        const spool = this.spool!;
        if (spool.size === 0 && this.queue.length === 0 && !this.reachable) {
          // Nothing to replay, and no proof yet that Kafka is back: wait for events (or close).
          if (this.state !== 'running') break;
          await this.sleep(backoffDelay(failures, this.replayBackoff));
          continue;
        }
        if (spool.size === 0 && this.queue.length === 0) {
          this.mode = 'direct';
          failures = 0;
          this.logger.info('kafka producer: spool replayed, sending directly again', {
            topic: this.topic,
            replayed: this.counters.replayed,
          });
          this.notify();
          continue;
        }
        if (spool.size === 0) {
          // Spool empty but the queue is not (it was full): those events are the newest, send them.
          this.mode = 'direct';
          continue;
        }
        if (await this.replayOnce()) {
          failures = 0;
        } else {
          if (this.state !== 'running') break;
          await this.sleep(backoffDelay(failures++, this.replayBackoff));
        }
        continue;
      }

      if (this.queue.length === 0) {
        this.notify();
        if (this.state !== 'running') break;
        await this.sleep(Number.POSITIVE_INFINITY);
        continue;
      }
      if (this.queue.length < this.batchSize && this.flushing === 0 && this.state === 'running') {
        await this.sleep(this.lingerMs);
      }
      await this.sendQueued();
    }
    this.notify();
  }

  /** Sends the head of the queue as one batch; on an outage, switches to spooling. */
  private async sendQueued(): Promise<void> {
    const batch = this.takeBatch(this.queue);
    if (batch.length === 0) return;
    try {
      await this.produce(batch.map((q) => q.message));
      this.queue.splice(0, batch.length);
      for (const q of batch) this.queuedBytes -= q.bytes;
      this.counters.sent += batch.length;
    } catch (e) {
      if (isBrokerUnavailable(e) || !this.connected) {
        this.enterSpooling(e);
        return;
      }
      this.queue.splice(0, batch.length);
      for (const q of batch) this.queuedBytes -= q.bytes;
      this.counters.failed += batch.length;
      this.logger.error('kafka producer: batch refused by Kafka, events dropped', {
        topic: this.topic,
        events: batch.length,
        firstCallId: batch[0].callId,
        error: describeError(e),
      });
    }
    this.admitWaiters();
  }

  /** One replay step: the spool's oldest records to Kafka, acked only once Kafka acknowledged them. */
  private async replayOnce(): Promise<boolean> {
    const spool = this.spool!;
    const records = spool.peek(this.batchSize, this.batchBytes);
    if (records.length === 0) return true;
    let messages: EventMessage[];
    try {
      messages = records.map(messageFromSpoolRecord);
    } catch (e) {
      // Only a bug or a foreign file can get here (records are CRC-checked): drop, do not loop.
      spool.ack(records.length);
      this.counters.failed += records.length;
      this.logger.error('kafka producer: unreadable spool records dropped', {
        spoolDir: spool.dir,
        records: records.length,
        error: describeError(e),
      });
      return true;
    }
    try {
      await this.produce(messages);
    } catch (e) {
      if (isBrokerUnavailable(e) || !this.connected) {
        this.reachable = false;
        this.logger.debug('kafka producer: replay attempt failed, brokers still unreachable', {
          topic: this.topic,
          spooled: spool.size,
          error: describeError(e),
        });
        return false;
      }
      spool.ack(records.length);
      this.counters.failed += records.length;
      this.logger.error('kafka producer: spooled batch refused by Kafka, events dropped', {
        topic: this.topic,
        events: records.length,
        error: describeError(e),
      });
      this.admitWaiters();
      return true;
    }
    spool.ack(records.length);
    this.counters.replayed += records.length;
    this.spill();
    this.admitWaiters();
    return true;
  }

  private async produce(messages: EventMessage[]): Promise<void> {
    if (!this.connected) {
      await this.producer.connect();
      this.connected = true;
    }
    for (const request of this.pack(messages)) {
      await this.producer.send({
        topic: this.topic,
        messages: request,
        acks: -1,
        timeout: this.ackTimeoutMs,
        compression: this.compression,
      });
    }
    this.reachable = true;
  }

  /**
   * kafkajs's default partitioner (murmur2 of the key, as Java's), which also notes the topic's
   * partitions each time kafkajs asks it: packing needs them, and they stay current as kafkajs
   * refreshes its metadata.
   */
  private spyingPartitioner(): ICustomPartitioner {
    return () => {
      const partition = Partitioners.DefaultPartitioner();
      return (args) => {
        if (args.topic === this.topic && args.partitionMetadata.length > 0)
          this.partitionMetadata = args.partitionMetadata;
        return partition(args);
      };
    };
  }

  /**
   * The produce requests for `messages`, in order: each event goes to the partition its Call-ID
   * hashes to (as kafkajs would place it alone), consecutive events of one partition packed into one
   * message of at most maxEventsPerMessage frames, and no request carrying more than
   * PARTITION_BYTES for one partition (a broker's message.max.bytes applies to each partition's
   * record batch). Before kafkajs has told the partitions (the first request), or with packing
   * off, one frame per message keyed by Call-ID.
   */
  private pack(messages: readonly EventMessage[]): Message[][] {
    const metadata = this.partitionMetadata;
    if (metadata === null || this.maxEventsPerMessage === 1)
      return [messages.map((m) => ({ key: m.key, value: m.value }))];
    const requests: Message[][] = [];
    let open = new Map<number, { frames: Buffer[]; bytes: number }>();
    let request: Message[] = [];
    let requestBytes = new Map<number, number>();
    const close = (partition: number): void => {
      const group = open.get(partition);
      if (!group || group.frames.length === 0) return;
      const value = group.frames.length === 1 ? group.frames[0] : Buffer.concat(group.frames, group.bytes);
      request.push({ key: null, value, partition });
      open.delete(partition);
    };
    const flushRequest = (): void => {
      for (const partition of [...open.keys()]) close(partition);
      if (request.length > 0) requests.push(request);
      request = [];
      requestBytes = new Map();
      open = new Map();
    };
    for (const m of messages) {
      const partition = this.partitionOf(m, metadata);
      const bytes = m.value.length;
      const inRequest = requestBytes.get(partition) ?? 0;
      if (inRequest > 0 && inRequest + bytes > PARTITION_BYTES) flushRequest();
      requestBytes.set(partition, (requestBytes.get(partition) ?? 0) + bytes);
      let group = open.get(partition);
      if (!group) {
        group = { frames: [], bytes: 0 };
        open.set(partition, group);
      }
      group.frames.push(m.value);
      group.bytes += bytes;
      if (group.frames.length >= this.maxEventsPerMessage || group.bytes >= MESSAGE_BYTES) close(partition);
    }
    flushRequest();
    return requests;
  }

  private partitionOf(m: EventMessage, metadata: PartitionMetadata[]): number {
    if (m.key !== null) return keyPartition(m.key, metadata.length);
    // No Call-ID: no order to keep, any partition (round robin, as kafkajs does for a null key).
    return metadata[this.nullKeyCounter++ % metadata.length].partitionId;
  }

  /** The longest head of `queue` within the batch bounds (at least one event). */
  private takeBatch(queue: Queued[]): Queued[] {
    let bytes = 0;
    let n = 0;
    while (n < queue.length && n < this.batchSize) {
      if (n > 0 && bytes + queue[n].bytes > this.batchBytes) break;
      bytes += queue[n].bytes;
      n++;
    }
    return queue.slice(0, n);
  }

  /** Sleeps until `ms` pass or something wakes the loop (new events, flush, close). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : null;
      const self = this;
      function done(): void {
        if (timer) clearTimeout(timer);
        if (self.wake === done) self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  /** Resolves true when `cond` holds (checked on every state change), false after `timeoutMs`. */
  private until(cond: () => boolean, timeoutMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (!cond()) return;
        finish(true);
      };
      const finish = (ok: boolean): void => {
        if (timer) clearTimeout(timer);
        clearInterval(poll);
        this.listeners.delete(check);
        resolve(ok);
      };
      const timer = Number.isFinite(timeoutMs) ? setTimeout(() => finish(cond()), timeoutMs) : null;
      // A slow poll as well: the spool can drain through paths that do not notify.
      const poll = setInterval(check, 100);
      this.listeners.add(check);
    });
  }
}
