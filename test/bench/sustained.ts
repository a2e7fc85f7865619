/**
 * Issue 15's sustained run: SIP at 20,000 messages/s plus RTP (and so the media tracker's quality
 * reports) for `seconds` (default 600; CALLSCOPE_BENCH_SUSTAINED_S overrides) through the single-process
 * pipeline `callscope run --interface` uses (a live-paced source → CapturePipeline → drive's bounded
 * live queue → StoreSink + the summary sinks, the calls table kept current every 2 s) into the embedded
 * store. The process's RSS and heap are sampled every 10 s; at the end the store is counted (FINAL) and
 * compared with what was offered.
 *
 * The traffic: two captures of our generator (capture/generator/), made once and cached in `dir`, held
 * in memory and replayed in real time as overlapping loops, each loop with fresh identities:
 *   - SIP only (16 VMs, the default outcome mix, ~2,900 calls/s): a loop is the span of its call
 *     starts (~2 s); loop k starts at k × period, so the loops overlap (a no-answer call lasts 32 s)
 *     and the rate is steady. Each loop rewrites the first 6 hex digits of every Call-ID (wherever the
 *     Call-ID appears in the message) with the loop number.
 *   - SIP + G.711 RTP (answered calls, 10 s of talk each way, 10 calls/s → ~100 calls and ~200 RTP
 *     streams at once, ~10k RTP packets/s): loop k also rewrites the Call-IDs, XORs every SSRC with a
 *     per-loop constant, and moves the addresses from 10.0.0.N to 10.1.K.N (K = k mod the number of
 *     loops alive at once; IP header checksum recomputed, UDP checksum set to 0 = none), so that the
 *     streams of overlapping loops never share a 5-tuple.
 * Each packet is copied into one reused buffer (as a live reader hands the decoder its ring's bytes),
 * stamped with its scheduled wall-clock time, and handed to the pipeline when that time has come: a
 * real-time pacer. If the process falls behind, the lag is measured (per-tick histogram) and the pace
 * reported as not held; nothing is skipped.
 *
 * Runs in a child process (`node --max-semi-space-size=64 dist/test/bench/sustained.js --child JOB`),
 * so that the RSS sampled is the pipeline's and the store's own (plus the replayed captures, reported
 * as `traceBytes`). `node dist/test/bench/sustained.js [--seconds N] [--json]` runs it alone.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readCaptureFile } from '../../capture/file/reader.js';
import { emptyPacketRecord, LINKTYPE_ETHERNET, type PacketRecord } from '../../capture/file/record.js';
import { generateCapture } from '../../capture/generator/generate.js';
import { CapturePipeline } from '../../capture/pipeline.js';
import type { CaptureFacts } from '../../capture/sources.js';
import { type CaptureEvent, HEP_PROTO_RTP_QOS_JSON, HEP_PROTO_SIP } from '../../core/event.js';
import { tuneRuntime } from '../../core/runtime.js';
import { type EventSink, emptySinkStats } from '../../core/sink.js';
import type { EventSource, SourceOutput } from '../../core/source.js';
import { storeCapture } from '../../ingest/run.js';
import { openStore } from '../../ingest/store/client.js';

export interface SustainedBenchOptions {
  log: (line: string) => void;
  /** Length of the paced run (default 600 s; CALLSCOPE_BENCH_SUSTAINED_S overrides). */
  seconds?: number;
  /** Where the captures are cached and the store is made (removed afterwards). */
  dir: string;
  /** SIP messages per second offered (default 20,000). */
  sipRate?: number;
  /** Keep the calls table current every 2 s as `run --interface` does (default true). */
  callsJob?: boolean;
}

export interface SustainedSample {
  /** Seconds since the paced run started. */
  t: number;
  phase: 'run' | 'finish';
  rssMB: number;
  heapUsedMB: number;
  heapTotalMB: number;
  externalMB: number;
  arrayBuffersMB: number;
  /** SIP events offered so far, and media reports. */
  sipOffered: number;
  mediaOffered: number;
  /** Events the driver handed to the sinks so far (offered − this = waiting in the live queue). */
  toSinks: number;
  /** CPU of this process (all threads, chDB's included) over the last interval, % of one core. */
  cpuPercent: number;
  /** Pacer lag at the sample: wall time − scheduled time of the last packet handed over, ms. */
  lagMs: number;
  loadAverage: number;
}

