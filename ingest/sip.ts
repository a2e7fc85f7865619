/**
 * SIP on the ingest side, prepared once. Events that arrive through Kafka or from another agent's HEP
 * carry only the payload: their SIP is parsed here (once per event, from the event's own payload
 * copy, which the parser's lazy fields keep reading), a missing correlation id is taken from the
 * Call-ID (Kafka keys by it), and UDP SIP is marked as retransmission again with the same
 * tshark-compatible rule the capture uses (HEP carries no such flag). Kafka keeps one Call-ID's events
 * in order on one partition, which is all the rule needs. State is bounded; a restart forgets it.
 *
 * Payloads that do not parse as SIP are counted and logged here; the store then skips them by reason.
 */

import { SipParser } from '../capture/sip/parser.js';
import { RetransmissionTracker } from '../capture/sip/retransmission.js';
import { type CaptureEvent, HEP_PROTO_SIP } from '../core/event.js';
import { type Logger, ProblemLog, silentLogger } from '../core/log.js';

export interface IngestSipStats {
  /** SIP events parsed here (they arrived without a parsed message). */
  parsed: number;
  /** SIP events whose payload did not parse: delivered without `sip`, skipped by the store. */
  unparsable: number;
  /** UDP SIP events marked as retransmissions. */
  retransmissions: number;
  /** Retransmission state forgotten at its bound (a later resend may count as new). */
  retransmissionStatesForgotten: number;
}

export class IngestSip {
  private readonly counters = { parsed: 0, unparsable: 0, retransmissions: 0 };
  private readonly parser = new SipParser();
  private readonly tracker: RetransmissionTracker;
  private readonly problems: ProblemLog;
  /** A batch offered again (Kafka after a store outage) holds the same events: each is prepared once. */
  private readonly prepared = new WeakSet<CaptureEvent>();

  constructor(options: { logger?: Logger; maxRetransmissionEntries?: number } = {}) {
    this.tracker = new RetransmissionTracker(options.maxRetransmissionEntries);
    this.problems = new ProblemLog(options.logger ?? silentLogger);
  }

  get stats(): IngestSipStats {
    return { ...this.counters, retransmissionStatesForgotten: this.tracker.evicted };
  }

  /** Prepares the SIP events of `events` in place and returns them. */
  prepare(events: CaptureEvent[]): CaptureEvent[] {
    for (const e of events) {
      if (e.protoType !== HEP_PROTO_SIP || this.prepared.has(e)) continue;
      this.prepared.add(e);
      if (e.sip === undefined) {
        const result = this.parser.parse(e.payload, 0, e.payload.length, {
          transportIsStream: e.transport === 'tcp' || e.transport === 'tls',
        });
        if (!result.ok) {
          this.counters.unparsable++;
          this.problems.report('sip-unparsable', 'SIP payload does not parse; the store skips it', {
            source: e.source?.interface ?? e.source?.file,
            frame: e.source?.packetNumber,
            from: `${e.srcIp}:${e.srcPort}`,
            to: `${e.dstIp}:${e.dstPort}`,
            callId: e.correlationId.slice(0, 256),
            error: result.error,
          });
          continue;
        }
        this.counters.parsed++;
        e.sip = result.message;
      }
      const sip = e.sip;
      if (e.correlationId === '' && sip.callId !== null) e.correlationId = sip.callId;
      if (e.transport === 'udp') {
        e.retransmission = this.tracker.check(sip, e.srcIp, e.srcPort, e.dstIp, e.dstPort);
        if (e.retransmission) this.counters.retransmissions++;
      }
    }
    return events;
  }
}
