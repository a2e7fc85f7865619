/**
 * The Kafka producer with its disk spool as a sink (core/sink.ts). `write` resolves once every event
 * is queued in memory or spooled on disk (it waits while both are full); `flush` once Kafka has
 * acknowledged them or the spool holds them. Events the codec cannot encode are skipped and counted.
 */
import type { CaptureEvent } from '../../core/event.js';
import { countReason, type EventSink, type SinkStats } from '../../core/sink.js';
import { KafkaTransportError } from './errors.js';
import { EventProducer, type EventProducerOptions } from './producer.js';

export class KafkaSink implements EventSink {
  readonly name = 'kafka';
  readonly producer: EventProducer;
  private accepted = 0;
  private unencodable = 0;
  private refused = 0;
  private closing = false;

  constructor(options: EventProducerOptions) {
    this.producer = new EventProducer(options);
  }

  /** Opens the spool and connects (unreachable brokers are not an error: the producer spools). */
  connect(): Promise<void> {
    return this.producer.connect();
  }

  async write(events: readonly CaptureEvent[]): Promise<void> {
    for (const event of events) {
      this.accepted++;
      if (this.closing) {
        this.refused++;
        continue;
      }
      try {
        await this.producer.send(event);
      } catch (error) {
        // Still waiting for room when the producer closed: it counted the event failed.
        if (!(error instanceof KafkaTransportError)) this.unencodable++;
      }
    }
  }

  flush(): Promise<void> {
    return this.producer.flush();
  }

  close(): Promise<void> {
    this.closing = true;
    return this.producer.close();
  }

  stats(): SinkStats {
    const p = this.producer.stats();
    const skipped: Record<string, number> = {};
    const lost: Record<string, number> = {};
    if (this.unencodable > 0) countReason(skipped, 'not encodable as HEP3', this.unencodable);
    const givenUp = p.failed - this.unencodable;
    if (givenUp > 0) countReason(lost, 'refused by Kafka or unsent at close', givenUp);
    if (this.refused > 0) countReason(lost, 'written after close', this.refused);
    return {
      accepted: this.accepted,
      delivered: p.sent + p.replayed,
      pending: p.queued + p.spoolSize,
      skipped,
      lost,
    };
  }
}
