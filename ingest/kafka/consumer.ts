/**
 * EventConsumer: the ingest side of the Kafka transport.
 *
 * A kafkajs consumer group reads the events topic batch by batch. Each batch (in chunks of at most
 * `maxEventsPerWrite` messages) is decoded from HEP3 and handed to the sink — the store writer — and
 * its offsets are committed only after the sink resolved. So a commit always means "written", and
 * whatever was not written is read again after a crash, a rebalance or a restart: delivery to the
 * sink is at-least-once, and the sink must be idempotent (the store deduplicates by event id; the
 * `ChunkContext` offsets make a natural insert-deduplication token).
 *
 * When the sink rejects (store down), the partition is paused and the same chunk retried with
 * bounded, jittered exponential backoff, heartbeating all along so the group does not evict us;
 * nothing is committed until a retry succeeds. A message that cannot be decoded goes to the
 * dead-letter topic with the reason and its origin in headers, and is committed past.
 */
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import type { CaptureEvent } from '../../core/event.js';
import { decodeHep3 } from '../../core/hep3.js';
import { type Logger, silentLogger } from '../../core/log.js';
import { type BackoffOptions, backoffDelay, sleepWhile } from './backoff.js';
import { DEFAULT_GROUP_ID, DEFAULT_TOPIC, deadLetterTopic } from './constants.js';
import { type DeadLetter, DeadLetterPublisher } from './dead-letter.js';
import { describeError, isRebalanceError, KafkaTransportError } from './errors.js';

/** Where the events handed to the sink came from: enough for a deduplication token. */
export interface ChunkContext {
  topic: string;
  partition: number;
  /** Offsets (decimal strings) of the first and last message of this chunk. */
  firstOffset: string;
  lastOffset: string;
}

/**
 * Takes one chunk of decoded events (the driver's delivery to the sinks). Must resolve only once the
 * events are durable, and tolerate being called again with the same chunk.
 */
export type ChunkHandler = (events: CaptureEvent[], context: ChunkContext) => Promise<void>;

export interface EventConsumerOptions {
  kafka: Kafka;
  onChunk: ChunkHandler;
  topic?: string;
  groupId?: string;
  logger?: Logger;
  /** Where a new group starts: the oldest retained event (default) or only new ones. */
  fromBeginning?: boolean;
  /** Group session timeout, ms. Default 30,000 (tests against the mock: 6,000). */
  sessionTimeout?: number;
  /** Default 3,000 ms (tests: 500). */
  heartbeatInterval?: number;
  /** Longest a fetch waits for data, ms; also bounds how fast `stop` returns. Default 1,000. */
  maxWaitTimeInMs?: number;
  maxBytesPerPartition?: number;
  /** Largest chunk handed to the sink at once (and committed after it). Default 5,000. */
  maxEventsPerWrite?: number;
  /** Backoff between sink retries. Default 200 ms doubling up to 10 s, 30 % jitter. */
  sinkRetry?: BackoffOptions;
  /** Dead-letter topic; default `<topic>.dlq`. */
  deadLetterTopic?: string;
  partitionsConsumedConcurrently?: number;
  /**
   * Chunks of one partition that may be with the sink at once. 1 (default): each chunk is stored and
   * committed before the next is handed over, and kafkajs fetches again only then. 2: a chunk is
   * handed over (decoded, prepared, written to the sink's buffer) and the fetch moves on while the
   * chunk before it is being stored; commits stay in order and follow the sink, so a crash repeats
   * at most the two uncommitted chunks of each partition.
   */
  chunksInFlight?: 1 | 2;
}

export interface EventConsumerStats {
  /** Messages read (each counted once per delivery). */
  messages: number;
  /** Events the sink accepted. */
  written: number;
  /** Sink calls that rejected. */
  sinkFailures: number;
  deadLettered: number;
  /** HEP keep-alive frames: acknowledged, not events. */
  keepAlives: number;
  commits: number;
  /** kafkajs consumer crashes (each followed by a restart). */
  crashes: number;
  /** Group joins: 1 plus one per rebalance this member took part in. */
  joins: number;
}

/** How far behind a partition this consumer is: messages between its next offset and the high watermark. */
export interface PartitionLag {
  topic: string;
  partition: number;
  lag: number;
}

