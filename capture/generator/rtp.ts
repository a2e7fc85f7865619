import { type Host, RtpFrameTemplate } from './frames.js';
import type { Rng } from './random.js';

export type CodecName = 'PCMU' | 'PCMA' | 'G729';

export interface Codec {
  name: CodecName;
  payloadType: number;
  clockRate: number;
  /** Payload bytes per millisecond of audio (64 kbit/s G.711 → 8, 8 kbit/s G.729 → 1). */
  bytesPerMs: number;
  /** Extra SDP attribute lines for this codec. */
  fmtp: string[];
}

export const CODECS: Record<CodecName, Codec> = {
  PCMU: { name: 'PCMU', payloadType: 0, clockRate: 8000, bytesPerMs: 8, fmtp: [] },
  PCMA: { name: 'PCMA', payloadType: 8, clockRate: 8000, bytesPerMs: 8, fmtp: [] },
  // annexb=no: most PBXs disable G.729B silence suppression, so every 20 ms carries a full frame pair.
  G729: { name: 'G729', payloadType: 18, clockRate: 8000, bytesPerMs: 1, fmtp: ['a=fmtp:18 annexb=no'] },
};

export const TELEPHONE_EVENT_PT = 101;

/** What the ground truth records per stream; the counters are final once the stream has ended. */
export interface RtpStreamTruth {
  callId: string;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  ssrc: number;
  payloadType: number;
  codec: CodecName;
  /** Packets the sender produced (sequence numbers used). */
  packetsSent: number;
  /** Packets written to the capture. */
  packetsCaptured: number;
  /** Packets not written (packetsSent − packetsCaptured). */
  lost: number;
  /** Adjacent pairs written in swapped order. */
  reordered: number;
  /** Mean interarrival jitter tshark should report, approximately: E|U1 − U2| = jitterMs / 3. */
  expectedJitterMs?: number;
}

export interface RtpStreamPlan {
  src: Host;
  dst: Host;
  srcPort: number;
  dstPort: number;
  ssrc: number;
  codec: Codec;
  ptimeMs: number;
  /** Nominal send time of the first packet, ns relative to the capture start. */
  startNs: number;
  packets: number;
  jitterMs: number;
  lossRate: number;
  reorderRate: number;
  vlan: number | null;
}

/** Minimum spacing of one stream's packets, so jitter alone never reorders them (µs pcap resolution). */
const MIN_GAP_NS = 1000;

/**
 * One direction of media, produced lazily in capture order so that a long call never sits in memory.
 * Loss and reordering spare the first and last packets: tshark derives "expected" from the first and
 * last sequence numbers it sees, and the ground truth must equal what tshark can know.
 */
export class RtpStream {
  readonly truth: RtpStreamTruth;
  private readonly template: RtpFrameTemplate;
  private readonly ptimeNs: number;
  private readonly jitterNs: number;
  private readonly samplesPerPacket: number;
  private readonly seq0: number;
  private readonly ts0: number;
  // Copied out of the plan: hot-loop reads from the spread-built plan object are slow.
  private readonly startNs: number;
  private readonly packets: number;
  private readonly lossRate: number;
  private readonly reorderRate: number;
  private next = 0; // next sequence index to consider
  private prevArrival = -Infinity;
  private pendingIndex = -1; // the packet delayed by a swap, written next
  private pendingTime = 0;
  /** Current packet: sequence index and capture time (ns relative to the capture start). */
  index = 0;
  time = 0;

