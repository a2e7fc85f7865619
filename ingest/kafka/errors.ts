/**
 * Telling "the brokers cannot be reached right now" from "Kafka refused this data". The first is
 * worth waiting out (spool, retry); the second will not get better by retrying.
 */

/** kafkajs error classes that mean no broker answered in time. */
const UNREACHABLE_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSBrokerNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSLockTimeout',
]);

interface ErrorLike {
  name?: string;
  message?: string;
  retriable?: boolean;
  type?: string;
  code?: string;
  cause?: unknown;
  originalError?: unknown;
  errors?: unknown[];
}

/** The error and every error it wraps (kafkajs nests them in `cause`/`originalError`/`errors`). */
function* chain(e: unknown, depth = 0): Generator<ErrorLike> {
  if (!e || typeof e !== 'object' || depth > 8) return;
  const err = e as ErrorLike;
  yield err;
  yield* chain(err.cause, depth + 1);
  if (err.originalError !== err.cause) yield* chain(err.originalError, depth + 1);
  if (Array.isArray(err.errors)) for (const inner of err.errors) yield* chain(inner, depth + 1);
}

/**
 * True when the failure means the cluster (or a partition leader) is unreachable or temporarily
 * unable to take writes: connection refused/closed, request timeouts, no broker, retriable protocol
 * errors (leader moves, not enough replicas). The outer kafkajs error is often
 * "KafkaJSNonRetriableError" only because its own retries ran out, so the whole chain is examined.
 */
export function isBrokerUnavailable(e: unknown): boolean {
  for (const err of chain(e)) {
    if (err.name && UNREACHABLE_NAMES.has(err.name)) return true;
    if (err.name === 'KafkaJSProtocolError' && err.retriable === true) return true;
    if (err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET' || err.code === 'ETIMEDOUT') return true;
    // Some kafkajs wrappers copy the inner message but not the inner error.
    if (err.name?.startsWith('KafkaJS') && UNREACHABLE_MESSAGE.test(err.message ?? '')) return true;
  }
  return false;
}

const UNREACHABLE_MESSAGE =
  /Connection error|Connection timeout|Closed connection|Request .*timed out|No broker available|ECONNREFUSED|ECONNRESET/;

/** Group-membership errors: the generation is over and the member must rejoin before committing. */
const REBALANCE_TYPES = new Set([
  'REBALANCE_IN_PROGRESS',
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
  'NOT_COORDINATOR_FOR_GROUP',
  'NOT_COORDINATOR',
]);

export function isRebalanceError(e: unknown): boolean {
  for (const err of chain(e)) if (err.type && REBALANCE_TYPES.has(err.type)) return true;
  return false;
}

/** One line naming the innermost causes, for logs (`Connection error: connect ECONNREFUSED ...`). */
export function describeError(e: unknown): string {
  const parts: string[] = [];
  for (const err of chain(e)) {
    const text = err.message ?? String(err);
    if (!parts.includes(text)) parts.push(text);
  }
  return parts.length ? parts.join(' <- ') : String(e);
}

/** Errors of this transport carry what they were doing, so a log line alone locates the problem. */
export class KafkaTransportError extends Error {
  constructor(
    message: string,
    readonly context: Record<string, string | number>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KafkaTransportError';
  }
}
