/**
 * Synthetic VoIP traffic: SIP calls with RTP between VMs, written as a pcap in time order together with
 * the ground truth of what was written. Events of concurrent calls are merged through a min-heap of
 * lazy sources (one per call's signalling, one per media direction), so memory stays bounded by the
 * number of concurrent calls, not by the size of the capture.
 */

import { countSipMessage, emptySipCounts } from '../../core/sip-counts.js';
import { PcapWriter } from '../file/pcap-writer.js';
import { planB2buaCall } from './b2bua.js';
import { planCall } from './calls.js';
import { type Host, makeHost, TOS_SIP, UdpFrameBuilder } from './frames.js';
import {
  type CallPlan,
  type CallSetup,
  type CallTruth,
  type Outcome,
  type SipEvent,
  VIA_MIDDLE,
} from './ladder.js';
import { apportion, type GeneratorOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { planProxiedCall } from './proxy.js';
import { Rng } from './random.js';
import { CODECS, RtpStream } from './rtp.js';
import { agentOf, SIP_PORT } from './sip-text.js';
import type { GroundTruth } from './truth.js';

export type { CallTruth, Outcome } from './ladder.js';
export { OUTCOMES } from './ladder.js';
export type { GeneratorOptions, OutcomeMix, ResolvedOptions, RtpOptions } from './options.js';
export { EVERY_OUTCOME, parseOutcomeMix } from './options.js';
export type { CodecName, RtpStreamTruth } from './rtp.js';
export type { GroundTruth, VmTruth } from './truth.js';

const RTP_PORT_MIN = 10000;
const RTP_PORT_MAX = 60000;

/** Something that writes packets at known times (ns since the capture start). */
interface Source {
  /** Time of the first event. */
  readonly time: number;
  /** Writes the current event and moves on; returns the next event's time, or -1 when exhausted. */
  fire(): number;
}

/**
 * Binary min-heap of sources on (time, insertion order); the order breaks ties deterministically.
 * Keys live in typed arrays so the comparisons stay monomorphic: this loop runs once per packet.
 */
class SourceHeap {
  private items: Source[] = [];
  private times = new Float64Array(256);
  private orders = new Float64Array(256);
  private inserted = 0;
  size = 0;

  top(): Source {
    return this.items[0];
  }

  push(s: Source): void {
    if (this.size === this.times.length) {
      const t = new Float64Array(this.size * 2);
      t.set(this.times);
      this.times = t;
      const o = new Float64Array(this.size * 2);
      o.set(this.orders);
      this.orders = o;
    }
    const { items, times, orders } = this;
    const time = s.time;
    const order = this.inserted++;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (times[p] < time || (times[p] === time && orders[p] < order)) break;
      items[i] = items[p];
      times[i] = times[p];
      orders[i] = orders[p];
      i = p;
    }
    items[i] = s;
    times[i] = time;
    orders[i] = order;
  }

  /** Removes the top. */
  pop(): void {
    const last = --this.size;
    const s = this.items[last];
    const time = this.times[last];
    const order = this.orders[last];
    this.items.length = last;
    if (last > 0) this.place(s, time, order);
  }

  /** The top's next event is at `time`: one sift instead of pop + push. */
  retime(time: number): void {
    this.place(this.items[0], time, this.orders[0]);
  }

  /** Sifts (s, time, order) down from the root. */
  private place(s: Source, time: number, order: number): void {
    const { items, times, orders } = this;
    const n = this.size;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      const r = c + 1;
      if (r < n && (times[r] < times[c] || (times[r] === times[c] && orders[r] < orders[c]))) c = r;
      if (time < times[c] || (time === times[c] && order < orders[c])) break;
      items[i] = items[c];
      times[i] = times[c];
      orders[i] = orders[c];
      i = c;
    }
    items[i] = s;
    times[i] = time;
    orders[i] = order;
  }
}

