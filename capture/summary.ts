/** SIP counts in the shape `callscope analyze --json` prints and tshark's `sip,stat` reports. */
export interface SipCounts {
  messages: number;
  retransmissions: number;
  /** Request method → messages (retransmissions included, as tshark counts). */
  requests: Record<string, number>;
  /** Response status code (as a string) → messages. */
  responses: Record<string, number>;
}

export function emptySipCounts(): SipCounts {
  return { messages: 0, retransmissions: 0, requests: {}, responses: {} };
}
