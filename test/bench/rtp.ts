/**
 * The RTP part of `npm run bench` (see run.ts and docs/PERFORMANCE.md):
 *   - the media tracker's speed on the bench file's RTP, from packets read into memory once: decode
 *     only, decode + tracker, and the tracker alone on packets decoded beforehand;
 *   - memory per active stream (run in a child started with --expose-gc: `node --expose-gc rtp.js
 *     --state N` prints JSON);
 *   - speed with 100 against 20,000 concurrent streams (synthetic RTP, same packet count).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeHeapSnapshot } from 'node:v8';
import { PacketDecoder } from '../../capture/decoder.js';
import { readCaptureFile } from '../../capture/file/reader.js';
import { emptyPacketRecord, type PacketRecord } from '../../capture/file/record.js';
import { DecodedPacket } from '../../capture/packet.js';
import { type MediaStats, MediaTracker } from '../../capture/rtp/media.js';
import { looksLikeSip } from '../../capture/sip/detect.js';
import { tuneRuntime } from '../../core/runtime.js';

/** Best wall time of `runs` timed calls after `warm` untimed ones; the value of the last call. */
export function bestSync<T>(runs: number, warm: number, fn: () => T): { seconds: number; value: T } {
  for (let i = 0; i < warm; i++) fn();
  let seconds = Number.POSITIVE_INFINITY;
  let value!: T;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    value = fn();
    seconds = Math.min(seconds, (performance.now() - t0) / 1000);
  }
  return { seconds, value };
}

/**
 * The file's UDP datagrams that are not SIP (the ones the pipeline hands to the media tracker), as
 * frames copied into one buffer, plus what the decoder made of each (to feed the tracker without it).
 */
export interface RtpCorpus {
  count: number;
  frames: Buffer;
  // Per frame, as the file record gave it.
  offset: Float64Array;
  caplen: Uint32Array;
  tsSec: Float64Array;
  tsNsec: Uint32Array;
  number: Uint32Array;
  linkType: Uint16Array;
  // Per frame, as the decoder left DecodedPacket (offsets into `frames`).
  ipVersion: Uint8Array;
  /** 32 bytes per frame: source address (16), destination address (16). */
  addrs: Uint8Array;
  srcPort: Uint16Array;
  dstPort: Uint16Array;
  payloadOffset: Float64Array;
  payloadEnd: Float64Array;
  /** Outer VLAN id, -1 without one. */
  vlan: Int32Array;
}

export async function loadRtpCorpus(file: string): Promise<RtpCorpus> {
  const frames = Buffer.allocUnsafe(statSync(file).size);
  const offset: number[] = [];
  const caplen: number[] = [];
  const tsSec: number[] = [];
  const tsNsec: number[] = [];
  const number: number[] = [];
  const linkType: number[] = [];
  let pos = 0;
  const collector = new PacketDecoder({
    udp: (p, r) => {
      if (p.reassembled || looksLikeSip(p.buf, p.payloadOffset, p.payloadEnd)) return;
      r.data.copy(frames, pos, r.offset, r.offset + r.caplen);
      offset.push(pos);
      caplen.push(r.caplen);
      tsSec.push(r.tsSec);
      tsNsec.push(r.tsNsec);
      number.push(r.number);
      linkType.push(r.linkType);
      pos += r.caplen;
    },
    tcp: () => {},
    sctp: () => {},
  });
  await readCaptureFile(file, (r) => collector.decode(r));
  const count = offset.length;
  const c: RtpCorpus = {
    count,
    frames,
    offset: Float64Array.from(offset),
    caplen: Uint32Array.from(caplen),
    tsSec: Float64Array.from(tsSec),
    tsNsec: Uint32Array.from(tsNsec),
    number: Uint32Array.from(number),
    linkType: Uint16Array.from(linkType),
    ipVersion: new Uint8Array(count),
    addrs: new Uint8Array(count * 32),
    srcPort: new Uint16Array(count),
    dstPort: new Uint16Array(count),
    payloadOffset: new Float64Array(count),
    payloadEnd: new Float64Array(count),
    vlan: new Int32Array(count),
  };
  // Decode the copies once more and keep what the tracker reads of DecodedPacket.
  let i = 0;
  const predecoder = new PacketDecoder({
    udp: (p) => {
      if (p.buf !== frames) throw new Error('bench: RTP frame decoded out of place');
      c.ipVersion[i] = p.ipVersion;
      c.addrs.set(p.src, i * 32);
      c.addrs.set(p.dst, i * 32 + 16);
      c.srcPort[i] = p.srcPort;
      c.dstPort[i] = p.dstPort;
      c.payloadOffset[i] = p.payloadOffset;
      c.payloadEnd[i] = p.payloadEnd;
      c.vlan[i] = p.vlanCount > 0 ? p.vlans[0] : -1;
    },
    tcp: () => {},
    sctp: () => {},
  });
  const record = emptyPacketRecord(frames);
  for (; i < count; i++) {
    setRecord(c, i, record);
    predecoder.decode(record);
  }
  return c;
}

