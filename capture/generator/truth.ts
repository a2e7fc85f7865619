import type { SipCounts } from '../../core/sip-counts.js';
import type { CallTruth } from './ladder.js';
import type { ResolvedOptions } from './options.js';
import type { RtpStreamTruth } from './rtp.js';

export type { CallTruth } from './ladder.js';
export type { RtpStreamTruth } from './rtp.js';

export interface VmTruth {
  name: string;
  mac: string;
  ip: string;
  userAgent: string;
}

/** What a generated capture contains, exactly as written (lost packets are not in the file). */
export interface GroundTruth {
  /** The options with every default filled in. */
  options: ResolvedOptions;
  /** Frames in the file. */
  packets: number;
  /** First and last frame times, epoch seconds as written. */
  firstPacket: number | null;
  lastPacket: number | null;
  vms: VmTruth[];
  /** Counted the way tshark's `sip,stat` counts (resent requests included in the per-method counts). */
  sip: SipCounts;
  calls: CallTruth[];
  rtpStreams: RtpStreamTruth[];
}
