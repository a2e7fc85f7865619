/**
 * The summary of `analyze` and `stats`: SIP messages per method and status (counted as tshark counts
 * them), Call-IDs, transports, the busiest endpoints, per-VM load and every RTP stream's final figures,
 * next to what only the capture knows (packets, decoding counters).
 *
 * One counter serves both: SummarySink counts events as a sink of the capture (`analyze`, `run`,
 * `capture`), and the store summary (analyze/store-summary.ts) feeds it the same facts grouped by SQL,
 * each group with its count. What it counts and how is written once, here.
 */

import type { ArpStats } from '../capture/decoder.js';
import type { FragmentStats } from '../capture/reassembly/fragments.js';
import type { TcpStats } from '../capture/reassembly/tcp.js';
import type { MediaStats } from '../capture/rtp/media.js';
import { MAX_KEY_PART, ownedKeyPart } from '../capture/sip/bounded-map.js';
import type { CaptureFacts } from '../capture/sources.js';
import { type CaptureEvent, HEP_PROTO_FAILOVER_JSON, type TransportName } from '../core/event.js';
import { type FailoverRecord, failoverFromJson } from '../core/failover.js';
import { type Logger, silentLogger } from '../core/log.js';
import type { MediaStreamReport } from '../core/media-report.js';
import { type EventSink, emptySinkStats, type SinkStats } from '../core/sink.js';
import { countSipMessage, emptySipCounts, type SipCounts } from '../core/sip-counts.js';
import { CallAnalysis, type CallAnalysisOptions, type CallLimitsReached } from './calls/analysis.js';
import type { CallsSummary } from './calls/kpis.js';
import type { FailoverTrackerStats } from './failover/tracker.js';
import { OptionsProbeTracker, type ProbesSummary } from './probes/tracker.js';
import type { RegistrationsSummary } from './registrations/summary.js';
import { RegistrationTracker } from './registrations/tracker.js';
import { TrackerSink } from './tracking.js';

/** Streams listed in a summary at most; more are counted in `streamsOmitted`. */
export const MAX_SUMMARY_STREAMS = 100_000;
/** Distinct Call-IDs counted exactly; past this the count stops growing (callIdsCapped). */
export const MAX_COUNTED_CALL_IDS = 1_000_000;
/** Endpoints counted; messages of endpoints beyond are counted in untrackedEndpointMessages. */
export const MAX_COUNTED_ENDPOINTS = 10_000;
/** VMs counted (HEP-borne VM ids are attacker-controlled text). */
export const MAX_COUNTED_VMS = 10_000;
/** Endpoints listed in a summary. */
export const TOP_ENDPOINTS = 50;
/** Failovers listed in a summary; more are counted in `omitted`. */
export const MAX_SUMMARY_FAILOVERS = 1000;

/** One RTP stream as the summary lists it: its final report, nanosecond times as decimal strings. */
export type RtpStreamSummary = Omit<
  MediaStreamReport,
  'kind' | 'interval' | 'source' | 'startNs' | 'endNs'
> & {
  startNs: string;
  endNs: string;
};

/** SIP traffic of one address, port and transport. */
export interface SipEndpointCounts {
  transport: TransportName;
  ip: string;
  port: number;
  sent: number;
  received: number;
}

/** What one VM sent and received: SIP messages (retransmissions included), INVITEs, RTP streams. */
export interface VmLoad {
  vm: string;
  sipSent: number;
  sipReceived: number;
  invitesSent: number;
  invitesReceived: number;
  streamsSent: number;
  streamsReceived: number;
}