function setRecord(c: RtpCorpus, i: number, r: PacketRecord): void {
  r.offset = c.offset[i];
  r.caplen = c.caplen[i];
  r.origLen = c.caplen[i];
  r.tsSec = c.tsSec[i];
  r.tsNsec = c.tsNsec[i];
  r.number = c.number[i];
  r.linkType = c.linkType[i];
}

/** Decoder only, handler does nothing: the part of "decode + tracker" that is not the tracker. */
export function decodeOnly(c: RtpCorpus): number {
  let udp = 0;
  const decoder = new PacketDecoder({ udp: () => void udp++, tcp: () => {}, sctp: () => {} });
  const record = emptyPacketRecord(c.frames);
  for (let i = 0; i < c.count; i++) {
    setRecord(c, i, record);
    decoder.decode(record);
  }
  return udp;
}

/**
 * Statistics and quality on, reports built and handed to a consumer that drops them; streams found by
 * the header heuristic (the SIP, with its SDP, is not fed here).
 */
function newTracker(maxCandidates?: number): MediaTracker {
  return new MediaTracker({ heuristic: true, maxCandidates, onReport: () => {} });
}

/** Decoder + tracker as the pipeline runs them for a non-SIP datagram (tick, decode, udp; finish). */
export function decodeAndTrack(c: RtpCorpus): MediaStats {
  const t = newTracker();
  const decoder = new PacketDecoder({ udp: (p, r) => void t.udp(p, r), tcp: () => {}, sctp: () => {} });
  const record = emptyPacketRecord(c.frames);
  for (let i = 0; i < c.count; i++) {
    setRecord(c, i, record);
    t.tick(record);
    decoder.decode(record);
  }
  t.finish();
  return t.stats;
}

/** Copies the corpus's decoded fields of packet i into `p` (what PacketDecoder would have left). */
function rehydrate(c: RtpCorpus, i: number, p: DecodedPacket): void {
  const v = c.ipVersion[i];
  p.ipVersion = v as 4 | 6;
  const a = c.addrs;
  const base = i * 32;
  const n = v === 6 ? 16 : 4;
  for (let k = 0; k < n; k++) {
    p.src[k] = a[base + k];
    p.dst[k] = a[base + 16 + k];
  }
  p.srcPort = c.srcPort[i];
  p.dstPort = c.dstPort[i];
  p.payloadOffset = c.payloadOffset[i];
  p.payloadEnd = c.payloadEnd[i];
  const vlan = c.vlan[i];
  p.vlanCount = vlan >= 0 ? 1 : 0;
  if (vlan >= 0) p.vlans[0] = vlan;
}

/** The tracker alone, on packets decoded beforehand (tick, udp; finish). */
export function trackOnly(c: RtpCorpus): MediaStats {
  const t = newTracker();
  const p = new DecodedPacket();
  p.reset(c.frames);
  p.ipProtocol = 17;
  const record = emptyPacketRecord(c.frames);
  for (let i = 0; i < c.count; i++) {
    setRecord(c, i, record);
    rehydrate(c, i, p);
    t.tick(record);
    t.udp(p, record);
  }
  t.finish();
  return t.stats;
}

// ---- Synthetic streams: N concurrent G.711 streams, 20 ms packets, interleaved round-robin. ----

const RTP_BYTES = 12 + 160;
const PTIME_NS = 20_000_000;
/**
 * Packets are written into a ring of this many slots whatever the stream count, so the packet bytes
 * are as cold (or warm) in the CPU cache with 100 streams as with 20,000: only the tracker's own state
 * differs between the two.
 */
const RING = 20_000;

/**
 * N streams between distinct IPv4 endpoints and ports with random-looking SSRCs (as real ones are),
 * G.711 (PT 0), 20 ms of audio per packet. `next()` writes the next packet's RTP header into the ring
 * and hands it to the tracker; capture time advances 20 ms per round, the streams spread evenly
 * within a round.
 */
class SyntheticStreams {
  readonly buf = Buffer.alloc(RING * RTP_BYTES, 0xff);
  readonly p = new DecodedPacket();
  readonly record: PacketRecord;
  private round = 0;
  private stream = 0;
  private slot = 0;
  private readonly start = 1_800_000_000;