export function generateCapture(options: GeneratorOptions): GroundTruth {
  const o: ResolvedOptions = resolveOptions(options);
  const rng = new Rng(o.seed);
  const hosts: Host[] = [];
  for (let i = 1; i <= o.vms; i++) hosts.push(makeHost(i, rng.int(65536)));
  // Each VM hands out even RTP ports from its own counter, so every call gets ports of its own.
  const nextPort = hosts.map(() => RTP_PORT_MIN + 2 * rng.int(2500));
  const allocPort = (h: Host): number => {
    const p = nextPort[h.index - 1];
    nextPort[h.index - 1] = p + 2 >= RTP_PORT_MAX ? RTP_PORT_MIN : p + 2;
    return p;
  };
  const usedSsrc = new Set<number>();
  const newSsrc = (): number => {
    for (;;) {
      const v = rng.u32();
      if (!usedSsrc.has(v)) {
        usedSsrc.add(v);
        return v;
      }
    }
  };
  const usedCallIds = new Set<string>();

  // Times are integer ns relative to the start; the epoch base is split so no precision is lost.
  const baseSec = Math.floor(o.startTime);
  const baseNs = Math.round((o.startTime - baseSec) * 1e9);
  const tickNs = o.nanosecond ? 1 : 1000;
  const toEpoch = (rel: number): number => {
    const abs = baseNs + rel;
    const sec = Math.floor(abs / 1e9);
    const frac = abs - sec * 1e9;
    return baseSec + sec + Math.floor(frac / tickNs) / (1e9 / tickNs);
  };
  // The same written times in ms for the call records' terms; differences are taken on the written ticks
  // so that they carry no rounding from the epoch's magnitude.
  const writtenNs = (rel: number): number => {
    const abs = baseNs + rel;
    return abs - (((abs % tickNs) + tickNs) % tickNs);
  };
  const toEpochMs = (rel: number): number => baseSec * 1000 + writtenNs(rel) / 1e6;
  const nsBetween = (from: number, to: number): number => writtenNs(to) - writtenNs(from);

  const writer = new PcapWriter(o.output, { nanosecond: o.nanosecond });
  const sipFrames = new UdpFrameBuilder(o.vlan);
  const sip = emptySipCounts();
  const calls: CallTruth[] = [];
  const rtpStreams: GroundTruth['rtpStreams'] = [];
  let packets = 0;
  let firstNs = -1;
  let lastNs = -1;

  const write = (rel: number, frame: Uint8Array): void => {
    const abs = baseNs + rel;
    const sec = Math.floor(abs / 1e9);
    writer.write(baseSec + sec, abs - sec * 1e9, frame);
    if (firstNs < 0) firstNs = rel;
    lastNs = rel;
    packets++;
  };

  class SipSource implements Source {
    readonly time: number;
    private i = 0;

    constructor(private readonly events: SipEvent[]) {
      this.time = events[0].time;
    }

    fire(): number {
      const e = this.events[this.i++];
      write(
        e.time,
        sipFrames.build(e.src, e.dst, SIP_PORT, SIP_PORT, Buffer.from(e.text, 'latin1'), TOS_SIP, 3),
      );
      countSipMessage(sip, e.method, e.code, e.resent);
      return this.i < this.events.length ? this.events[this.i].time : -1;
    }
  }

  class RtpSource implements Source {
    readonly time: number;

    constructor(private readonly stream: RtpStream) {
      this.time = stream.time;
    }

    fire(): number {
      const stream = this.stream;
      write(stream.time, stream.frame());
      return stream.advance() ? stream.time : -1;
    }
  }

  const outcomes: Outcome[] = rng.shuffle(apportion(o.calls, o.outcomes));
  const spawned: Source[] = [];
  const ordinals = new Map<Outcome, number>();
  /** A VM other than those given: the PBX or proxy of a call, or a proxy's failover destination. */
  const another = (...taken: Host[]): Host => {
    const free = hosts.filter((h) => !taken.includes(h));
    return free[rng.int(free.length)];
  };
  const newCallId = (make: () => string): string => {
    let callId: string;
    do callId = make();
    while (usedCallIds.has(callId));
    usedCallIds.add(callId);
    return callId;
  };

  /** Starts calls at Poisson arrival times; writes nothing itself. */
  class CallSpawner implements Source {
    time = 0;
    private index = 0;

    fire(): number {
      const callRng = rng.fork();
      const caller = hosts[rng.int(hosts.length)];
      let callee = hosts[rng.int(hosts.length - 1)];
      if (callee === caller) callee = hosts[hosts.length - 1];
      const callId = newCallId(() => `${rng.hex(12)}@${caller.ipText}`);
      const outcome = outcomes[this.index];
      const ordinal = ordinals.get(outcome) ?? 0;
      ordinals.set(outcome, ordinal + 1);
      // Only outcomes with a third VM draw more, so a mix of the original outcomes keeps its bytes.
      const middle = VIA_MIDDLE.includes(outcome) ? another(caller, callee) : null;
      const firstDestination =
        outcome === 'proxiedFailover' && middle !== null ? another(caller, callee, middle) : null;
      const legB: CallSetup['legB'] =
        outcome === 'b2bua' && middle !== null
          ? {
              // Asterisk's PJSIP names its outgoing dialogs with a UUID.
              callId: newCallId(
                () => `${rng.hex(4)}-${rng.hex(2)}-${rng.hex(2)}-${rng.hex(2)}-${rng.hex(6)}`,
              ),
              rtpPorts: [allocPort(middle), allocPort(middle)],
              ssrcs: [newSsrc(), newSsrc()],
            }
          : null;
      const setup: CallSetup = {
        callId,
        startNs: this.time,
        outcome,
        ordinal,
        caller,
        callee,
        middle,
        firstDestination,
        legB,
        callerRtpPort: allocPort(caller),
        calleeRtpPort: allocPort(callee),
        talkMs: o.callDurationSec * 1000,
        codec: CODECS[o.rtp.codec],
        ptimeMs: o.rtp.ptimeMs,
        rtpEnabled: o.rtp.enabled,
        jitterMs: o.rtp.jitterMs,
        lossRate: o.rtp.lossRate,
        reorderRate: o.rtp.reorderRate,
        vlan: o.vlan,
        sessionRefresh: o.sessionRefresh,
        ssrcs: [newSsrc(), newSsrc()],
        toEpoch,
        toEpochMs,
        nsBetween,
      };
      const plan: CallPlan =
        outcome === 'b2bua'
          ? planB2buaCall(setup, callRng)
          : middle !== null
            ? planProxiedCall(setup, callRng)
            : planCall(setup, callRng);
      calls.push(...plan.truths);
      spawned.push(new SipSource(plan.events));
      for (const m of plan.media) {
        const stream = new RtpStream(m.stream, callRng.fork(), m.callId);
        rtpStreams.push(stream.truth);
        if (stream.advance()) spawned.push(new RtpSource(stream));
      }
      this.index++;
      if (this.index >= outcomes.length) return -1;
      this.time += Math.round(rng.exponential(1e9 / o.callsPerSecond));
      return this.time;
    }
  }

  const heap = new SourceHeap();
  if (outcomes.length > 0) heap.push(new CallSpawner());
  try {
    while (heap.size > 0) {
      const next = heap.top().fire();
      if (next >= 0) heap.retime(next);
      else heap.pop();
      if (spawned.length > 0) {
        for (const s of spawned) heap.push(s);
        spawned.length = 0;
      }
    }
  } finally {
    writer.close();
  }

  return {
    options: o,
    packets,
    firstPacket: firstNs < 0 ? null : toEpoch(firstNs),
    lastPacket: lastNs < 0 ? null : toEpoch(lastNs),
    vms: hosts.map((h) => ({ name: h.name, mac: h.macText, ip: h.ipText, userAgent: agentOf(h) })),
    sip,
    calls,
    rtpStreams,
  };
}