  constructor(
    plan: RtpStreamPlan,
    private readonly rng: Rng,
    callId: string,
  ) {
    const { codec, ptimeMs } = plan;
    this.startNs = plan.startNs;
    this.packets = plan.packets;
    this.lossRate = plan.lossRate;
    this.reorderRate = plan.reorderRate;
    this.ptimeNs = Math.round(ptimeMs * 1e6);
    this.jitterNs = plan.jitterMs * 1e6;
    this.samplesPerPacket = Math.round((ptimeMs * codec.clockRate) / 1000);
    this.seq0 = rng.int(65536);
    this.ts0 = rng.u32();
    this.template = new RtpFrameTemplate(
      plan.vlan,
      plan.src,
      plan.dst,
      plan.srcPort,
      plan.dstPort,
      codec.payloadType,
      plan.ssrc,
      audioPayload(codec, Math.round(ptimeMs * codec.bytesPerMs), rng),
    );
    this.truth = {
      callId,
      src: plan.src.ipText,
      srcPort: plan.srcPort,
      dst: plan.dst.ipText,
      dstPort: plan.dstPort,
      ssrc: plan.ssrc,
      payloadType: codec.payloadType,
      codec: codec.name,
      packetsSent: plan.packets,
      packetsCaptured: 0,
      lost: 0,
      reordered: 0,
    };
    if (plan.jitterMs > 0) this.truth.expectedJitterMs = plan.jitterMs / 3;
  }

  /** Latest capture time any packet of this stream can have, ns: callers schedule the BYE after it. */
  static lastArrival(plan: RtpStreamPlan): number {
    const ptimeNs = Math.round(plan.ptimeMs * 1e6);
    return plan.startNs + (plan.packets - 1) * ptimeNs + plan.jitterMs * 1e6 + plan.packets * MIN_GAP_NS;
  }

  private arrival(i: number): number {
    let t = this.startNs + i * this.ptimeNs;
    if (this.jitterNs > 0) t += Math.round(this.rng.next() * this.jitterNs);
    if (t < this.prevArrival + MIN_GAP_NS) t = this.prevArrival + MIN_GAP_NS;
    this.prevArrival = t;
    return t;
  }

  private droppable(i: number): boolean {
    return i > 0 && i < this.packets - 1;
  }

  /** Moves to the next packet to write; false when the stream is over. */
  advance(): boolean {
    if (this.pendingIndex >= 0) {
      this.index = this.pendingIndex;
      this.time = this.pendingTime;
      this.pendingIndex = -1;
      return true;
    }
    const { packets, lossRate, reorderRate } = this;
    while (this.next < packets) {
      const i = this.next++;
      const t = this.arrival(i);
      if (lossRate > 0 && this.droppable(i) && this.rng.next() < lossRate) {
        this.truth.lost++;
        continue;
      }
      // Swap with the following packet: it takes this packet's arrival slot and this one arrives late.
      // Never across the 65535 → 0 wrap: tshark then counts a second cycle and 65536 extra lost.
      if (
        reorderRate > 0 &&
        i > 0 &&
        i + 1 < packets - 1 &&
        ((this.seq0 + i) & 0xffff) !== 0xffff &&
        this.rng.next() < reorderRate
      ) {
        const j = this.next++;
        const tj = this.arrival(j);
        if (lossRate > 0 && this.rng.next() < lossRate) {
          this.truth.lost++; // nothing left to swap with
        } else {
          this.truth.reordered++;
          this.pendingIndex = i;
          this.pendingTime = tj;
          this.index = j;
          this.time = t;
          return true;
        }
      }
      this.index = i;
      this.time = t;
      return true;
    }
    return false;
  }

  /** Frame of the current packet (valid until the next call). */
  frame(): Uint8Array {
    const i = this.index;
    this.truth.packetsCaptured++;
    return this.template.fill(
      (this.seq0 + i) & 0xffff,
      (this.ts0 + i * this.samplesPerPacket) >>> 0,
      i === 0, // marker: start of a talkspurt
    );
  }
}

/**
 * A fixed low-level noise pattern per stream. Real audio would change every packet, but no analysis
 * looks inside the payload, and a constant one keeps the checksum incremental.
 */
function audioPayload(codec: Codec, size: number, rng: Rng): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    const r = rng.u32(); // one draw per byte: bit 3 picks the sign, bits 0-2 the magnitude
    const small = r & 7;
    const positive = (r & 8) !== 0;
    if (codec.name === 'PCMU') out[i] = (positive ? 0xff : 0x7f) - small;
    else if (codec.name === 'PCMA') out[i] = (positive ? 0xd5 : 0x55) ^ small;
    else out[i] = r >>> 24;
  }
  return out;
}
