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

/** Decodes one chunk of messages; never throws. */
function decodeMessages(messages: KafkaMessage[]): Decoded {
  const out: Decoded = { events: [], letters: [], keepAlives: 0 };
  for (const message of messages) {
    if (!message.value || message.value.length === 0) {
      out.letters.push({ message, reason: 'empty message value (no HEP3 frame)' });
      continue;
    }
    const decoded = decodeHep3(message.value);
    if (!decoded.ok) {
      out.letters.push({ message, reason: `HEP3 decode: ${decoded.error}` });
    } else if (decoded.keepAlive) {
      out.keepAlives++;
    } else {
      out.events.push(decoded.event);
    }
  }
  return out;
}

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
    if (messages.length > 0) this.position(partition, batch.highWatermark, BigInt(messages[0].offset));
    for (let i = 0; i < messages.length; i += this.maxEventsPerWrite) {
      // Stopping or seeking: leave the rest unresolved, it is read again. After a lost generation,
      // writing more would only make chunks nobody can commit until the rejoin.
      if (!payload.isRunning() || payload.isStale() || this.generationOver) return;
      const chunk = messages.slice(i, i + this.maxEventsPerWrite);
      const context: ChunkContext = {
        topic,
        partition,
        firstOffset: chunk[0].offset,
        lastOffset: chunk[chunk.length - 1].offset,
      };
      this.counters.messages += chunk.length;
      const { events, letters, keepAlives } = decodeMessages(chunk);
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
      if (events.length > 0) {
        const ok = await this.retrying(payload, context, 'sink', () => this.onChunk(events, context));
        if (!ok) return;
        this.counters.written += events.length;
      }

      payload.resolveOffset(context.lastOffset);
      this.uncommitted.set(partition, (BigInt(context.lastOffset) + 1n).toString());
      // Everything resolved has been written, so committing all of it is exact.
      const offsets = payload.uncommittedOffsets();
      try {
        await payload.commitOffsetsIfNecessary(offsets);
      } catch (e) {
        // Mid-rebalance the broker refuses commits; kafkajs rejoins on this error, and
        // settleAfterRejoin commits the chunk if we keep its partition.
        if (isRebalanceError(e)) this.generationOver = true;
        this.logger.warn('kafka consumer: commit failed after the sink wrote; settling after rejoin', {
          ...context,
          error: describeError(e),
        });
        throw e;
      }
      for (const t of offsets.topics) {
        if (t.topic !== this.topic) continue;
        // kafkajs lists partitions as object keys here: strings, not numbers.
        for (const p of t.partitions) {
          const n = Number(p.partition);
          if (this.uncommitted.get(n) === p.offset) this.uncommitted.delete(n);
        }
      }
      this.counters.commits++;
      this.position(partition, batch.highWatermark, BigInt(context.lastOffset) + 1n);
      await this.beat(payload);
    }
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
            if (isRebalanceError(e.original)) this.generationOver = true;
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
            () => payload.isRunning() && !payload.isStale(),
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
