/**
 * Making sure the topics exist before producing or consuming. CreateTopics is only a best effort:
 * brokers may refuse it (librdkafka's mock does not implement it, ACLs may forbid it, the topic may
 * already exist, a cluster may report a controller id that is not among its brokers); what counts is
 * that the topic is in the cluster's metadata afterwards.
 */
import type { Kafka } from 'kafkajs';
import type { Logger } from '../../core/log.js';
import { describeError, KafkaTransportError } from './errors.js';

export interface TopicSpec {
  topic: string;
  partitions: number;
  /** Default 1: correct for a one-broker development cluster; production topics set their own. */
  replicationFactor?: number;
}

export interface EnsuredTopic {
  topic: string;
  partitions: number;
  /** True when this call created it. */
  created: boolean;
}

/**
 * Creates the topics that do not exist yet, then checks the metadata. Throws a KafkaTransportError
 * naming the missing topics and the broker's refusal when a topic is still absent. A topic with
 * fewer partitions than asked for is kept and reported with a warning: partitions are never changed
 * here, since that would move keys (Call-IDs) to other partitions and break their order.
 */
export async function ensureTopics(
  kafka: Kafka,
  specs: TopicSpec[],
  logger: Logger,
): Promise<EnsuredTopic[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    let existing = new Set(await listTopics(admin));
    const missing = specs.filter((s) => !existing.has(s.topic));
    let refusal: string | null = null;
    const created = new Set<string>();
    if (missing.length > 0) {
      try {
        await admin.createTopics({
          topics: missing.map((s) => ({
            topic: s.topic,
            numPartitions: s.partitions,
            replicationFactor: s.replicationFactor ?? 1,
          })),
          waitForLeaders: true,
        });
        for (const s of missing) created.add(s.topic);
      } catch (e) {
        // Another agent may have created it meanwhile ("already exists"), or the broker does not
        // do CreateTopics at all; both are settled by the metadata check below.
        refusal = describeError(e);
        logger.warn('kafka: topic creation refused, checking whether the topics exist anyway', {
          topics: missing.map((s) => s.topic).join(','),
          error: refusal,
        });
      }
      existing = new Set(await listTopics(admin));
    }

    const absent = specs.filter((s) => !existing.has(s.topic)).map((s) => s.topic);
    if (absent.length > 0) {
      throw new KafkaTransportError(
        `Kafka topic${absent.length > 1 ? 's' : ''} ${absent.join(', ')} do${absent.length > 1 ? '' : 'es'} not exist and could not be created${refusal ? `: ${refusal}` : ''}`,
        { topics: absent.join(',') },
      );
    }

    const metadata = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.topic) });
    const partitionsOf = new Map(metadata.topics.map((t) => [t.name, t.partitions.length]));
    return specs.map((s) => {
      const partitions = partitionsOf.get(s.topic) ?? 0;
      if (partitions < s.partitions) {
        logger.warn('kafka: topic has fewer partitions than configured; keeping it as it is', {
          topic: s.topic,
          partitions,
          wanted: s.partitions,
        });
      }
      if (created.has(s.topic)) logger.info('kafka: topic created', { topic: s.topic, partitions });
      return { topic: s.topic, partitions, created: created.has(s.topic) };
    });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Every topic name in the cluster. A metadata request for all topics: asking for a named topic
 * instead would auto-create it on brokers with `auto.create.topics.enable` (the mock always does),
 * and the check would prove nothing.
 */
async function listTopics(admin: ReturnType<Kafka['admin']>): Promise<string[]> {
  return admin.listTopics();
}