export interface SustainedFigures {
  skipped: string | null;
  error?: string;
  machine: { cpu: string; cores: number; node: string; loadAverageStart: number; loadAverageEnd: number };
  seconds: number;
  target: { sipPerSecond: number };
  traffic: {
    sipLoopPeriodS: number;
    sipLoopMessages: number;
    rtpLoopPeriodS: number;
    rtpLoopPackets: number;
    rtpAddressVariants: number;
    /** Bytes of the two captures held in memory for the replay (part of the RSS). */
    traceBytes: number;
  };
  offered: {
    packets: number;
    sipPackets: number;
    rtpPackets: number;
    sipEvents: number;
    mediaReports: number;
    otherEvents: number;
    events: number;
  };
  pace: {
    /** SIP events offered per second of the paced run. */
    achievedSipPerSecond: number;
    achievedEventsPerSecond: number;
    /** Per pacer tick: wall time − scheduled time of the oldest packet handed over in it. */
    lagP50Ms: number;
    lagP99Ms: number;
    lagMaxMs: number;
    /** Packets scheduled within the run but not handed over when its time was up. */
    packetsBehindSchedule: number;
    held: boolean;
  };
  stored: {
    /** count() FINAL of each table after the run. */
    sipMessages: number;
    mediaReports: number;
    calls: number;
    /** The store sink's own figures. */
    sinkAccepted: number;
    sinkDelivered: number;
    sinkSkipped: Record<string, number>;
    sinkLost: Record<string, number>;
    /** Live queue: dropped (store too slow) and its peak. */
    droppedEvents: number;
    queuePeak: number;
    batches: number;
    retries: number;
    callsComputedAtEnd: number;
    callsError: string | null;
  };
  /** offered − stored (SIP + media reports); must be 0. */
  lost: number;
  rss: {
    firstMB: number;
    lastMB: number;
    maxMB: number;
    /** Least-squares slope of RSS over the second half of the paced run, MB per minute. */
    slopeMBPerMinSecondHalf: number;
    heapSlopeMBPerMinSecondHalf: number;
    /** Most RSS while the run finished (queue drained, calls of the run rebuilt, run recorded). */
    maxDuringFinishMB: number;
  };
  /** From the end of pacing to storeCapture resolved (drain, flush, calls rebuilt, run stored). */
  finishSeconds: number;
  samples: SustainedSample[];
}

const SAMPLE_MS = 10_000;
const SIP_PORT = 5060;
const MB = 1024 * 1024;

const round = (n: number, digits = 1) => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};
const load = () => round(loadavg()[0] ?? 0, 2);
const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');

// ---------------------------------------------------------------------------------------------------
// The captures, in memory

interface Trace {
  name: string;
  frames: Buffer;
  count: number;
  offset: Uint32Array;
  length: Uint32Array;
  /** Time since the loop's first packet, ns. */
  relNs: Float64Array;
  /** 0 other, 1 SIP, 2 RTP. */
  kind: Uint8Array;
  /** Per packet: Call-ID occurrences to rewrite ([start, end) into patchPos). */
  callIdFrom: Uint32Array;
  callIdTo: Uint32Array;
  /** Per packet: "10.0.0." occurrences in the SIP text ([start, end) into addrPos). */
  addrFrom: Uint32Array;
  addrTo: Uint32Array;
  patchPos: Uint32Array;
  addrPos: Uint32Array;
  ipOffset: Uint16Array;
  udpOffset: Uint16Array;
  periodNs: number;
  durationNs: number;
  /** Loops alive at once + 1: the address variants (RTP trace only; 1 = no address rewrite). */
  variants: number;
  sipPackets: number;
  rtpPackets: number;
}

const CALL_ID = /^(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]+)/gim;

function indexesOf(hay: Buffer, needle: Buffer, from: number, to: number): number[] {
  const out: number[] = [];
  let i = hay.indexOf(needle, from);
  while (i >= 0 && i + needle.length <= to) {
    out.push(i);
    i = hay.indexOf(needle, i + needle.length);
  }
  return out;
}