/** A heartbeat failed while the sink was busy: the group moved on, so the chunk is abandoned. */
class HeartbeatFailure extends Error {
  constructor(readonly original: unknown) {
    super(`heartbeat failed: ${describeError(original)}`);
  }
}

type Decoded = { events: CaptureEvent[]; letters: DeadLetter[]; keepAlives: number };

/**
 * Decodes one message into `out`; never throws. A message holds one HEP3 frame or several back to
 * back (the producer packs a partition's events, message.ts). A message with a frame that does not
 * decode goes to the dead-letter topic whole, none of its events delivered (the frames after a bad
 * one cannot be found), so that the dead letter holds all of them.
 */
function decodeMessage(message: KafkaMessage, out: Decoded): void {
  const value = message.value;
  if (!value || value.length === 0) {
    out.letters.push({ message, reason: 'empty message value (no HEP3 frame)' });
    return;
  }
  const first = out.events.length;
  let keepAlives = 0;
  let frame = 0;
  for (let off = 0; off < value.length; frame++) {
    const decoded = decodeHep3(value, off, value.length);
    if (!decoded.ok) {
      out.events.length = first;
      const where = frame === 0 ? '' : `frame ${frame + 1} at byte ${off}: `;
      out.letters.push({ message, reason: `HEP3 decode: ${where}${decoded.error}` });
      return;
    }
    if (decoded.keepAlive) keepAlives++;
    else out.events.push(decoded.event);
    off += value.readUInt16BE(off + 4);
  }
  out.keepAlives += keepAlives;
}

/**
 * The next chunk of `messages` from `start`: whole messages (a packed message is never split: its
 * offset is committed whole), as many as fit in maxEvents events (at least one message).
 */
function decodeChunk(messages: KafkaMessage[], start: number, maxEvents: number): Decoded & { end: number } {
  const out: Decoded = { events: [], letters: [], keepAlives: 0 };
  let end = start;
  while (end < messages.length) {
    const one: Decoded = { events: [], letters: [], keepAlives: 0 };
    decodeMessage(messages[end], one);
    if (end > start && out.events.length + one.events.length > maxEvents) break;
    end++;
    for (const e of one.events) out.events.push(e);
    for (const l of one.letters) out.letters.push(l);
    out.keepAlives += one.keepAlives;
    if (out.events.length >= maxEvents) break;
  }
  return { ...out, end };
}

const DURABLE = Promise.resolve(true);

export class EventConsumer {
  readonly topic: string;
  readonly groupId: string;
  private readonly kafka: Kafka;
  private readonly onChunk: ChunkHandler;
  private readonly logger: Logger;
  private readonly fromBeginning: boolean;
  private readonly maxEventsPerWrite: number;
  private readonly sinkRetry: BackoffOptions;
  private readonly heartbeatInterval: number;
  private readonly concurrency: number;
  private readonly consumer: Consumer;
  private readonly deadLetters: DeadLetterPublisher;
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private restartTimer: NodeJS.Timeout | null = null;
  /**
   * Partition → next offset, for chunks the sink accepted but whose commit failed (the group was
   * rebalancing: brokers refuse commits until the members rejoin). Settled right after the rejoin.
   */
  private readonly uncommitted = new Map<number, string>();
  private readonly chunksInFlight: 1 | 2;
  /** Partition → the delivery of its latest chunk: true once it and every chunk before it is stored. */
  private readonly inflight = new Map<number, { generation: number; delivery: Promise<boolean> }>();
  /** Every delivery not settled yet, of any generation (stop waits for them). */
  private readonly deliveries = new Set<Promise<boolean>>();
  /** Partition → an error of a delivery that ran after its batch returned, for kafkajs to see. */
  private readonly deferredErrors = new Map<number, unknown>();
  /** Offsets to commit in the next shared request, and that request (see commitShared). */
  private toCommit = new Map<number, string>();
  private pendingCommit: Promise<void> | null = null;
  /** Set when the group's generation ended under us: nothing more is written until we rejoin. */
  private generationOver = false;
  /**
   * Partition → its high watermark as of the last fetch and the next offset to write: the consumer
   * lag, known from the batches at no cost (no admin requests).
   */
  private readonly positions = new Map<number, { highWatermark: bigint; next: bigint }>();
  private readonly counters: EventConsumerStats = {
    messages: 0,
    written: 0,
    sinkFailures: 0,
    deadLettered: 0,
    keepAlives: 0,
    commits: 0,
    crashes: 0,
    joins: 0,
  };