export interface AnalyzeSummary {
  /** File path, the interface of a live capture, or what part of the store a store summary covers. */
  file: string;
  /** 'store': events that came through Kafka or HEP, with no capture run recorded for them. */
  format: 'pcap' | 'pcapng' | 'live' | 'store';
  packets: number;
  /**
   * Packets we could not use: undecodable headers, corrupt or cut-off file records, and payloads
   * that started like SIP but could not be parsed.
   */
  malformedPackets: number;
  /** Packets shorter than on the wire (snaplen); still decoded as far as they go. */
  truncatedPackets: number;
  firstPacketTime: string | null;
  lastPacketTime: string | null;
  durationSec: number;
  sip: SipCounts & {
    malformed: number;
    callIds: number;
    /** True when more distinct Call-IDs arrived than are counted exactly. */
    callIdsCapped: boolean;
    transports: Record<string, number>;
    /** The 50 busiest SIP endpoints (address, port, transport): shows SIP on unexpected ports. */
    endpoints: SipEndpointCounts[];
  };
  decode: {
    ipv4: number;
    ipv6: number;
    udp: number;
    tcp: number;
    sctp: number;
    nonIp: number;
    tunnelled: { ipip: number; gre: number; erspan: number; vxlan: number };
    /** ARP frames (absent for runs stored before schema version 8). */
    arp?: ArpStats;
    fragments: FragmentStats;
    tcpStreams: TcpStats;
    errors: Record<string, number>;
    unsupportedLinkTypes: Record<string, number>;
    /** Records cut off by the end of the file: the capture file was cut short. */
    truncatedRecords: number;
    fileWarnings: string[];
  };
  rtp: {
    /** Every stream's final figures, in order of first packet. */
    streams: RtpStreamSummary[];
    streamsOmitted: number;
    stats: MediaStats;
  };
  /** How long decoding took, and its speed: our processing rate, not the traffic's. */
  elapsedMs: number;
  packetsPerSecond: number;
  /** Per-VM load, VM id order; present when events were attributed (--ovs-db, --vm-map). */
  vms?: VmLoad[];
  /** What reached a bound: state forgotten, or things not counted, so that memory stays bounded. */
  limits: SummaryLimitsReached;
  /** Live captures only: the kernel's figures (pcap_stats) summed over every handle the capture had. */
  capture?: CaptureFacts['capture'];
  /** The calls (one record per call, analyze/calls/) and their KPIs, each call counted once. */
  calls: CallsSummary;
  /** REGISTER attempts, each counted once (analyze/registrations/, docs/REGISTRATIONS.md). */
  registrations: RegistrationsSummary;
  /** OPTIONS keep-alives per prober → probed pair: sent, answered, failing, up/down (analyze/probes/). */
  probes: ProbesSummary;
  /** Addresses (VIPs) that moved to another MAC / VM, with their service gap (docs/FAILOVER.md). */
  failovers: FailoversSummary;
}

/** The failovers of a capture or of the store's failovers table. */
export interface FailoversSummary {
  /** Failovers found: one per move of an address to another MAC / VM. */
  count: number;
  /** Them in order of time (the first MAX_SUMMARY_FAILOVERS). */
  list: FailoverRecord[];
  omitted: number;
  /** The tracker's counters: what only the capture knows (zero for events that came through Kafka or HEP). */
  tracker: FailoverTrackerStats;
}

/** Each bounded structure of a capture and of the summary, and what it gave up at its bound. */
export interface SummaryLimitsReached {
  /** Retransmission state (Call-ID × direction) forgotten at 500,000 entries: a later resend may count as new. */
  retransmissionStatesForgotten: number;
  /** SIP messages whose endpoint was not counted: the endpoint table was full (10,000 endpoints). */
  endpointMessagesUntracked: number;
  /** Events of VMs beyond the 10,000 counted. */
  vmEventsUntracked: number;
  /** Distinct Call-IDs beyond the 1,000,000 counted exactly (sip.callIds stops there). */
  callIdsCapped: boolean;
  /** TCP streams evicted at 65,536 (their partial messages lost). */
  tcpStreamsEvicted: number;
  /** SCTP messages evicted while incomplete. */
  sctpMessagesEvicted: number;
  /** IP datagrams whose fragments were evicted at the bound. */
  fragmentsEvicted: number;
  /** RTP streams evicted (ended early) and refused at the stream bound. */
  rtpStreamsEvicted: number;
  rtpStreamsRefused: number;
  /** Open calls closed early at the bound of open calls (200,000): their records say 'evicted'. */
  callsEvicted: number;
  /** B2BUA legs forgotten at the linking index's bound (200,000): a later leg of theirs stays unlinked. */
  callLegsForgotten: number;
  /** Addresses the failover tracker forgot at its bound (65,536): a move of theirs goes unseen. */
  failoverAddressesForgotten: number;
}

/** A SIP message as the summary counts it (one event, or a group of equal ones from the store). */
export interface SipFacts {
  /** The method of a request; null for a response. */
  method: string | null;
  /** The status code of a response; null for a request. */
  status: number | null;
  retransmission: boolean;
  transport: TransportName;
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  srcVm: string | undefined;
  dstVm: string | undefined;
}

/** Counts events (or groups of them) into the parts of a summary that come from events. */
export interface SummarySinkOptions {
  /** Distinct Call-IDs counted exactly (default MAX_COUNTED_CALL_IDS). */
  maxCallIds?: number;
  /** Endpoints counted (default MAX_COUNTED_ENDPOINTS). */
  maxEndpoints?: number;
  /** Told once when a bound is first reached. */
  logger?: Logger;
}