async function loadTrace(file: string, name: string, rewriteAddresses: boolean): Promise<Trace> {
  const records: Array<{ data: Buffer; ts: number }> = [];
  let bytes = 0;
  let t0 = -1;
  await readCaptureFile(file, (r) => {
    const data = Buffer.from(r.data.subarray(r.offset, r.offset + r.caplen));
    const ts = r.tsSec * 1e9 + r.tsNsec; // ~1.7e18: µs-resolution files keep their digits well enough
    if (t0 < 0) t0 = ts;
    records.push({ data, ts: ts - t0 });
    bytes += data.length;
  });
  const n = records.length;
  const frames = Buffer.alloc(bytes);
  const t: Trace = {
    name,
    frames,
    count: n,
    offset: new Uint32Array(n),
    length: new Uint32Array(n),
    relNs: new Float64Array(n),
    kind: new Uint8Array(n),
    callIdFrom: new Uint32Array(n),
    callIdTo: new Uint32Array(n),
    addrFrom: new Uint32Array(n),
    addrTo: new Uint32Array(n),
    patchPos: new Uint32Array(0),
    addrPos: new Uint32Array(0),
    ipOffset: new Uint16Array(n),
    udpOffset: new Uint16Array(n),
    periodNs: 0,
    durationNs: 0,
    variants: 1,
    sipPackets: 0,
    rtpPackets: 0,
  };
  const patch: number[] = [];
  const addr: number[] = [];
  const addrNeedle = Buffer.from('10.0.0.', 'latin1');
  let at = 0;
  for (let i = 0; i < n; i++) {
    const { data, ts } = records[i];
    data.copy(frames, at);
    t.offset[i] = at;
    t.length[i] = data.length;
    t.relNs[i] = Math.max(0, Math.round(ts / 1000) * 1000); // the files are µs-resolution
    t.callIdFrom[i] = patch.length;
    t.addrFrom[i] = addr.length;
    // Ethernet II (the generator writes untagged frames) / IPv4 / UDP.
    if (data.length >= 42 && data.readUInt16BE(12) === 0x0800 && data[23] === 17) {
      const ip = 14;
      const udp = ip + (data[ip] & 0x0f) * 4;
      t.ipOffset[i] = ip;
      t.udpOffset[i] = udp;
      const sport = data.readUInt16BE(udp);
      const dport = data.readUInt16BE(udp + 2);
      const payload = udp + 8;
      if (sport === SIP_PORT || dport === SIP_PORT) {
        t.kind[i] = 1;
        t.sipPackets++;
        const text = data.toString('latin1', payload);
        CALL_ID.lastIndex = 0;
        const m = CALL_ID.exec(text);
        const callId = m?.[1]?.trim();
        if (callId !== undefined && callId.length >= 6) {
          for (const p of indexesOf(data, Buffer.from(callId, 'latin1'), payload, data.length))
            patch.push(at + p);
        }
        if (rewriteAddresses)
          for (const p of indexesOf(data, addrNeedle, payload, data.length)) addr.push(at + p);
      } else if (data.length >= payload + 12 && data[payload] >> 6 === 2) {
        t.kind[i] = 2;
        t.rtpPackets++;
      }
    }
    t.callIdTo[i] = patch.length;
    t.addrTo[i] = addr.length;
    at += data.length;
  }
  t.patchPos = Uint32Array.from(patch);
  t.addrPos = Uint32Array.from(addr);
  t.durationNs = n > 0 ? t.relNs[n - 1] : 0;
  return t;
}

/**
 * The span of the trace's call starts, extended by one mean gap: the loop period that keeps the call
 * rate steady across loops (the RTP trace has answered calls only: one INVITE each).
 */
function callStartPeriodNs(t: Trace): number {
  let last = 0;
  let invites = 0;
  const invite = Buffer.from('INVITE ', 'latin1');
  for (let i = 0; i < t.count; i++) {
    if (t.kind[i] !== 1) continue;
    const payload = t.offset[i] + t.udpOffset[i] + 8;
    if (t.frames.compare(invite, 0, invite.length, payload, payload + invite.length) === 0) {
      last = t.relNs[i];
      invites++;
    }
  }
  return invites > 1 ? Math.round((last * invites) / (invites - 1) / 1e6) * 1e6 : 1e9;
}

// ---------------------------------------------------------------------------------------------------
// The paced source

const HEX = '0123456789abcdef';

interface Cursor {
  trace: Trace;
  loop: number;
  index: number;
  /** Scheduled offset of the loop's start from the run's start, ns. */
  baseNs: number;
}

interface PaceCounters {
  packets: number;
  sipPackets: number;
  rtpPackets: number;
  sipEvents: number;
  mediaReports: number;
  otherEvents: number;
  /** Wall-clock lag of the latest tick, ms. */
  lastLagMs: number;
  lagHistogram: Uint32Array;
  lagMaxMs: number;
  ticks: number;
  /** Packets scheduled within the run that were not handed over when it ended (behind schedule). */
  behind: number;
}

/** The traces looped in real time into a CapturePipeline: a live source (it cannot wait for the sinks). */
class PacedReplaySource implements EventSource<CaptureFacts> {
  readonly name = 'sustained-replay';
  readonly pace = 'live';
  readonly redelivers = false;
  readonly counters: PaceCounters = {
    packets: 0,
    sipPackets: 0,
    rtpPackets: 0,
    sipEvents: 0,
    mediaReports: 0,
    otherEvents: 0,
    lastLagMs: 0,
    lagHistogram: new Uint32Array(60_001),
    lagMaxMs: 0,
    ticks: 0,
    behind: 0,
  };
  startedAt = 0;
  stoppedAt = 0;

  constructor(
    private readonly traces: readonly Trace[],
    private readonly durationNs: number,
    private readonly onPaceEnd: () => void,
  ) {}

