import type { SipMessage } from './message.js';

const NOTHING_SEEN = 0;
const REQUEST_SEEN = 1;
const PROVISIONAL_SEEN = 2;
const FINAL_SEEN = 3;

interface TransactionState {
  cseq: number;
  method: string;
  state: number;
  responseCode: number;
}

/**
 * Marks SIP messages as retransmissions the way Wireshark/tshark counts "resent" messages, so the
 * two counts agree: only datagrams (UDP) are considered; state is kept per Call-ID and direction
 * (source address and port, destination address and port); a request is resent when the same CSeq
 * number and method were already requested in that direction (ACK and CANCEL never are); a final
 * response is resent when the same CSeq, method and status were already answered in that direction.
 *
 * Unlike tshark the table is bounded: the oldest directions are forgotten first.
 */
export class RetransmissionTracker {
  private readonly directions = new Map<string, TransactionState>();
  evicted = 0;

  constructor(private readonly maxDirections = 500_000) {}

  /** Returns true when `message` (carried over UDP) repeats one already seen. */
  check(message: SipMessage, srcIp: string, srcPort: number, dstIp: string, dstPort: number): boolean {
    const cseq = message.cseq;
    if (!cseq) return false;
    const key = `${message.callId ?? ''}\u0000${srcIp}\u0000${srcPort}\u0000${dstIp}\u0000${dstPort}`;
    let entry = this.directions.get(key);
    let compareCseq: number;
    if (entry) {
      compareCseq = entry.cseq;
      if (cseq.seq !== entry.cseq) {
        entry.cseq = cseq.seq;
        entry.method = cseq.method;
        entry.state = NOTHING_SEEN;
      }
    } else {
      if (this.directions.size >= this.maxDirections) {
        const oldest = this.directions.keys().next().value;
        if (oldest !== undefined) this.directions.delete(oldest);
        this.evicted++;
      }
      entry = { cseq: cseq.seq, method: cseq.method, state: NOTHING_SEEN, responseCode: 0 };
      this.directions.set(key, entry);
      // A fresh entry has "seen no CSeq yet" (tshark compares with 0).
      compareCseq = 0;
    }
    let resent = false;
    if (message.isRequest) {
      resent =
        cseq.seq === compareCseq &&
        entry.state === REQUEST_SEEN &&
        cseq.method === entry.method &&
        cseq.method !== 'ACK' &&
        cseq.method !== 'CANCEL';
      entry.state = REQUEST_SEEN;
    } else {
      const code = message.statusCode ?? 0;
      resent =
        cseq.seq === compareCseq &&
        entry.state === FINAL_SEEN &&
        cseq.method === entry.method &&
        code >= 200 &&
        code === entry.responseCode;
      if (code >= 200) {
        entry.responseCode = code;
        entry.state = FINAL_SEEN;
      } else {
        entry.state = PROVISIONAL_SEEN;
      }
    }
    entry.cseq = cseq.seq;
    return resent;
  }

  get size(): number {
    return this.directions.size;
  }

  clear(): void {
    this.directions.clear();
  }
}