export class SummarySink implements EventSink {
  readonly name = 'summary';
  private readonly maxCallIds: number;
  private readonly maxEndpoints: number;
  private readonly sipCounts = emptySipCounts();
  private readonly transports: Record<string, number> = {};
  private readonly callIdKeys = new Set<string>();
  private callIdCount = 0;
  private callIdsCapped = false;
  private readonly endpoints = new Map<string, SipEndpointCounts>();
  /** Messages whose endpoint did not fit in the bounded endpoint table. */
  untrackedEndpointMessages = 0;
  /** Events of VMs beyond the VM bound. */
  untrackedVmEvents = 0;
  private readonly vms = new Map<string, VmLoad>();
  private readonly streams: RtpStreamSummary[] = [];
  private streamsOmitted = 0;
  private readonly failovers: FailoverRecord[] = [];
  private failoverCount = 0;
  private accepted = 0;

  private readonly logger: Logger;
  /** Bounds already reported. */
  private readonly reached = new Set<string>();

  constructor(options: SummarySinkOptions = {}) {
    this.maxCallIds = options.maxCallIds ?? MAX_COUNTED_CALL_IDS;
    this.maxEndpoints = options.maxEndpoints ?? MAX_COUNTED_ENDPOINTS;
    this.logger = options.logger ?? silentLogger;
  }

  /** The first time a bound is reached, one warning; the summary's `limits` has the counts. */
  private bound(what: string, limit: number): void {
    if (this.reached.has(what)) return;
    this.reached.add(what);
    this.logger.warn('summary: a bound was reached; beyond it, not counted (see "limits" in the summary)', {
      bound: what,
      limit,
    });
  }

  async write(events: readonly CaptureEvent[]): Promise<void> {
    for (const event of events) this.add(event);
  }

  /** Counts one event synchronously. */
  add(event: CaptureEvent): void {
    this.accepted++;
    const sip = event.sip;
    if (sip !== undefined) {
      this.addSip(
        {
          method: sip.isRequest ? (sip.method ?? '') : null,
          status: sip.isRequest ? null : sip.statusCode,
          retransmission: event.retransmission,
          transport: event.transport,
          srcIp: event.srcIp,
          srcPort: event.srcPort,
          dstIp: event.dstIp,
          dstPort: event.dstPort,
          srcVm: event.srcVm,
          dstVm: event.dstVm,
        },
        1,
      );
      this.addCallId(sip.callId ?? '');
      return;
    }
    const report = event.media;
    if (report !== undefined && report.kind === 'final') this.addStream(report, event.srcVm, event.dstVm);
    else if (event.protoType === HEP_PROTO_FAILOVER_JSON) {
      const failover = event.failover ?? failoverFromJson(event.payload);
      if (failover !== null) this.addFailover(failover);
    }
  }

  /** A failover (an event of the capture, or a row of the store). */
  addFailover(record: FailoverRecord): void {
    this.failoverCount++;
    if (this.failovers.length < MAX_SUMMARY_FAILOVERS) this.failovers.push(record);
  }

  /** Counts `n` equal SIP messages. */
  addSip(m: SipFacts, n: number): void {
    countSipMessage(this.sipCounts, m.method, m.status, m.retransmission, n);
    this.transports[m.transport] = (this.transports[m.transport] ?? 0) + n;
    this.countEndpoint(m.transport, m.srcIp, m.srcPort, n, 0);
    this.countEndpoint(m.transport, m.dstIp, m.dstPort, 0, n);
    const invite = m.method === 'INVITE' ? n : 0;
    const src = this.vm(m.srcVm);
    if (src !== undefined) {
      src.sipSent += n;
      src.invitesSent += invite;
    }
    const dst = this.vm(m.dstVm);
    if (dst !== undefined) {
      dst.sipReceived += n;
      dst.invitesReceived += invite;
    }
  }

  /** Counts a Call-ID by its first MAX_KEY_PART characters, as the capture's state keys it. */
  addCallId(callId: string): void {
    const key = callId.length > MAX_KEY_PART ? callId.slice(0, MAX_KEY_PART) : callId;
    if (this.callIdKeys.has(key)) return;
    if (this.callIdKeys.size < this.maxCallIds) {
      this.callIdKeys.add(ownedKeyPart(key));
      this.callIdCount++;
    } else {
      this.callIdsCapped = true;
      this.bound('distinct Call-IDs', this.maxCallIds);
    }
  }

  /** Distinct Call-IDs counted elsewhere (the store counts them by SQL). */
  setCallIds(count: number, capped: boolean): void {
    this.callIdCount = count;
    this.callIdsCapped = capped;
  }

