/** What the split-mode commands share about Kafka: the events topic and its dead-letter topic. */
import type { Logger } from '../core/log.js';
import type { createKafka } from '../ingest/kafka/client.js';
import { deadLetterTopic } from '../ingest/kafka/constants.js';
import { ensureTopics } from '../ingest/kafka/topics.js';
import type { Settings } from './config.js';
import { partitionsOf, topicOf } from './flags.js';

/** Creates the events topic and its dead-letter topic if they do not exist. */
export async function provisionTopics(
  settings: Settings,
  logger: Logger,
  kafka: ReturnType<typeof createKafka>,
): Promise<void> {
  const topic = topicOf(settings);
  await ensureTopics(
    kafka,
    [
      { topic, partitions: partitionsOf(settings) },
      { topic: deadLetterTopic(topic), partitions: 1 },
    ],
    logger,
  );
}
