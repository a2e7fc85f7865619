/** The Kafka transport: capture agents produce events, ingest consumers write them to the store. */
export { type BackoffOptions, backoffDelay } from './backoff.js';
export { createKafka, type KafkaClientOptions, parseBrokers } from './client.js';
export {
  DEFAULT_GROUP_ID,
  DEFAULT_TOPIC,
  deadLetterTopic,
  HEADER_ERROR,
  HEADER_OFFSET,
  HEADER_PARTITION,
  HEADER_TOPIC,
} from './constants.js';
export {
  type ChunkContext,
  type ChunkHandler,
  EventConsumer,
  type EventConsumerOptions,
  type EventConsumerStats,
} from './consumer.js';
export { describeError, isBrokerUnavailable, KafkaTransportError } from './errors.js';
export { EventProducer, type EventProducerOptions, type EventProducerStats } from './producer.js';
export { type FsyncPolicy, Spool, type SpoolOptions } from './spool.js';
export { type EnsuredTopic, ensureTopics, type TopicSpec } from './topics.js';
