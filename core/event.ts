import type { FailoverRecord } from './failover.js';
import type { MediaStreamReport } from './media-report.js';
import type { SipMessage } from './sip-message.js';

/** HEP protocol-type values (chunk 0x000b) used by callscope. See docs/HEP.md. */
export const HEP_PROTO_SIP = 1;
export const HEP_PROTO_RTCP_JSON = 5;
export const HEP_PROTO_RTP_QOS_JSON = 34;
export const HEP_PROTO_RTCP_XR_MOS = 35;
export const HEP_PROTO_DNS = 53;
export const HEP_PROTO_LOG = 100;
/**
 * callscope's own type: a failover (a virtual IP moved to another MAC / VM), JSON (core/failover.ts).
 * Not in any HEP registry; chosen far from the types agents use (docs/HEP.md, docs/FAILOVER.md).
 */
export const HEP_PROTO_FAILOVER_JSON = 0xca;

export type TransportName = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss' | 'sctp';

/**
 * A HEP-like capture event: what one decoded SIP message or one media stream report becomes.
 * Everything here outlives the packet: buffers are copies, not views into reader chunks.
 */
export interface CaptureEvent {
  /** Capture time in nanoseconds since the Unix epoch. */
  timestampNs: bigint;
  ipFamily: 4 | 6;
  /** IP protocol number of the transport (17 UDP, 6 TCP, 132 SCTP). */
  ipProtocol: number;
  transport: TransportName;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  /** Outermost 802.1Q VLAN id, null when untagged. */
  vlan: number | null;
  /** HEP protocol type (HEP_PROTO_*). */
  protoType: number;
  /** HEP capture agent id (chunk 12). */
  captureId: number;
  /** Node name / group id (chunk 19). */
  nodeName: string;
  /** Correlation id (chunk 17): the Call-ID for SIP. */
  correlationId: string;
  /** Raw payload (the SIP message bytes). */
  payload: Buffer;
  /** Parsed SIP, present for SIP events decoded locally (absent for HEP received from elsewhere). */
  sip?: SipMessage;
  /** The media stream report behind a protocol-type-34 event produced locally. */
  media?: MediaStreamReport;
  /** The failover behind a HEP_PROTO_FAILOVER_JSON event produced locally (analyze/failover/). */
  failover?: FailoverRecord;
  /**
   * VM ids of the sending and receiving side (capture/attribution.ts), absent when unknown. They
   * travel in HEP as callscope vendor chunks (docs/HEP.md).
   */
  srcVm?: string;
  dstVm?: string;
  /** tshark-compatible retransmission flag. */
  retransmission: boolean;
  /** Where it came from, for error context: file path or interface, and packet number. */
  source?: { file?: string; interface?: string; packetNumber: number };
}