  constructor(readonly n: number) {
    this.p.reset(this.buf);
    this.p.ipVersion = 4;
    this.p.ipProtocol = 17;
    this.record = emptyPacketRecord(this.buf);
    this.record.linkType = 1;
  }

  /** Feeds the next packet (stream by stream, round by round) to `t`. */
  next(t: MediaTracker): void {
    const i = this.stream;
    const r = this.round;
    const o = this.slot * RTP_BYTES;
    if (++this.slot === RING) this.slot = 0;
    const buf = this.buf;
    const seq = r & 0xffff;
    const ts = (r * 160) >>> 0;
    const ssrc = Math.imul(i + 1, 0x9e3779b1) >>> 0;
    buf[o] = 0x80;
    buf[o + 1] = 0;
    buf[o + 2] = seq >> 8;
    buf[o + 3] = seq & 0xff;
    buf[o + 4] = ts >>> 24;
    buf[o + 5] = (ts >>> 16) & 0xff;
    buf[o + 6] = (ts >>> 8) & 0xff;
    buf[o + 7] = ts & 0xff;
    buf[o + 8] = ssrc >>> 24;
    buf[o + 9] = (ssrc >>> 16) & 0xff;
    buf[o + 10] = (ssrc >>> 8) & 0xff;
    buf[o + 11] = ssrc & 0xff;
    const p = this.p;
    // 10.1.x.y:10000+2k → 10.2.x.y:20000+2k (x.y from i, k = i mod 20000): distinct for every i.
    p.src[0] = 10;
    p.src[1] = 1;
    p.src[2] = (i >> 8) & 0xff;
    p.src[3] = i & 0xff;
    p.dst[0] = 10;
    p.dst[1] = 2 + (i >> 16);
    p.dst[2] = (i >> 8) & 0xff;
    p.dst[3] = i & 0xff;
    p.srcPort = 10000 + 2 * (i % 20000);
    p.dstPort = 20000 + 2 * (i % 20000);
    p.payloadOffset = o;
    p.payloadEnd = o + RTP_BYTES;
    const ns = r * PTIME_NS + Math.floor((i * PTIME_NS) / this.n);
    const rec = this.record;
    rec.tsSec = this.start + Math.floor(ns / 1e9);
    rec.tsNsec = ns % 1e9;
    rec.number++;
    t.tick(rec);
    t.udp(p, rec);
    if (++this.stream === this.n) {
      this.stream = 0;
      this.round++;
    }
  }
}

/** Room for every stream on probation at once: the round-robin start puts all N there together. */
function syntheticTracker(n: number): MediaTracker {
  return newTracker(2 * n + 2);
}

/**
 * Packets/s through the tracker with `streams` concurrent streams: a fresh tracker, rounds enough for
 * every stream to pass probation (untimed), then `packets` timed packets round-robin.
 */
export function concurrentRun(streams: number, packets: number): { seconds: number; rtpPackets: number } {
  const t = syntheticTracker(streams);
  const src = new SyntheticStreams(streams);
  for (let k = 0; k < streams * 5; k++) src.next(t);
  if (t.activeStreams !== streams) throw new Error(`bench: ${t.activeStreams} of ${streams} streams started`);
  const before = t.stats.rtpPackets;
  const t0 = performance.now();
  for (let k = 0; k < packets; k++) src.next(t);
  const seconds = (performance.now() - t0) / 1000;
  if (t.activeStreams !== streams) throw new Error(`bench: ${t.activeStreams} of ${streams} streams left`);
  return { seconds, rtpPackets: t.stats.rtpPackets - before };
}

export interface ScalingResult {
  packets: number;
  fewStreams: number;
  manyStreams: number;
  fewPacketsPerSec: number;
  manyPacketsPerSec: number;
  /** many / few: 1 = no slowdown. */
  ratio: number;
}

/** Best of `runs` for each side, alternating few and many so machine drift falls on both. */
export function scaling(few: number, many: number, packets: number, runs = 3): ScalingResult {
  // Warm both shapes once, untimed.
  concurrentRun(few, Math.min(packets, 200_000));
  concurrentRun(many, Math.min(packets, 200_000));
  let a = Number.POSITIVE_INFINITY;
  let b = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    a = Math.min(a, concurrentRun(few, packets).seconds);
    b = Math.min(b, concurrentRun(many, packets).seconds);
  }
  const fewPps = Math.round(packets / a);
  const manyPps = Math.round(packets / b);
  return {
    packets,
    fewStreams: few,
    manyStreams: many,
    fewPacketsPerSec: fewPps,
    manyPacketsPerSec: manyPps,
    ratio: Math.round((manyPps / fewPps) * 100) / 100,
  };
}