  async run(output: SourceOutput, signal?: AbortSignal): Promise<CaptureFacts> {
    const c = this.counters;
    let batch: CaptureEvent[] = [];
    const pipeline = new CapturePipeline({
      sourceName: this.name,
      isFile: false,
      // `run`'s defaults (bin/flags.ts mediaOptions): heuristic on, 10-s reports, 60-s idle timeout.
      media: { heuristic: true, reportIntervalMs: 10_000, idleTimeoutMs: 60_000 },
      onEvent: (event) => {
        if (event.protoType === HEP_PROTO_SIP) c.sipEvents++;
        else if (event.protoType === HEP_PROTO_RTP_QOS_JSON) c.mediaReports++;
        else c.otherEvents++;
        batch.push(event);
      },
    });
    const scratch = Buffer.alloc(65_536);
    const record: PacketRecord = emptyPacketRecord(scratch);
    record.linkType = LINKTYPE_ETHERNET;
    const startWallMs = Date.now();
    const startSec = Math.floor(startWallMs / 1000);
    const startNsec = (startWallMs - startSec * 1000) * 1e6;
    const t0 = performance.now();
    this.startedAt = t0;
    const nextLoop = this.traces.map(() => 0);
    const cursors: Cursor[] = [];
    const durationNs = this.durationNs;

    const emit = (cur: Cursor): void => {
      const t = cur.trace;
      const i = cur.index;
      const len = t.length[i];
      t.frames.copy(scratch, 0, t.offset[i], t.offset[i] + len);
      const loop = cur.loop;
      // Fresh Call-IDs: the first 6 characters of each occurrence become the loop number in hex.
      for (let p = t.callIdFrom[i]; p < t.callIdTo[i]; p++) {
        const at = t.patchPos[p] - t.offset[i];
        for (let d = 0; d < 6; d++) scratch[at + d] = HEX.charCodeAt((loop >>> (4 * (5 - d))) & 15);
      }
      const kind = t.kind[i];
      if (t.variants > 1 && kind !== 0) {
        const k = loop % t.variants;
        const ip = t.ipOffset[i];
        scratch[ip + 13] = 1;
        scratch[ip + 14] = k;
        scratch[ip + 17] = 1;
        scratch[ip + 18] = k;
        // IPv4 header checksum again; UDP checksum 0 (none) since the pseudo-header changed.
        scratch[ip + 10] = 0;
        scratch[ip + 11] = 0;
        const ihl = (scratch[ip] & 0x0f) * 4;
        let sum = 0;
        for (let o = ip; o < ip + ihl; o += 2) sum += (scratch[o] << 8) | scratch[o + 1];
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
        scratch.writeUInt16BE(~sum & 0xffff, ip + 10);
        scratch.writeUInt16BE(0, t.udpOffset[i] + 6);
        const digit = 0x30 + k;
        for (let p = t.addrFrom[i]; p < t.addrTo[i]; p++) {
          const at = t.addrPos[p] - t.offset[i];
          scratch[at + 3] = 0x31; // 10.0.0.N → 10.1.K.N
          scratch[at + 5] = digit;
        }
        if (kind === 2) {
          const ssrc = t.udpOffset[i] + 8 + 8;
          const x = (Math.imul(loop + 1, 0x9e3779b1) ^ scratch.readUInt32BE(ssrc)) >>> 0;
          scratch.writeUInt32BE(x, ssrc);
        }
      }
      const offsetNs = cur.baseNs + t.relNs[i];
      const total = startNsec + offsetNs;
      const whole = Math.floor(total / 1e9);
      record.data = scratch;
      record.offset = 0;
      record.caplen = len;
      record.origLen = len;
      record.tsSec = startSec + whole;
      record.tsNsec = Math.round(total - whole * 1e9);
      record.number = ++c.packets;
      if (kind === 1) c.sipPackets++;
      else if (kind === 2) c.rtpPackets++;
      pipeline.handle(record);
      if (batch.length > 0) {
        const events = batch;
        batch = [];
        void output.events(events);
      }
    };

    await new Promise<void>((resolve) => {
      const tick = (): void => {
        if (signal?.aborted) {
          resolve();
          return;
        }
        const nowNs = (performance.now() - t0) * 1e6;
        const until = Math.min(nowNs, durationNs);
        // Loops that have started.
        this.traces.forEach((t, s) => {
          while (nextLoop[s] * t.periodNs <= until) {
            cursors.push({ trace: t, loop: nextLoop[s], index: 0, baseNs: nextLoop[s] * t.periodNs });
            nextLoop[s]++;
          }
        });
        // Every packet due, in time order across loops; at most ~50 ms of work before yielding to I/O.
        const budgetEnd = performance.now() + 50;
        let oldest = -1;
        let n = 0;
        for (;;) {
          let best = -1;
          let bestNs = Number.POSITIVE_INFINITY;
          for (let j = 0; j < cursors.length; j++) {
            const cur = cursors[j];
            const at = cur.baseNs + cur.trace.relNs[cur.index];
            if (at < bestNs) {
              bestNs = at;
              best = j;
            }
          }
          if (best < 0 || bestNs > until) break;
          if (oldest < 0) oldest = bestNs;
          const cur = cursors[best];
          emit(cur);
          cur.index++;
          if (cur.index >= cur.trace.count) cursors.splice(best, 1);
          if ((++n & 255) === 0 && performance.now() > budgetEnd) break;
        }
        if (oldest >= 0) {
          const lagMs = Math.max(0, nowNs - oldest) / 1e6;
          c.lastLagMs = lagMs;
          c.lagHistogram[Math.min(c.lagHistogram.length - 1, Math.round(lagMs))]++;
          if (lagMs > c.lagMaxMs) c.lagMaxMs = lagMs;
          c.ticks++;
        }
        // The run ends on the clock: what was scheduled and not handed over by then (the process fell
        // behind) is not offered, and shows as an achieved rate below the target.
        if ((performance.now() - t0) * 1e6 >= durationNs) {
          c.behind = countDue(cursors, durationNs);
          resolve();
          return;
        }
        // The next packet's time (or the next loop's start), at most 10 ms away.
        let nextNs = Number.POSITIVE_INFINITY;
        for (const cur of cursors) nextNs = Math.min(nextNs, cur.baseNs + cur.trace.relNs[cur.index]);
        this.traces.forEach((t, s) => {
          nextNs = Math.min(nextNs, nextLoop[s] * t.periodNs);
        });
        const waitMs = (nextNs - (performance.now() - t0) * 1e6) / 1e6;
        if (waitMs <= 0) setImmediate(tick);
        else setTimeout(tick, Math.min(10, Math.max(1, waitMs)));
      };
      tick();
    });
    this.stoppedAt = performance.now();
    this.onPaceEnd();
    // The end of a capture: streams still open get their final reports (as SIGINT does to `run`).
    pipeline.finish();
    if (batch.length > 0) await output.events(batch);
    return {
      file: this.name,
      format: 'live',
      packets: c.packets,
      malformedRecords: 0,
      truncatedRecords: 0,
      warnings: [],
      firstTimestamp: pipeline.firstTimestamp,
      lastTimestamp: pipeline.lastTimestamp,
      elapsedMs: this.stoppedAt - t0,
      decoder: pipeline.decoderStats,
      fragments: { ...pipeline.decoder.fragments.stats },
      tcpStreams: { ...pipeline.sip.tcpStreams.stats },
      sip: pipeline.sipStats,
      media: { ...pipeline.media.stats },
      retransmissionStatesForgotten: pipeline.sip.retransmissions.evicted,
      sctpMessagesEvicted: pipeline.sip.sctpMessages.stats.evicted,
      failover: pipeline.failover.stats,
    };
  }

