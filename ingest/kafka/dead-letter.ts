/**
 * The dead-letter topic: where a message that cannot become an event goes, byte for byte, with the
 * reason and its origin in headers, so that one bad message never blocks a partition and is never
 * silently dropped either.
 */

import type { Kafka } from 'kafkajs';
import { type IHeaders, type KafkaMessage, Partitioners, type Producer } from 'kafkajs';
import { HEADER_ERROR, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC } from './constants.js';

export interface DeadLetter {
  message: KafkaMessage;
  /** Why it was set aside (the decoder's message). */
  reason: string;
}

/** Owned by the consumer that made it: `connect()` before use, `disconnect()` after. */
export class DeadLetterPublisher {
  private readonly producer: Producer;

  constructor(
    kafka: Kafka,
    readonly topic: string,
  ) {
    this.producer = kafka.producer({
      allowAutoTopicCreation: false,
      idempotent: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
  }

  connect(): Promise<void> {
    return this.producer.connect();
  }

  disconnect(): Promise<void> {
    return this.producer.disconnect();
  }

  /** Publishes the messages of one source partition; resolves once all replicas acknowledged. */
  async publish(sourceTopic: string, sourcePartition: number, letters: DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: letters.map(({ message, reason }) => {
        const headers: IHeaders = { ...(message.headers ?? {}) };
        headers[HEADER_ERROR] = reason;
        headers[HEADER_TOPIC] = sourceTopic;
        headers[HEADER_PARTITION] = String(sourcePartition);
        headers[HEADER_OFFSET] = message.offset;
        // The original key keeps the letters of one call together, in order, in the DLQ as well.
        return { key: message.key, value: message.value, headers, timestamp: message.timestamp };
      }),
    });
  }
}
