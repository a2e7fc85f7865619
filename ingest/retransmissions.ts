/**
 * Retransmission marking on the ingest side. HEP carries no such flag, so SIP that arrives through
 * Kafka or from another agent's HEP is marked again here, with the same tshark-compatible rule the
 * capture side uses. Kafka keeps one Call-ID's events in order on one partition, which is all the
 * rule needs (it tracks each Call-ID and direction). State is bounded; a restart forgets it, so a
 * retransmission right after one may be missed.
 */

import { SipParser } from '../capture/sip/parser.js';
import { RetransmissionTracker } from '../capture/sip/retransmission.js';
import { type CaptureEvent, HEP_PROTO_SIP } from '../core/event.js';

export class RetransmissionMarker {
  private readonly tracker: RetransmissionTracker;
  /** A sink retried after a store outage hands the same events again: each is marked once. */
  private readonly marked = new WeakSet<CaptureEvent>();
  private readonly parser = new SipParser();

  constructor(maxDirections?: number) {
    this.tracker = new RetransmissionTracker(maxDirections);
  }

  /**
   * Sets `retransmission` on the UDP SIP events of `events` (in place) and returns them. Events decoded
   * from Kafka carry only the payload: their SIP is parsed here (from the event's own payload copy,
   * which the parser's lazy fields keep reading), once, and kept on the event for the writer.
   */
  mark(events: CaptureEvent[]): CaptureEvent[] {
    for (const e of events) {
      if (e.protoType !== HEP_PROTO_SIP || e.transport !== 'udp' || this.marked.has(e)) continue;
      if (e.sip === undefined) {
        const parsed = this.parser.parse(e.payload, 0, e.payload.length);
        if (!parsed.ok) continue;
        e.sip = parsed.message;
      }
      this.marked.add(e);
      e.retransmission = this.tracker.check(e.sip, e.srcIp, e.srcPort, e.dstIp, e.dstPort);
    }
    return events;
  }
}