export interface StateResult {
  streams: number;
  /** Packets each stream had received when measured. */
  packetsPerStream: number;
  /** V8 heap growth per stream after a full GC (objects, Map entries, boxed numbers). */
  heapBytesPerStream: number;
  /** ArrayBuffer backing stores per stream (typed arrays too large to live in the V8 heap). */
  arrayBufferBytesPerStream: number;
  /** The two together: what the "≤ 1 KB per active stream" is checked against. */
  bytesPerStream: number;
  /**
   * Resident set growth per stream: also counts heap V8 committed but does not use (its young
   * generation grows while the streams are created) and malloc overhead; noisy, for orientation only.
   */
  rssBytesPerStream: number;
}

/** Bytes per stream by V8 heap node (constructor name, or `(type) name` for internal nodes). */
export type HeapBreakdown = { node: string; count: number; bytesPerStream: number }[];

/** Self sizes of a heap snapshot's nodes summed by constructor/type name. */
function heapCensus(): Map<string, { count: number; bytes: number }> {
  const path = writeHeapSnapshot(join(tmpdir(), `callscope-bench-${process.pid}.heapsnapshot`));
  const snap = JSON.parse(readFileSync(path, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  rmSync(path);
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const out = new Map<string, { count: number; bytes: number }>();
  for (let n = 0; n < snap.nodes.length; n += width) {
    const type = types[snap.nodes[n + iType]];
    const name = type === 'object' ? snap.strings[snap.nodes[n + iName]] : `(${type})`;
    const e = out.get(name) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += snap.nodes[n + iSize];
    out.set(name, e);
  }
  return out;
}

/** Needs global.gc (node --expose-gc). Streams stay active: every one sends in every round. */
export function statePerStream(
  streams: number,
  rounds = 60,
  breakdown = false,
): StateResult & { breakdown?: HeapBreakdown } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('bench: run with node --expose-gc');
  const src = new SyntheticStreams(streams);
  const t = syntheticTracker(streams);
  // One untimed stream elsewhere first so the tracker's tables and code exist before the baseline.
  const warm = new SyntheticStreams(1);
  const w = syntheticTracker(1);
  for (let k = 0; k < 10; k++) warm.next(w);
  gc();
  gc();
  const m0 = process.memoryUsage();
  const census0 = breakdown ? heapCensus() : null;
  for (let k = 0; k < streams * rounds; k++) src.next(t);
  gc();
  gc();
  const m1 = process.memoryUsage();
  let diff: HeapBreakdown | undefined;
  if (census0 !== null) {
    diff = [];
    for (const [node, after] of heapCensus()) {
      const before = census0.get(node) ?? { count: 0, bytes: 0 };
      const bytes = after.bytes - before.bytes;
      if (Math.abs(bytes) >= streams * 4) {
        diff.push({ node, count: after.count - before.count, bytesPerStream: Math.round(bytes / streams) });
      }
    }
    diff.sort((x, y) => y.bytesPerStream - x.bytesPerStream);
  }
  if (t.activeStreams !== streams) throw new Error(`bench: ${t.activeStreams} of ${streams} streams active`);
  const heap = (m1.heapUsed - m0.heapUsed) / streams;
  const ab = (m1.arrayBuffers - m0.arrayBuffers) / streams;
  // Keep the tracker and the packets alive until after the measurement.
  if (t.stats.rtpPackets === 0 || src.buf.length === 0 || warm.buf.length === 0 || w.activeStreams !== 1)
    throw new Error('bench: nothing fed');
  return {
    streams,
    packetsPerStream: rounds,
    heapBytesPerStream: Math.round(heap),
    arrayBufferBytesPerStream: Math.round(ab),
    bytesPerStream: Math.round(heap + ab),
    rssBytesPerStream: Math.round((m1.rss - m0.rss) / streams),
    ...(diff ? { breakdown: diff } : {}),
  };
}

/** Runs statePerStream in a fresh `node --expose-gc` so nothing else in the heap moves the figure. */
export function statePerStreamInChild(streams: number): StateResult {
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', fileURLToPath(import.meta.url), '--state', String(streams)],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`bench: state child failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as StateResult;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  tuneRuntime();
  const i = process.argv.indexOf('--state');
  if (i < 0) {
    process.stderr.write('usage: node --expose-gc dist/test/bench/rtp.js --state STREAMS [--breakdown]\n');
    process.exitCode = 2;
  } else {
    const n = Number(process.argv[i + 1] ?? 20_000);
    const result = statePerStream(n, 60, process.argv.includes('--breakdown'));
    process.stdout.write(`${JSON.stringify(result, null, process.argv.includes('--breakdown') ? 1 : 0)}\n`);
  }
}
