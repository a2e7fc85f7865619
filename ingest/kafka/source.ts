/**
 * A Kafka consumer group as a source (core/source.ts). Each chunk is decoded from HEP3, its SIP
 * prepared once (ingest/sip.ts), and delivered to the sinks; the driver makes the delivery durable
 * (the sinks flushed) before it resolves, and only then does the consumer commit its offsets. A
 * delivery that fails is retried by the consumer with the same chunk (it redelivers).
 */
import type { LogFields } from '../../core/log.js';
import { aborted, type EventSource, type SourceOutput } from '../../core/source.js';
import { IngestSip, type IngestSipStats } from '../sip.js';
import { DEFAULT_TOPIC } from './constants.js';
import {
  type ChunkContext,
  EventConsumer,
  type EventConsumerOptions,
  type EventConsumerStats,
  type PartitionLag,
} from './consumer.js';

export interface KafkaSourceOptions extends Omit<EventConsumerOptions, 'onChunk'> {
  /** Once the group is joined and consumption runs. */
  onStart?: (consumer: EventConsumer) => void;
  /**
   * After a chunk is durable in every sink, before its offsets are committed (tests stop a process
   * exactly there). `total` counts every event delivered so far.
   */
  onDelivered?: (events: number, context: ChunkContext, total: number) => Promise<void> | void;
}

export interface KafkaSourceStats extends EventConsumerStats {
  sip: IngestSipStats;
}

export class KafkaSource implements EventSource<KafkaSourceStats> {
  readonly name: string;
  readonly pace = 'paced';
  readonly redelivers = true;
  private consumer: EventConsumer | null = null;
  private readonly sip: IngestSip;

  constructor(private readonly options: KafkaSourceOptions) {
    this.name = `kafka:${options.topic ?? DEFAULT_TOPIC}`;
    this.sip = new IngestSip({ logger: options.logger });
  }

  async run(output: SourceOutput, signal?: AbortSignal): Promise<KafkaSourceStats> {
    signal?.throwIfAborted();
    let delivered = 0;
    const consumer = new EventConsumer({
      ...this.options,
      // The next fetch is decoded and prepared while the chunk before it is being stored.
      chunksInFlight: this.options.chunksInFlight ?? 2,
      onChunk: async (events, context) => {
        await output.events(this.sip.prepare(events));
        delivered += events.length;
        await this.options.onDelivered?.(events.length, context, delivered);
      },
    });
    this.consumer = consumer;
    await consumer.start();
    try {
      this.options.onStart?.(consumer);
      await aborted(signal);
    } finally {
      await consumer.stop();
    }
    return this.stats();
  }

  progress(): LogFields {
    const { sip, ...consumer } = this.stats();
    return {
      ...consumer,
      sipParsed: sip.parsed,
      sipUnparsable: sip.unparsable,
      retransmissions: sip.retransmissions,
      retransmissionStatesForgotten: sip.retransmissionStatesForgotten,
    };
  }

  /** Messages behind the high watermark per partition consumed, as of the last fetch (none before). */
  lag(): PartitionLag[] {
    return this.consumer?.lag() ?? [];
  }

  /** The consumer's counters so far (zeros before it started) and the SIP prepared. */
  stats(): KafkaSourceStats {
    const counters = this.consumer?.stats() ?? {
      messages: 0,
      written: 0,
      sinkFailures: 0,
      deadLettered: 0,
      keepAlives: 0,
      commits: 0,
      crashes: 0,
      joins: 0,
    };
    return { ...counters, sip: { ...this.sip.stats } };
  }
}
