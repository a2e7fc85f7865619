/** Parsed SIP message model (RFC 3261). Strings are decoded as latin1 so every byte survives. */

export interface SipUri {
  scheme: string; // sip, sips, tel, urn...
  user: string | null;
  host: string; // IPv6 references keep their brackets: "[2001:db8::1]"
  port: number | null;
  params: Record<string, string>; // ;transport=udp;lr → { transport: 'udp', lr: '' }
  /** URI headers (`?Replaces=...&Subject=x`), values still %-escaped; absent when the URI has none. */
  headers?: Record<string, string>;
  raw: string;
}

/** name-addr / addr-spec with header parameters, as in From, To, Contact, P-Asserted-Identity. */
export interface SipNameAddr {
  displayName: string | null; // unquoted, backslash escapes resolved
  uri: SipUri | null; // null when the URI could not be parsed
  tag: string | null;
  params: Record<string, string>;
  raw: string;
}

export interface SipVia {
  protocol: string; // "SIP/2.0"
  transport: string; // UDP, TCP, TLS, SCTP, WS, WSS (upper case)
  host: string;
  port: number | null;
  branch: string | null;
  received: string | null;
  rport: number | null; // null when absent; 0 when present without a value
  params: Record<string, string>;
  raw: string;
}

export interface SipCSeq {
  seq: number; // 0..2^32-1
  method: string;
}

/** Reason header (RFC 3326): `Q.850;cause=16;text="Normal call clearing"`. */
export interface SipReason {
  protocol: string; // Q.850, SIP
  cause: number | null;
  text: string | null;
}

export interface SdpConnection {
  netType: string; // IN
  addrType: string; // IP4, IP6
  address: string;
}

export interface SdpMedia {
  media: string; // audio, video, image (T.38), application
  port: number;
  portCount: number;
  proto: string; // RTP/AVP, RTP/SAVP, udptl...
  formats: string[];
  connection: SdpConnection | null; // media-level c=, else null (use the session's)
  rtpmap: Record<number, { encoding: string; clockRate: number; channels: number | null }>;
  fmtp: Record<string, string>;
  ptime: number | null;
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive' | null;
  attributes: Array<[string, string | null]>;
}

export interface Sdp {
  version: number | null;
  origin: {
    username: string;
    sessionId: string;
    sessionVersion: string;
    netType: string;
    addrType: string;
    address: string;
  } | null;
  sessionName: string | null;
  connection: SdpConnection | null; // session-level c=
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive' | null;
  media: SdpMedia[];
}

export interface SipBodyPart {
  contentType: string | null; // lower-cased media type without parameters
  body: Buffer;
}

/**
 * One parsed message. What call analysis reads is decoded by SipParser.parse; the members marked "lazy"
 * are decoded from the message's bytes when first read and then cached (they read like, and can be
 * assigned like, plain properties). Hence the parser's contract: the buffer it was given must stay
 * unchanged while the message is used, as for `body`. Because lazy members are accessors, object spread
 * and Object.keys/entries do not see them; JSON.stringify does (toJSON decodes everything).
 */
export interface SipMessage {
  isRequest: boolean;
  method: string | null; // requests only
  /** Lazy. Null for responses and for unparsable URIs. */
  requestUri: SipUri | null;
  statusCode: number | null; // responses only
  reasonPhrase: string | null;
  /**
   * Lazy. Every header in order: canonical long name (compact forms expanded, e.g. "Call-ID"), raw value
   * (unfolded).
   */
  headers: Array<[string, string]>;
  callId: string | null;
  from: SipNameAddr | null;
  to: SipNameAddr | null;
  via: SipVia[]; // all Via values in order (repeated headers and comma lists)
  cseq: SipCSeq | null;
  /** Lazy. Every Contact value in order (at most 64). */
  contact: SipNameAddr[];
  maxForwards: number | null;
  contentType: string | null; // lower-cased media type without parameters
  contentLength: number | null; // the header's value, null when absent
  reason: SipReason | null;
  userAgent: string | null;
  server: string | null;
  /** Lazy. Every P-Asserted-Identity value in order (at most 64). */
  pAssertedIdentity: SipNameAddr[];
  /** Correlation id of a B2BUA's other leg (X-CID, X-Call-ID, X-Correlation-ID...). */
  correlationCallId: string | null;
  /**
   * Body bytes as present: a view of the parsed buffer. A message kept past the packet needs a buffer
   * that stays unchanged (the lazy members decode from it too): parse a copy when packet memory is reused.
   */
  body: Buffer;
  /** Lazy. Multipart bodies split; a single part otherwise (empty when no body). Parts are views. */
  bodyParts: SipBodyPart[];
  /** Lazy (decoded with bodyParts). The first SDP part. */
  sdp: Sdp | null;
  /**
   * Problems found while parsing that did not prevent a result (e.g. "content-length mismatch"), each
   * once, at most 32. Holds the eagerly decoded parts' warnings after parsing (start line, header section,
   * Via, From, To, CSeq, Content-Length, "missing X"...); a lazy member's warnings (e.g. "invalid
   * Request-URI", Contact problems, "sdp: ..." and "multipart: ..." ones) are appended when that member is
   * first read.
   */
  warnings: string[];
}

export type SipParseResult = { ok: true; message: SipMessage } | { ok: false; error: string };
