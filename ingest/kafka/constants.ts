/** Names shared by the producer (capture side) and the consumer (ingest side). */

/** Topic the capture agents produce to and the ingest consumers read. */
export const DEFAULT_TOPIC = 'callscope.events';

/** Consumer group of the ingest writers. */
export const DEFAULT_GROUP_ID = 'callscope-ingest';

/** Dead-letter topic of `topic`: messages that cannot be decoded land there, never in the store. */
export function deadLetterTopic(topic: string): string {
  return `${topic}.dlq`;
}

/** Dead-letter headers: why the message was set aside and where it came from. */
export const HEADER_ERROR = 'x-callscope-error';
export const HEADER_TOPIC = 'x-callscope-topic';
export const HEADER_PARTITION = 'x-callscope-partition';
export const HEADER_OFFSET = 'x-callscope-offset';