  /** A stream's final report. */
  addStream(report: MediaStreamReport, srcVm: string | undefined, dstVm: string | undefined): void {
    if (this.streams.length < MAX_SUMMARY_STREAMS) this.streams.push(streamSummary(report));
    else this.streamsOmitted++;
    const src = this.vm(srcVm);
    if (src !== undefined) src.streamsSent++;
    const dst = this.vm(dstVm);
    if (dst !== undefined) dst.streamsReceived++;
  }

  /** Streams counted elsewhere beyond those listed (the store's summary adds the run's). */
  addOmittedStreams(n: number): void {
    this.streamsOmitted += n;
  }

  /** The parts of a summary that come from events. */
  counts(): Pick<AnalyzeSummary, 'vms'> & {
    sip: Omit<AnalyzeSummary['sip'], 'malformed'>;
    rtp: Omit<AnalyzeSummary['rtp'], 'stats'>;
    failovers: Omit<FailoversSummary, 'tracker'>;
  } {
    return {
      sip: {
        messages: this.sipCounts.messages,
        retransmissions: this.sipCounts.retransmissions,
        requests: sortedCounts(this.sipCounts.requests),
        responses: sortedCounts(this.sipCounts.responses),
        callIds: this.callIdCount,
        callIdsCapped: this.callIdsCapped,
        transports: sortedCounts(this.transports),
        endpoints: this.topEndpoints(TOP_ENDPOINTS),
      },
      rtp: {
        streams: [...this.streams].sort((a, b) => a.startTime - b.startTime),
        streamsOmitted: this.streamsOmitted,
      },
      vms: this.vms.size === 0 ? undefined : [...this.vms.values()].sort((a, b) => byText(a.vm, b.vm)),
      failovers: {
        count: this.failoverCount,
        // Reported when their gap is known, not in the order they happened.
        list: [...this.failovers].sort((a, b) => a.time - b.time || byText(a.address, b.address)),
        omitted: this.failoverCount - this.failovers.length,
      },
    };
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}

  stats(): SinkStats {
    return { ...emptySinkStats(), accepted: this.accepted, delivered: this.accepted };
  }

  /** The busiest SIP endpoints, most messages first (ties: address, then first seen). */
  private topEndpoints(limit: number): SipEndpointCounts[] {
    return [...this.endpoints.values()]
      .sort((a, b) => b.sent + b.received - (a.sent + a.received) || (a.ip < b.ip ? -1 : 1))
      .slice(0, limit)
      .map((e) => ({ ...e }));
  }

  private countEndpoint(transport: TransportName, ip: string, port: number, sent: number, received: number) {
    const key = `${transport} ${ip} ${port}`;
    let e = this.endpoints.get(key);
    if (e === undefined) {
      if (this.endpoints.size >= this.maxEndpoints) {
        this.untrackedEndpointMessages += sent + received;
        this.bound('SIP endpoints', this.maxEndpoints);
        return;
      }
      e = { transport, ip, port, sent: 0, received: 0 };
      this.endpoints.set(key, e);
    }
    e.sent += sent;
    e.received += received;
  }

  private vm(id: string | undefined): VmLoad | undefined {
    if (id === undefined || id === '') return undefined;
    let load = this.vms.get(id);
    if (load === undefined) {
      if (this.vms.size >= MAX_COUNTED_VMS) {
        this.untrackedVmEvents++;
        this.bound('VMs', MAX_COUNTED_VMS);
        return undefined;
      }
      load = {
        vm: id,
        sipSent: 0,
        sipReceived: 0,
        invitesSent: 0,
        invitesReceived: 0,
        streamsSent: 0,
        streamsReceived: 0,
      };
      this.vms.set(id, load);
    }
    return load;
  }
}

/**
 * What a capture's summary needs from its events, as sinks to drive beside the others: the counts
 * (SummarySink) and the calls (the call engine); `of(facts)` gives the summary once the source ended.
 */
export class CaptureSummary {
  readonly counts: SummarySink;
  readonly calls: CallAnalysis;
  readonly registrations = new RegistrationTracker();
  readonly probes = new OptionsProbeTracker();
  private readonly trackers = new TrackerSink('registrations', [this.registrations, this.probes]);

  constructor(options: SummarySinkOptions & { calls?: CallAnalysisOptions } = {}) {
    this.counts = new SummarySink(options);
    this.calls = new CallAnalysis({ logger: options.logger, ...options.calls });
  }

  get sinks(): EventSink[] {
    return [this.counts, this.calls.sink, this.trackers];
  }

