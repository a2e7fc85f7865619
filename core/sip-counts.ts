/** SIP counts in the shape `callscope analyze --json` prints and tshark's `sip,stat` reports. */
export interface SipCounts {
  messages: number;
  retransmissions: number;
  /** Request method → messages (retransmissions included, as tshark counts). */
  requests: Record<string, number>;
  /** Response status code (as a string) → messages. */
  responses: Record<string, number>;
}

/**
 * Distinct method names counted under their own key; further ones share OTHER_METHODS. Method names
 * come from packets, so a hostile capture must not grow the summary without bound.
 */
export const MAX_METHOD_KEYS = 256;
export const OTHER_METHODS = '(other methods)';

export function emptySipCounts(): SipCounts {
  // Null prototypes: a method called "constructor" or "__proto__" is just another key.
  return {
    messages: 0,
    retransmissions: 0,
    requests: Object.create(null) as Record<string, number>,
    responses: Object.create(null) as Record<string, number>,
  };
}

/** Counts `n` equal SIP messages: requests (method) or responses (status code). */
export function countSipMessage(
  counts: SipCounts,
  method: string | null,
  status: number | null,
  resent: boolean,
  n = 1,
): void {
  counts.messages += n;
  if (resent) counts.retransmissions += n;
  if (method !== null) {
    const requests = counts.requests;
    let key = method;
    if (requests[key] === undefined && Object.keys(requests).length >= MAX_METHOD_KEYS) key = OTHER_METHODS;
    requests[key] = (requests[key] ?? 0) + n;
  } else if (status !== null) {
    const key = String(status);
    counts.responses[key] = (counts.responses[key] ?? 0) + n;
  }
}
