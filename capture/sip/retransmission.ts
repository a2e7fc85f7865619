import type { SipMessage } from '../../core/sip-message.js';
import { BoundedMap, MAX_KEY_PART, ownedCopy, ownedKeyPart } from './bounded-map.js';

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
 * Unlike tshark the table is bounded: the least recently used directions are forgotten first, and
 * a Call-ID longer than 256 characters is compared by its first 256.
 */
export class RetransmissionTracker {
  private readonly directions: BoundedMap<TransactionState>;

  constructor(maxDirections = 500_000) {
    this.directions = new BoundedMap(maxDirections);
  }

  /** Call-ID/direction entries forgotten to stay within the bound. */
  get evicted(): number {
    return this.directions.forgotten;
  }

  /** Returns true when `message` (carried over UDP) repeats one already seen. */
  check(message: SipMessage, srcIp: string, srcPort: number, dstIp: string, dstPort: number): boolean {
    const cseq = message.cseq;
    if (!cseq) return false;
    const callId = message.callId ?? '';
    const lookup = `${callId.length > MAX_KEY_PART ? callId.slice(0, MAX_KEY_PART) : callId}\u0000${srcIp}\u0000${srcPort}\u0000${dstIp}\u0000${dstPort}`;
    let entry = this.directions.get(lookup);
    let compareCseq: number;
    if (entry) {
      compareCseq = entry.cseq;
      if (cseq.seq !== entry.cseq) {
        entry.cseq = cseq.seq;
        entry.method = ownedKeyPart(cseq.method);
        entry.state = NOTHING_SEEN;
      }
    } else {
      entry = { cseq: cseq.seq, method: ownedKeyPart(cseq.method), state: NOTHING_SEEN, responseCode: 0 };
      this.directions.set(ownedCopy(lookup), entry);
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