  async of(facts: CaptureFacts): Promise<AnalyzeSummary> {
    // Whole ms, as the run's lastPacketTime keeps it: the store's summary then closes calls alike.
    const end = facts.lastTimestamp === null ? undefined : Math.trunc(facts.lastTimestamp * 1000);
    return summarize(facts, this.counts, await this.calls.finish(end), this.calls.limits(), {
      registrations: trackedSummary(this.registrations, end),
      probes: trackedSummary(this.probes, end),
    });
  }
}

/** A tracker's summary as of the input's end (capture time, ms). */
export function trackedSummary<S>(tracker: { close(endMs?: number): void; summary(): S }, endMs?: number): S {
  tracker.close(endMs);
  return tracker.summary();
}

/** The summary of a finished capture: its facts, what its events counted, and its calls. */
export function summarize(
  facts: CaptureFacts,
  counted: SummarySink,
  calls: CallsSummary,
  callLimits: CallLimitsReached,
  tracked: Pick<AnalyzeSummary, 'registrations' | 'probes'>,
): AnalyzeSummary {
  const d = facts.decoder;
  const s = facts.sip;
  const first = facts.firstTimestamp;
  const last = facts.lastTimestamp;
  const c = counted.counts();
  const summary: AnalyzeSummary = {
    file: facts.file,
    format: facts.format,
    packets: facts.packets,
    malformedPackets:
      d.malformed + s.malformed + s.malformedHep + facts.malformedRecords + facts.truncatedRecords,
    truncatedPackets: d.truncated,
    firstPacketTime: isoTime(first),
    lastPacketTime: isoTime(last),
    durationSec: first === null || last === null ? 0 : Math.round((last - first) * 1e6) / 1e6,
    sip: { ...c.sip, malformed: s.malformed },
    decode: {
      ipv4: d.ipv4,
      ipv6: d.ipv6,
      udp: d.udp,
      tcp: d.tcp,
      sctp: d.sctp,
      nonIp: d.nonIp,
      tunnelled: { ...d.tunnelled },
      arp: { ...d.arp },
      fragments: facts.fragments,
      tcpStreams: facts.tcpStreams,
      errors: { ...d.errors },
      unsupportedLinkTypes: { ...d.unsupportedLinkTypes },
      truncatedRecords: facts.truncatedRecords,
      fileWarnings: facts.warnings,
    },
    rtp: { ...c.rtp, stats: facts.media },
    elapsedMs: Math.round(facts.elapsedMs * 10) / 10,
    packetsPerSecond: facts.elapsedMs > 0 ? Math.round(facts.packets / (facts.elapsedMs / 1000)) : 0,
    vms: c.vms,
    limits: {
      retransmissionStatesForgotten: facts.retransmissionStatesForgotten,
      endpointMessagesUntracked: counted.untrackedEndpointMessages,
      vmEventsUntracked: counted.untrackedVmEvents,
      callIdsCapped: c.sip.callIdsCapped,
      tcpStreamsEvicted: facts.tcpStreams.evictedStreams,
      sctpMessagesEvicted: facts.sctpMessagesEvicted,
      fragmentsEvicted: facts.fragments.evicted,
      rtpStreamsEvicted: facts.media.streamsEvicted,
      rtpStreamsRefused: facts.media.streamsRefused,
      ...callLimits,
      failoverAddressesForgotten: facts.failover.addressesForgotten,
    },
    calls,
    ...tracked,
    failovers: { ...c.failovers, tracker: { ...facts.failover } },
  };
  if (facts.capture !== undefined) summary.capture = facts.capture;
  return summary;
}

/** The limits that were reached (a positive count, or true), for a warning line; empty when none. */
export function limitsReached(limits: SummaryLimitsReached): Record<string, number | boolean> {
  return Object.fromEntries(
    Object.entries(limits).filter(([, v]) => v === true || (typeof v === 'number' && v > 0)),
  );
}

/** ISO text of a capture time; null when absent or outside what a Date holds (hostile timestamps). */
function isoTime(seconds: number | null): string | null {
  if (seconds === null || !Number.isFinite(seconds) || Math.abs(seconds) > 8.64e12) return null;
  return new Date(seconds * 1000).toISOString();
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Ascending by UTF-16 code units. */
function sortedCounts(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => byText(a, b)));
}

function streamSummary(report: MediaStreamReport): RtpStreamSummary {
  const { kind: _kind, interval: _interval, source: _source, startNs, endNs, ...rest } = report;
  return { ...rest, startNs: startNs.toString(), endNs: endNs.toString() };
}
