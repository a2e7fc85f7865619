/**
 * The HEP sender as a sink (core/sink.ts): events go out as HEP3 to HOMER, heplify-server, sngrep or
 * another callscope. Sending never waits: what the sender's bounded queue cannot take is lost and
 * counted, events HEP cannot carry (too large, a field out of range) are skipped and counted.
 */
import type { CaptureEvent } from '../../core/event.js';
import { countReason, type EventSink, type SinkStats } from '../../core/sink.js';
import { HepSender, type HepSenderOptions } from './sender.js';

export class HepSink implements EventSink {
  readonly name = 'hep';
  readonly sender: HepSender;
  private accepted = 0;

  constructor(options: HepSenderOptions) {
    this.sender = new HepSender(options);
  }

  async write(events: readonly CaptureEvent[]): Promise<void> {
    for (const event of events) {
      this.accepted++;
      this.sender.send(event);
    }
  }

  flush(): Promise<void> {
    return this.sender.flush();
  }

  close(): Promise<void> {
    return this.sender.close();
  }

  stats(): SinkStats {
    const s = this.sender.stats;
    const skipped: Record<string, number> = {};
    const lost: Record<string, number> = {};
    if (s.unsendable > 0) countReason(skipped, 'not a valid HEP frame', s.unsendable);
    if (s.dropped > 0) countReason(lost, 'sender queue full or closed', s.dropped);
    if (s.failed > 0) countReason(lost, 'UDP send failed', s.failed);
    return {
      accepted: this.accepted,
      delivered: s.sent,
      pending: Math.max(0, this.accepted - s.sent - s.unsendable - s.dropped - s.failed),
      skipped,
      lost,
    };
  }
}