  constructor(options: EventConsumerOptions) {
    this.kafka = options.kafka;
    this.onChunk = options.onChunk;
    this.topic = options.topic ?? DEFAULT_TOPIC;
    this.groupId = options.groupId ?? DEFAULT_GROUP_ID;
    this.logger = options.logger ?? silentLogger;
    this.fromBeginning = options.fromBeginning ?? true;
    this.maxEventsPerWrite = Math.max(1, options.maxEventsPerWrite ?? 5000);
    this.sinkRetry = options.sinkRetry ?? { initialMs: 200, maxMs: 10_000, jitter: 0.3 };
    this.heartbeatInterval = options.heartbeatInterval ?? 3000;
    this.concurrency = options.partitionsConsumedConcurrently ?? 1;
    this.chunksInFlight = options.chunksInFlight ?? 1;
    this.consumer = this.kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: options.sessionTimeout ?? 30_000,
      heartbeatInterval: this.heartbeatInterval,
      maxWaitTimeInMs: options.maxWaitTimeInMs ?? 1000,
      maxBytesPerPartition: options.maxBytesPerPartition,
      allowAutoTopicCreation: false,
    });
    this.deadLetters = new DeadLetterPublisher(
      this.kafka,
      options.deadLetterTopic ?? deadLetterTopic(this.topic),
    );
    this.consumer.on(this.consumer.events.CRASH, (e) => this.onCrash(e.payload.error, e.payload.restart));
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      this.counters.joins++;
      const partitions = e.payload.memberAssignment[this.topic] ?? [];
      this.logger.info('kafka consumer: joined group', {
        topic: this.topic,
        groupId: this.groupId,
        memberId: e.payload.memberId,
        partitions: partitions.join(','),
      });
      const assigned = new Set(partitions);
      // A partition that moved to another member is its lag now, not ours.
      for (const partition of this.positions.keys())
        if (!assigned.has(partition)) this.positions.delete(partition);
      this.settleAfterRejoin(assigned);
    });
  }

  /** Connects, joins the group and starts consuming; resolves once the first join completed. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new KafkaTransportError('EventConsumer.start called twice', {});
    this.state = 'running';
    try {
      await this.run();
    } catch (e) {
      this.state = 'stopped';
      throw new KafkaTransportError(`kafka consumer: cannot start: ${describeError(e)}`, {
        topic: this.topic,
        groupId: this.groupId,
      });
    }
  }

  /**
   * Stops consuming: the chunk being written is finished and committed (a sink retry in progress is
   * abandoned uncommitted), the group is left, connections close.
   */
  async stop(): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'stopping';
    if (this.restartTimer) clearTimeout(this.restartTimer);
    // Chunks being stored finish and commit (a retry in progress gives up: it sees 'stopping');
    // no new chunk is handed over meanwhile (onBatch sees 'stopping').
    while (this.deliveries.size > 0) await Promise.allSettled([...this.deliveries]);
    if (this.uncommitted.size > 0) {
      // Written during a rebalance and not settled yet: one more try before leaving.
      const offsets = [...this.uncommitted].map(([partition, offset]) => ({
        topic: this.topic,
        partition,
        offset,
      }));
      try {
        await this.consumer.commitOffsets(offsets);
        this.uncommitted.clear();
      } catch (e) {
        this.logger.warn('kafka consumer: final commit failed; those events will be read again', {
          topic: this.topic,
          partitions: offsets.map((o) => `${o.partition}@${o.offset}`).join(','),
          error: describeError(e),
        });
      }
    }
    try {
      await this.consumer.disconnect();
    } catch (e) {
      this.logger.warn('kafka consumer: disconnect failed', { topic: this.topic, error: describeError(e) });
    }
    try {
      await this.deadLetters.disconnect();
    } catch {
      // nothing to flush: dead letters are sent synchronously before their commit
    }
    this.state = 'stopped';
    this.logger.info('kafka consumer stopped', {
      topic: this.topic,
      groupId: this.groupId,
      ...this.counters,
    });
  }

  stats(): EventConsumerStats {
    return { ...this.counters };
  }

  /** Per partition consumed: messages behind the high watermark, as of its last fetch. */
  lag(): PartitionLag[] {
    const out: PartitionLag[] = [];
    for (const [partition, p] of this.positions) {
      const behind = p.highWatermark - p.next;
      out.push({ topic: this.topic, partition, lag: behind > 0n ? Number(behind) : 0 });
    }
    return out;
  }

  /** Notes a partition's position: its high watermark (as the fetch saw it) and the next offset to write. */
  private position(partition: number, highWatermark: string, next: bigint): void {
    let high: bigint;
    try {
      high = BigInt(highWatermark);
    } catch {
      return; // not a number: no lag to tell
    }
    if (high < 0n) return;
    this.positions.set(partition, { highWatermark: high, next });
  }

  // -------------------------------------------------------------------------------------------

  private async run(): Promise<void> {
    await this.deadLetters.connect();
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.topic], fromBeginning: this.fromBeginning });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.concurrency,
      eachBatch: (payload) => this.onBatch(payload),
    });
  }

  /**
   * kafkajs restarts by itself after retriable crashes; after the others (an error it considers
   * final) the consumer would stay down, so we start it again, slowly.
   */
  private onCrash(error: Error, restart: boolean): void {
    this.counters.crashes++;
    this.logger.error('kafka consumer crashed', {
      topic: this.topic,
      groupId: this.groupId,
      restartedByKafkajs: restart,
      error: describeError(error),
    });
    if (restart || this.state !== 'running') return;
    const delay = backoffDelay(Math.min(this.counters.crashes, 6), { initialMs: 1000, maxMs: 30_000 });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.state !== 'running') return;
      this.run().catch((e) => this.onCrash(e as Error, false));
    }, delay);
  }

  /**
   * Runs synchronously inside kafkajs's join, before its first fetch. For partitions we keep, a
   * chunk written while the group was rebalancing (its commit refused) is not read again: we seek
   * past it and commit it under the new generation. Partitions that moved to another member are
   * forgotten; the new owner starts from the last commit, so it may write that one chunk again
   * (the store deduplicates).
   */
  private settleAfterRejoin(assigned: Set<number>): void {
    this.generationOver = false;
    // Errors of the generation that ended were for kafkajs to rejoin: it has.
    this.deferredErrors.clear();
    const carry: { topic: string; partition: number; offset: string }[] = [];
    for (const [partition, offset] of this.uncommitted) {
      if (assigned.has(partition)) carry.push({ topic: this.topic, partition, offset });
      else this.uncommitted.delete(partition);
    }
    if (carry.length === 0) return;
    for (const c of carry) this.consumer.seek(c);
    this.consumer
      .commitOffsets(carry)
      .then(() => {
        for (const c of carry)
          if (this.uncommitted.get(c.partition) === c.offset) this.uncommitted.delete(c.partition);
        this.counters.commits++;
        this.logger.info('kafka consumer: committed after rejoining what was written during the rebalance', {
          topic: this.topic,
          partitions: carry.map((c) => `${c.partition}@${c.offset}`).join(','),
        });
      })
      .catch((err) => {
        // Still uncommitted: the seek keeps us from re-reading, the next chunk's commit covers it.
        this.logger.warn('kafka consumer: commit after rejoin failed', {
          topic: this.topic,
          error: describeError(err),
        });
      });
  }

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const { topic, partition, messages } = batch;
    this.throwDeferred(partition);
    if (messages.length > 0) this.position(partition, batch.highWatermark, BigInt(messages[0].offset));
    for (let i = 0; i < messages.length; ) {
      // Stopping or seeking: leave the rest unresolved, it is read again. After a lost generation,
      // writing more would only make chunks nobody can commit until the rejoin.
      if (!payload.isRunning() || payload.isStale() || this.generationOver || this.state !== 'running')
        return;
      const { events, letters, keepAlives, end } = decodeChunk(messages, i, this.maxEventsPerWrite);
      const context: ChunkContext = {
        topic,
        partition,
        firstOffset: messages[i].offset,
        lastOffset: messages[end - 1].offset,
      };
      this.counters.messages += end - i;
      i = end;
      this.counters.keepAlives += keepAlives;

      if (letters.length > 0) {
        const ok = await this.retrying(payload, context, 'dead-letter topic', () =>
          this.deadLetters.publish(topic, partition, letters),
        );
        if (!ok) return;
        this.counters.deadLettered += letters.length;
        for (const l of letters) {
          this.logger.warn('kafka consumer: undecodable message sent to the dead-letter topic', {
            topic,
            partition,
            offset: l.message.offset,
            deadLetterTopic: this.deadLetters.topic,
            reason: l.reason,
          });
        }
      }
      // Chunks of an earlier generation do not hold this one back: the group re-read from the commit.
      const last = this.inflight.get(partition);
      const generation = this.counters.joins;
      const before = last !== undefined && last.generation === generation ? last.delivery : DURABLE;
      const delivery = this.deliver(payload, context, events, before);
      const entry = { generation, delivery };
      this.inflight.set(partition, entry);
      this.deliveries.add(delivery);
      void delivery.finally(() => {
        this.deliveries.delete(delivery);
        if (this.inflight.get(partition) === entry) this.inflight.delete(partition);
      });
      if (this.chunksInFlight === 1) {
        if (!(await delivery)) return;
        this.throwDeferred(partition);
        payload.resolveOffset(context.lastOffset);
      } else {
        // The fetch position moves on now; the commit follows the sink. The chunk before this one
        // must be stored first: at most two chunks of a partition are with the sink.
        payload.resolveOffset(context.lastOffset);
        if (!(await before)) return;
        this.throwDeferred(partition);
      }
      await this.beat(payload);
    }
  }

  /**
   * One chunk to the sink (retried while it fails), then, once every chunk before it of its
   * partition is stored too, its commit. Resolves true when this chunk and all before it are stored;
   * false when it was abandoned (stopping, partition taken away), and then nothing after it commits.
   * Never rejects: an error kafkajs must see (a rebalance) waits in deferredErrors.
   */
  private async deliver(
    payload: EachBatchPayload,
    context: ChunkContext,
    events: CaptureEvent[],
    before: Promise<boolean>,
  ): Promise<boolean> {
    const { partition } = context;
    // A delivery that outlives its group generation (a rebalance meanwhile) stores its chunk but
    // neither commits it nor reports errors: the new generation reads from the committed offsets, and
    // an old error would only make kafkajs rejoin again.
    const generation = this.counters.joins;
    const current = () => generation === this.counters.joins;
    try {
      if (events.length > 0) {
        const ok = await this.retrying(payload, context, 'sink', () => this.onChunk(events, context));
        if (!ok) {
          await before;
          return false;
        }
        this.counters.written += events.length;
      }
      if (!(await before)) return false;
    } catch (e) {
      if (current()) this.deferredErrors.set(partition, e);
      await before;
      return false;
    }
    if (!current()) return true;
    const next = (BigInt(context.lastOffset) + 1n).toString();
    this.uncommitted.set(partition, next);
    try {
      await this.commitShared(payload, partition, next);
      if (this.uncommitted.get(partition) === next) this.uncommitted.delete(partition);
    } catch (e) {
      // Mid-rebalance the broker refuses commits; kafkajs rejoins on this error, and
      // settleAfterRejoin commits the chunk if we keep its partition. The chunk is stored either way.
      this.logger.warn('kafka consumer: commit failed after the sink wrote; settling after rejoin', {
        ...context,
        error: describeError(e),
      });
      if (current()) {
        if (isRebalanceError(e)) this.generationOver = true;
        this.deferredErrors.set(partition, e);
      }
    }
    this.position(partition, payload.batch.highWatermark, BigInt(next));
    return true;
  }

  private throwDeferred(partition: number): void {
    const error = this.deferredErrors.get(partition);
    if (error === undefined) return;
    this.deferredErrors.delete(partition);
    throw error;
  }

  /**
   * Commits `offset` for `partition` (the next one to read: everything before it is stored). Commits
   * asked for in the same turn of the event loop (the partitions of one fetch finish together: their
   * chunks share the sink's flush) go in one request, made on the next turn.
   */
  private commitShared(payload: EachBatchPayload, partition: number, offset: string): Promise<void> {
    this.toCommit.set(partition, offset);
    if (this.pendingCommit === null) {
      const commit = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
        if (this.pendingCommit === commit) this.pendingCommit = null;
        const partitions = [...this.toCommit].map(([p, o]) => ({ partition: p, offset: o }));
        this.toCommit = new Map();
        // The batch's own path (not consumer.commitOffsets, which retries quietly): a refused commit
        // must reach kafkajs as its error, so that it rejoins.
        await payload.commitOffsetsIfNecessary({ topics: [{ topic: this.topic, partitions }] });
        this.counters.commits++;
      });
      this.pendingCommit = commit;
    }
    return this.pendingCommit;
  }

  /** A heartbeat; a rebalance it reports ends our generation (kafkajs rejoins on the rethrown error). */
  private async beat(payload: EachBatchPayload): Promise<void> {
    try {
      await payload.heartbeat();
    } catch (e) {
      if (isRebalanceError(e)) this.generationOver = true;
      throw e;
    }
  }

  /**
   * Runs `attempt` until it succeeds; between tries the partition is paused and we heartbeat.
   * Returns false when the consumer stops or the partition is taken away meanwhile (nothing was
   * committed: the chunk will be read again). A rebalance noticed by a heartbeat propagates as
   * kafkajs's error, which makes it rejoin.
   */
  private async retrying(
    payload: EachBatchPayload,
    context: ChunkContext,
    what: string,
    attempt: () => Promise<void>,
  ): Promise<boolean> {
    const generation = this.counters.joins;
    let failures = 0;
    let resume: (() => void) | null = null;
    const firstFailure = Date.now();
    try {
      for (;;) {
        try {
          await this.withHeartbeats(payload, attempt);
          if (failures > 0) {
            this.logger.info(`kafka consumer: ${what} recovered, resuming partition`, {
              ...context,
              failures,
              pausedMs: Date.now() - firstFailure,
            });
          }
          return true;
        } catch (e) {
          // kafkajs must see its own error (REBALANCE_IN_PROGRESS, ...) to rejoin the group.
          if (e instanceof HeartbeatFailure) {
            if (isRebalanceError(e.original) && generation === this.counters.joins)
              this.generationOver = true;
            throw e.original;
          }
          if (what === 'sink') this.counters.sinkFailures++;
          if (failures === 0) {
            resume = payload.pause();
            this.logger.warn(
              `kafka consumer: ${what} failed, partition paused, retrying without committing`,
              {
                ...context,
                error: describeError(e),
              },
            );
          } else {
            this.logger.debug(`kafka consumer: ${what} still failing`, {
              ...context,
              failures: failures + 1,
              error: describeError(e),
            });
          }
          const delay = backoffDelay(failures++, this.sinkRetry);
          const waited = await sleepWhile(
            delay,
            () => payload.isRunning() && !payload.isStale() && this.state === 'running',
            () => this.beat(payload),
            Math.min(250, this.heartbeatInterval),
          );
          if (!waited) return false;
        }
      }
    } finally {
      resume?.();
    }
  }

  /**
   * Awaits `attempt` while heartbeating every interval, so a slow write does not cost us the
   * partition. A rebalance seen meanwhile is rethrown only if the attempt failed: after a success
   * the commit that follows either still works or fails and rejoins.
   */
  private async withHeartbeats(payload: EachBatchPayload, attempt: () => Promise<void>): Promise<void> {
    let beatError: unknown = null;
    let beating: Promise<void> | null = null;
    const timer = setInterval(() => {
      if (beating || beatError) return;
      beating = payload
        .heartbeat()
        .catch((e) => {
          beatError = e;
        })
        .finally(() => {
          beating = null;
        });
    }, this.heartbeatInterval);
    try {
      await attempt();
    } catch (e) {
      if (beatError) throw new HeartbeatFailure(beatError);
      throw e;
    } finally {
      clearInterval(timer);
      if (beating) await beating;
    }
  }
}
