/** What the split-mode commands share about Kafka: the events topic and its dead-letter topic. */
import type { Logger } from '../core/log.js';
import type { createKafka } from '../ingest/kafka/client.js';
import { deadLetterTopic } from '../ingest/kafka/constants.js';
import { ensureTopics } from '../ingest/kafka/topics.js';
import type { Settings } from './config.js';
import { partitionsOf, topicOf } from './flags.js';

/**
 * Creates the events topic and its dead-letter topic if they do not exist. Returns the events topic's
 * partitions (as the cluster has it, which may differ from --partitions).
 */
export async function provisionTopics(
  settings: Settings,
  logger: Logger,
  kafka: ReturnType<typeof createKafka>,
): Promise<number> {
  const topic = topicOf(settings);
  const [events] = await ensureTopics(
    kafka,
    [
      { topic, partitions: partitionsOf(settings) },
      { topic: deadLetterTopic(topic), partitions: 1 },
    ],
    logger,
  );
  return events.partitions;
}
