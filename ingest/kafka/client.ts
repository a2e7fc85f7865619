/**
 * The kafkajs client as callscope configures it: kafkajs logs go through our structured Logger, and
 * timeouts are short enough that an unreachable cluster is noticed in seconds (the producer then
 * spools) rather than after kafkajs's 30-s defaults.
 */
import { Kafka, logLevel as KafkaLogLevel, type LogEntry, type RetryOptions } from 'kafkajs';
import type { LogFields, Logger } from '../../core/log.js';

export interface KafkaClientOptions {
  /** `host:port` strings, or one comma-separated string (as `KAFKA_BROKERS` holds). */
  brokers: string[] | string;
  clientId?: string;
  logger: Logger;
  /** kafkajs's own chatter at or above this level reaches the logger. Default 'warn'. */
  kafkaLogLevel?: 'error' | 'warn' | 'info' | 'debug' | 'nothing';
  /** TCP connect timeout, ms. Default 3000. */
  connectionTimeout?: number;
  /** Request timeout, ms. Default 10000. */
  requestTimeout?: number;
  /** kafkajs's retry policy for requests (metadata, commits, joins). */
  retry?: RetryOptions;
}

const LEVELS: Record<NonNullable<KafkaClientOptions['kafkaLogLevel']>, KafkaLogLevel> = {
  nothing: KafkaLogLevel.NOTHING,
  error: KafkaLogLevel.ERROR,
  warn: KafkaLogLevel.WARN,
  info: KafkaLogLevel.INFO,
  debug: KafkaLogLevel.DEBUG,
};

/** Splits `a:9092, b:9092` into kafkajs's broker list. */
export function parseBrokers(brokers: string[] | string): string[] {
  const list = (Array.isArray(brokers) ? brokers : brokers.split(','))
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  if (list.length === 0) throw new Error(`no Kafka brokers given (${JSON.stringify(brokers)})`);
  return list;
}

/** kafkajs log entries → our Logger, keeping only flat fields (stacks and buffers stay out). */
function logCreator(logger: Logger) {
  return () =>
    ({ namespace, level, log }: LogEntry): void => {
      const { message, timestamp: _t, logger: _l, ...extra } = log;
      const fields: LogFields = { component: 'kafkajs', namespace };
      for (const [k, v] of Object.entries(extra)) {
        if (k === 'stack') continue;
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') fields[k] = v;
      }
      if (level === KafkaLogLevel.ERROR) logger.error(message, fields);
      else if (level === KafkaLogLevel.WARN) logger.warn(message, fields);
      else if (level === KafkaLogLevel.INFO) logger.info(message, fields);
      else logger.debug(message, fields);
    };
}

/** A kafkajs client; producers, consumers and admins made from it share its settings. */
export function createKafka(options: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId: options.clientId ?? 'callscope',
    brokers: parseBrokers(options.brokers),
    connectionTimeout: options.connectionTimeout ?? 3000,
    requestTimeout: options.requestTimeout ?? 10_000,
    retry: options.retry ?? { initialRetryTime: 200, maxRetryTime: 5000, retries: 5 },
    logLevel: LEVELS[options.kafkaLogLevel ?? 'warn'],
    logCreator: logCreator(options.logger),
  });
}