  progress() {
    return { packets: this.counters.packets };
  }
}

/** Packets scheduled up to `untilNs` that the cursors have not handed over yet. */
function countDue(cursors: readonly Cursor[], untilNs: number): number {
  let n = 0;
  for (const c of cursors) {
    for (let i = c.index; i < c.trace.count && c.baseNs + c.trace.relNs[i] <= untilNs; i++) n++;
  }
  return n;
}

function percentileOf(histogram: Uint32Array, p: number): number {
  let total = 0;
  for (const v of histogram) total += v;
  if (total === 0) return 0;
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i];
    if (seen >= rank) return i;
  }
  return histogram.length - 1;
}

/** Least-squares slope of y over x (x in seconds) → per minute. */
function slopePerMinute(points: ReadonlyArray<{ x: number; y: number }>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}

// ---------------------------------------------------------------------------------------------------
// The child: the run itself

interface ChildJob {
  sipPcap: string;
  rtpPcap: string;
  storeDir: string;
  seconds: number;
  sipRate: number;
  callsJob: boolean;
}

/** Counts what the driver handed the sinks (beside the store sink, as a test's observer would). */
class CountingSink implements EventSink {
  readonly name = 'bench-counter';
  events = 0;
  async write(events: readonly CaptureEvent[]): Promise<void> {
    this.events += events.length;
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
  stats() {
    return { ...emptySinkStats(), accepted: this.events, delivered: this.events };
  }
}

async function childRun(job: ChildJob, log: (line: string) => void): Promise<SustainedFigures> {
  const loadAverageStart = load();
  const sip = await loadTrace(job.sipPcap, 'sip', false);
  const rtp = await loadTrace(job.rtpPcap, 'rtp', true);
  // The RTP trace: a loop is the span of its call starts; its own SIP is part of the offered rate.
  rtp.periodNs = callStartPeriodNs(rtp);
  rtp.variants = Math.min(9, Math.ceil(rtp.durationNs / rtp.periodNs) + 1);
  const rtpSipRate = rtp.sipPackets / (rtp.periodNs / 1e9);
  sip.periodNs = Math.round((sip.sipPackets / (job.sipRate - rtpSipRate)) * 1e9);
  const traceBytes = sip.frames.length + rtp.frames.length;
  log(
    `  traffic: SIP loop ${fmt(sip.sipPackets)} messages every ${(sip.periodNs / 1e9).toFixed(3)} s (lasting ` +
      `${(sip.durationNs / 1e9).toFixed(1)} s); RTP loop ${fmt(rtp.rtpPackets)} RTP + ${fmt(rtp.sipPackets)} SIP every ` +
      `${(rtp.periodNs / 1e9).toFixed(0)} s (lasting ${(rtp.durationNs / 1e9).toFixed(1)} s, ${rtp.variants} address sets); ` +
      `${(traceBytes / MB).toFixed(0)} MB held for the replay`,
  );

  rmSync(job.storeDir, { recursive: true, force: true });
  const store = await openStore({ dataDir: job.storeDir });
  const database = 'callscope';
  const counter = new CountingSink();
  const samples: SustainedSample[] = [];
  let phase: 'run' | 'finish' = 'run';
  let paceEndedAt = 0;
  const source = new PacedReplaySource([sip, rtp], job.seconds * 1e9, () => {
    paceEndedAt = performance.now();
    phase = 'finish';
  });
  let cpuAt = process.cpuUsage();
  let cpuWall = performance.now();
  const sample = (): SustainedSample => {
    const m = process.memoryUsage();
    const cpu = process.cpuUsage(cpuAt);
    const now = performance.now();
    const cpuPercent = ((cpu.user + cpu.system) / 1000 / Math.max(1, now - cpuWall)) * 100;
    cpuAt = process.cpuUsage();
    cpuWall = now;
    const c = source.counters;
    const s: SustainedSample = {
      t: round((now - (source.startedAt || now)) / 1000, 1),
      phase,
      rssMB: round(m.rss / MB),
      heapUsedMB: round(m.heapUsed / MB),
      heapTotalMB: round(m.heapTotal / MB),
      externalMB: round(m.external / MB),
      arrayBuffersMB: round(m.arrayBuffers / MB),
      sipOffered: c.sipEvents,
      mediaOffered: c.mediaReports,
      toSinks: counter.events,
      cpuPercent: Math.round(cpuPercent),
      lagMs: Math.round(c.lastLagMs),
      loadAverage: load(),
    };
    samples.push(s);
    log(
      `  t=${String(s.t).padStart(5)} s ${s.phase.padEnd(6)} RSS ${s.rssMB.toFixed(0).padStart(5)} MB, heap used ` +
        `${s.heapUsedMB.toFixed(0).padStart(4)} MB (external ${s.externalMB.toFixed(0)} MB); offered ${fmt(s.sipOffered)} SIP + ` +
        `${fmt(s.mediaOffered)} media, not at the sinks (queued or dropped) ${fmt(s.sipOffered + s.mediaOffered + c.otherEvents - s.toSinks)}; ` +
        `CPU ${s.cpuPercent} %, lag ${s.lagMs} ms, load ${s.loadAverage}`,
    );
    return s;
  };
  const timer = setInterval(sample, SAMPLE_MS);
  let result: Awaited<ReturnType<typeof storeCapture>>;
  try {
    result = await storeCapture(source, {
      store,
      database,
      ttlDays: 0,
      sinks: [counter],
      // `callscope run --interface`: the calls table follows the capture (ingestInterface's default).
      callsIntervalMs: job.callsJob ? 2000 : undefined,
    });
  } finally {
    clearInterval(timer);
  }
  const finished = performance.now();
  sample();
  const count = async (table: string): Promise<number> => {
    const rs = await store.client.query({
      query: `SELECT count() AS n FROM ${database}.${table} FINAL`,
      format: 'JSONEachRow',
    });
    const rows = await rs.json<{ n: number | string }>();
    return Number(rows[0]?.n ?? 0);
  };
  const storedSip = await count('sip_messages');
  const storedMedia = await count('media_reports');
  const storedCalls = await count('calls');
  await store.close();
  rmSync(job.storeDir, { recursive: true, force: true });

  const c = source.counters;
  const paceSeconds = Math.max(job.seconds, (source.stoppedAt - source.startedAt) / 1000);
  const runSamples = samples.filter((s) => s.phase === 'run');
  const secondHalf = runSamples.filter((s) => s.t >= job.seconds / 2);
  const achievedSip = c.sipEvents / paceSeconds;
  const lagP99 = percentileOf(c.lagHistogram, 99);
  const figures: SustainedFigures = {
    skipped: null,
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: availableParallelism(),
      node: process.version,
      loadAverageStart,
      loadAverageEnd: load(),
    },
    seconds: job.seconds,
    target: { sipPerSecond: job.sipRate },
    traffic: {
      sipLoopPeriodS: round(sip.periodNs / 1e9, 3),
      sipLoopMessages: sip.sipPackets,
      rtpLoopPeriodS: round(rtp.periodNs / 1e9, 3),
      rtpLoopPackets: rtp.rtpPackets,
      rtpAddressVariants: rtp.variants,
      traceBytes,
    },
    offered: {
      packets: c.packets,
      sipPackets: c.sipPackets,
      rtpPackets: c.rtpPackets,
      sipEvents: c.sipEvents,
      mediaReports: c.mediaReports,
      otherEvents: c.otherEvents,
      events: c.sipEvents + c.mediaReports + c.otherEvents,
    },
    pace: {
      achievedSipPerSecond: Math.round(achievedSip),
      achievedEventsPerSecond: Math.round((c.sipEvents + c.mediaReports + c.otherEvents) / paceSeconds),
      lagP50Ms: percentileOf(c.lagHistogram, 50),
      lagP99Ms: lagP99,
      lagMaxMs: Math.round(c.lagMaxMs),
      packetsBehindSchedule: c.behind,
      held: achievedSip >= 0.99 * job.sipRate && lagP99 <= 1000 && c.behind === 0,
    },
    stored: {
      sipMessages: storedSip,
      mediaReports: storedMedia,
      calls: storedCalls,
      sinkAccepted: result.store.accepted,
      sinkDelivered: result.store.delivered,
      sinkSkipped: result.store.skipped,
      sinkLost: result.store.lost,
      droppedEvents: result.droppedEvents,
      queuePeak: result.queuePeak,
      batches: result.writer.batches,
      retries: result.writer.retries,
      callsComputedAtEnd: result.calls.computed,
      callsError: result.calls.error,
    },
    lost: c.sipEvents + c.mediaReports - storedSip - storedMedia,
    rss: {
      firstMB: runSamples[0]?.rssMB ?? 0,
      lastMB: runSamples[runSamples.length - 1]?.rssMB ?? 0,
      maxMB: Math.max(0, ...runSamples.map((s) => s.rssMB)),
      slopeMBPerMinSecondHalf: round(slopePerMinute(secondHalf.map((s) => ({ x: s.t, y: s.rssMB }))), 2),
      heapSlopeMBPerMinSecondHalf: round(
        slopePerMinute(secondHalf.map((s) => ({ x: s.t, y: s.heapUsedMB }))),
        2,
      ),
      maxDuringFinishMB: Math.max(0, ...samples.filter((s) => s.phase === 'finish').map((s) => s.rssMB)),
    },
    finishSeconds: round((finished - (paceEndedAt || finished)) / 1000, 1),
    samples,
  };
  return figures;
}

// ---------------------------------------------------------------------------------------------------
// The parent: captures, the child, its figures

function machineNow(): SustainedFigures['machine'] {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    node: process.version,
    loadAverageStart: load(),
    loadAverageEnd: load(),
  };
}

/** The SIP-only and the RTP captures (cached in `dir`). */
function captures(
  dir: string,
  sipRate: number,
  log: (line: string) => void,
): { sipPcap: string; rtpPcap: string } {
  mkdirSync(dir, { recursive: true });
  // ~6.8 SIP messages per call with the default mix: a 2-s loop of call starts at the asked rate.
  const sipCalls = Math.round((sipRate * 2) / 6.8);
  const sipPcap = join(dir, `sustained-sip-${sipCalls}calls.pcap`);
  const rtpPcap = join(dir, 'sustained-rtp-50calls-10s.pcap');
  if (!existsSync(sipPcap)) {
    log(`  generating ${sipPcap} ...`);
    generateCapture({
      output: `${sipPcap}.tmp`,
      seed: 15,
      calls: sipCalls,
      callsPerSecond: sipCalls / 2,
      vms: 16,
      rtp: { enabled: false },
    });
    renameSync(`${sipPcap}.tmp`, sipPcap);
  }
  if (!existsSync(rtpPcap)) {
    log(`  generating ${rtpPcap} ...`);
    generateCapture({
      output: `${rtpPcap}.tmp`,
      seed: 16,
      calls: 50,
      callsPerSecond: 10,
      callDurationSec: 10,
      vms: 16,
      outcomes: { answered: 1 },
    });
    renameSync(`${rtpPcap}.tmp`, rtpPcap);
  }
  return { sipPcap, rtpPcap };
}

function secondsOf(options: SustainedBenchOptions): number {
  const env = Number(process.env.CALLSCOPE_BENCH_SUSTAINED_S);
  if (Number.isFinite(env) && env > 0) return env;
  return options.seconds ?? 600;
}

export async function runSustainedBench(options: SustainedBenchOptions): Promise<SustainedFigures> {
  const { log } = options;
  const seconds = secondsOf(options);
  const sipRate = options.sipRate ?? 20_000;
  const failed = (error: string): SustainedFigures =>
    ({ skipped: null, error, machine: machineNow(), seconds, samples: [] }) as unknown as SustainedFigures;
  log(
    `sustained: ${fmt(sipRate)} SIP/s + RTP for ${seconds} s into the embedded store (load average ${load()}, ` +
      `${availableParallelism()} cores)`,
  );
  let files: { sipPcap: string; rtpPcap: string };
  try {
    files = captures(options.dir, sipRate, log);
  } catch (error) {
    return failed(`captures not generated: ${error instanceof Error ? error.message : String(error)}`);
  }
  const job: ChildJob = {
    ...files,
    storeDir: join(options.dir, `sustained-store-${process.pid}`),
    seconds,
    sipRate,
    callsJob: options.callsJob ?? true,
  };
  const script = fileURLToPath(import.meta.url);
  const child = spawn(
    process.execPath,
    ['--max-semi-space-size=64', script, '--child', JSON.stringify(job)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let errTail = '';
  let pending = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    pending += d.toString();
    errTail = (errTail + d.toString()).slice(-4000);
    let nl = pending.indexOf('\n');
    while (nl >= 0) {
      log(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      nl = pending.indexOf('\n');
    }
  });
  const code = await new Promise<number | null>((resolve) => {
    child.on('exit', (c) => resolve(c));
    child.on('error', () => resolve(null));
  });
  const line = out.trim().split('\n').pop() ?? '';
  if (!line.startsWith('{')) return failed(`child exited ${code} without figures: ${errTail.slice(-1500)}`);
  const f = JSON.parse(line) as SustainedFigures;
  if (f.error === undefined) {
    log(
      `  offered ${fmt(f.offered.sipEvents)} SIP events + ${fmt(f.offered.mediaReports)} media reports ` +
        `(${fmt(f.offered.rtpPackets)} RTP packets); stored (FINAL) ${fmt(f.stored.sipMessages)} SIP + ` +
        `${fmt(f.stored.mediaReports)} media; lost ${fmt(f.lost)}; live queue dropped ${fmt(f.stored.droppedEvents)} ` +
        `(peak ${fmt(f.stored.queuePeak)}); calls table ${fmt(f.stored.calls)} rows`,
    );
    log(
      `  pace: ${fmt(f.pace.achievedSipPerSecond)} SIP/s achieved of ${fmt(sipRate)} (${fmt(f.pace.achievedEventsPerSecond)} events/s), ` +
        `lag p50 ${f.pace.lagP50Ms} ms, p99 ${f.pace.lagP99Ms} ms, max ${fmt(f.pace.lagMaxMs)} ms, ` +
        `${fmt(f.pace.packetsBehindSchedule)} packets behind schedule at the end: ${f.pace.held ? 'held' : 'NOT HELD'}`,
    );
    log(
      `  RSS first ${f.rss.firstMB} MB, last ${f.rss.lastMB} MB, max ${f.rss.maxMB} MB; slope over the second half ` +
        `${f.rss.slopeMBPerMinSecondHalf} MB/min (heap used ${f.rss.heapSlopeMBPerMinSecondHalf} MB/min); ` +
        `finishing took ${f.finishSeconds} s (RSS up to ${f.rss.maxDuringFinishMB} MB); load average ` +
        `${f.machine.loadAverageStart} → ${f.machine.loadAverageEnd}`,
    );
  }
  return f;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  tuneRuntime();
  const args = process.argv.slice(2);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  if (args[0] === '--child') {
    childRun(JSON.parse(args[1] ?? '{}') as ChildJob, log)
      .then((f) => process.stdout.write(`${JSON.stringify(f)}\n`))
      .catch((error: unknown) => {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        process.stdout.write(`${JSON.stringify({ skipped: null, error: message, samples: [] })}\n`);
        process.exitCode = 1;
      })
      .finally(() => setTimeout(() => process.exit(), 3000).unref());
  } else {
    const json = args.includes('--json');
    const at = args.indexOf('--seconds');
    const seconds = at >= 0 ? Number(args[at + 1]) : undefined;
    const dir = process.env.CALLSCOPE_BENCH_DIR ?? join(tmpdir(), 'callscope-bench');
    // The samples go to stderr either way (a run is long); --json's object goes to stdout.
    runSustainedBench({ log, seconds, dir })
      .then((f) => {
        if (json) process.stdout.write(`${JSON.stringify(f, null, 2)}\n`);
        if (f.error !== undefined) {
          console.error(`sustained: ${f.error}`);
          process.exitCode = 1;
        }
      })
      .catch((error: unknown) => {
        console.error(error);
        process.exitCode = 1;
      });
  }
}
