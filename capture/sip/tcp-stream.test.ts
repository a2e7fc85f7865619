/**
 * SIP over TCP framing (SipStream) against real calls: the SIP messages of our sample capture and of two
 * public captures are laid out as one TCP byte stream per direction, cut into random segmentations
 * (seeded), and fed through the extractor as packets. Every run must give back every message, byte for
 * byte, in order, stamped with the capture time and packet number of the segment that completes it.
 * A stream that ends inside a message must say so. tshark, when installed, checks that we frame the
 * public SIP-over-TCP capture in the same frames it does.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../core/event.js';
import { ipv4Tcp, rawRecord } from '../../test/fixtures/packets.js';
import { haveTool, SHARED_PCAPS } from '../../test/oracle/tools.js';
import { PacketDecoder } from '../decoder.js';
import { readCaptureFile } from '../file/reader.js';
import { SipExtractor, type SipProblem } from './extractor.js';
import { sipMessageLength } from './framing.js';

const SAMPLE = fileURLToPath(new URL('../sample/calls.pcap', import.meta.url));
const TCP_FIN = 0x01;
const TCP_RST = 0x04;

/** xorshift32: the same cuts for the same seed, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const int = (rand: () => number, n: number) => Math.floor(rand() * n);

/** The SIP messages of a capture as the extractor frames them, per direction in capture order. */
async function messagesPerDirection(file: string): Promise<Buffer[][]> {
  const byDirection = new Map<string, Buffer[]>();
  const extractor = new SipExtractor({
    onEvent: (e) => {
      const key = `${e.srcIp}:${e.srcPort}>${e.dstIp}:${e.dstPort}`;
      const list = byDirection.get(key) ?? [];
      byDirection.set(key, list);
      list.push(Buffer.from(e.payload));
    },
  });
  const decoder = new PacketDecoder(extractor);
  await readCaptureFile(file, (r) => decoder.decode(r));
  extractor.flush();
  // On a stream a message is exactly its Content-Length long: datagrams without one (or with bytes
  // past it) would frame differently, and are left out.
  return [...byDirection.values()]
    .map((list) => list.filter((m) => sipMessageLength(m, 0, m.length) === m.length))
    .filter((list) => list.length > 0);
}

interface Layout {
  stream: Buffer;
  /** Per message: first byte, first body byte, end. */
  starts: number[];
  bodies: number[];
  ends: number[];
}

function layout(messages: Buffer[]): Layout {
  const starts: number[] = [];
  const bodies: number[] = [];
  const ends: number[] = [];
  let at = 0;
  for (const m of messages) {
    const crlf = m.indexOf('\r\n\r\n');
    const body = crlf >= 0 ? crlf + 4 : m.indexOf('\n\n') + 2;
    starts.push(at);
    bodies.push(at + body);
    ends.push(at + m.length);
    at += m.length;
  }
  return { stream: Buffer.concat(messages), starts, bodies, ends };
}

/**
 * Segment lengths covering the stream: single bytes (in bursts), small and large pieces (several messages
 * in one), and cuts placed exactly at the blank line (before it, between its CRLFs, right after it),
 * inside a body, at a message's end, or inside its headers. `singleBytes` makes every segment one byte.
 */
function segmentation(rand: () => number, l: Layout, singleBytes: boolean): number[] {
  const sizes: number[] = [];
  const total = l.stream.length;
  let pos = 0;
  const next = (points: number[]) => points.find((p) => p > pos) ?? total;
  while (pos < total) {
    let size: number;
    if (singleBytes) size = 1;
    else {
      const m = l.ends.findIndex((e) => e > pos);
      switch (int(rand, 8)) {
        case 0: {
          const burst = 1 + int(rand, 60);
          for (let k = 0; k < burst && pos + k < total - 1; k++) sizes.push(1);
          pos = Math.min(pos + burst, total - 1);
          size = 1;
          break;
        }
        case 1:
          size = 1 + int(rand, 40);
          break;
        case 2:
          size = 1 + int(rand, 1500);
          break;
        case 3:
          size = 1000 + int(rand, 5000);
          break;
        case 4: {
          // At the blank line: before its CRLF CRLF, between the two, or right after (body start).
          const back = [4, 2, 0][int(rand, 3)];
          size = next(l.bodies.map((b) => b - back)) - pos;
          break;
        }
        case 5: {
          const b = l.bodies[m];
          const e = l.ends[m];
          size = (e - b > 1 && b > pos ? b + 1 + int(rand, e - b - 1) : e) - pos;
          break;
        }
        case 6:
          size = next(l.ends) - pos;
          break;
        default: {
          // Inside the header section of the current or next message.
          const s = Math.max(pos, l.starts[m]);
          size = s + 1 + int(rand, Math.max(1, l.bodies[m] - s - 1)) - pos;
        }
      }
    }
    size = Math.max(1, Math.min(size, total - pos));
    sizes.push(size);
    pos += size;
  }
  return sizes;
}

interface Segment {
  direction: number;
  start: number;
  end: number;
  fin: boolean;
}

interface Expected {
  payload: Buffer;
  packetNumber: number;
  timestampNs: bigint;
}

const timeOf = (n: number) => ({
  tsSec: 1_700_000_000 + Math.floor(n / 1000),
  tsNsec: (n % 1000) * 1_000_000 + 7,
});
const nsOf = (n: number) => {
  const t = timeOf(n);
  return BigInt(t.tsSec) * 1_000_000_000n + BigInt(t.tsNsec);
};

/** Direction d's endpoints: distinct addresses so every direction is its own connection. */
const endpointOf = (d: number) => ({
  src: 0x0a010000 + d,
  dst: 0x0a020000 + d,
  srcPort: 20000 + d,
  dstPort: 5060,
});
const keyOf = (d: number) => `10.1.${d >> 8}.${d & 255}:${20000 + d}>10.2.${d >> 8}.${d & 255}:5060`;

interface Run {
  events: CaptureEvent[];
  problems: SipProblem[];
  extractor: SipExtractor;
}

/** Feeds the segments (in this order, one packet each) through a fresh extractor, then ends the capture. */
function feed(layouts: Layout[], segments: Segment[], isns: number[]): Run {
  const events: CaptureEvent[] = [];
  const problems: SipProblem[] = [];
  const extractor = new SipExtractor({ onEvent: (e) => events.push(e), onProblem: (p) => problems.push(p) });
  const decoder = new PacketDecoder(extractor);
  segments.forEach((s, i) => {
    const number = i + 1;
    const packet = ipv4Tcp(layouts[s.direction].stream.subarray(s.start, s.end), {
      ...endpointOf(s.direction),
      seq: (isns[s.direction] + s.start) >>> 0,
    });
    if (s.fin) packet[20 + 13] |= TCP_FIN;
    const t = timeOf(number);
    const record = rawRecord(packet, number, t.tsSec);
    record.tsNsec = t.tsNsec;
    decoder.decode(record);
  });
  extractor.flush();
  return { events, problems, extractor };
}

/** One random run over the directions; returns a description of the first fault, or null. */
function check(directions: Buffer[][], seed: number, singleBytes: boolean): string | null {
  const rand = prng(seed);
  const layouts = directions.map(layout);
  const perDirection = layouts.map((l) => segmentation(rand, l, singleBytes));
  // Directions interleave at random, each keeping its own order.
  const cursor = perDirection.map(() => ({ index: 0, at: 0 }));
  const segments: Segment[] = [];
  const finStyle = int(rand, 3); // 0: flush at end of capture, 1: FIN on the last data segment, 2: bare FIN
  for (let left = perDirection.reduce((n, s) => n + s.length, 0); left > 0; left--) {
    let d = int(rand, perDirection.length);
    while (cursor[d].index >= perDirection[d].length) d = (d + 1) % perDirection.length;
    const c = cursor[d];
    const size = perDirection[d][c.index++];
    const last = c.index === perDirection[d].length;
    segments.push({ direction: d, start: c.at, end: c.at + size, fin: last && finStyle === 1 });
    c.at += size;
    if (last && finStyle === 2) segments.push({ direction: d, start: c.at, end: c.at, fin: true });
  }
  const isns = layouts.map(() => int(rand, 0x100000000));
  const { events, problems, extractor } = feed(layouts, segments, isns);

  const expected: Expected[][] = layouts.map(() => []);
  segments.forEach((s, i) => {
    const l = layouts[s.direction];
    l.ends.forEach((e, k) => {
      if (e > s.start && e <= s.end) {
        expected[s.direction].push({
          payload: directions[s.direction][k],
          packetNumber: i + 1,
          timestampNs: nsOf(i + 1),
        });
      }
    });
  });
  const where = `seed ${seed}${singleBytes ? ' (single bytes)' : ''}`;
  for (let d = 0; d < layouts.length; d++) {
    const got = events.filter((e) => `${e.srcIp}:${e.srcPort}>${e.dstIp}:${e.dstPort}` === keyOf(d));
    const want = expected[d];
    for (let k = 0; k < Math.max(got.length, want.length); k++) {
      const g = got[k];
      const w = want[k];
      if (!g) return `${where}: direction ${d} lost message ${k} of ${want.length}`;
      if (!w) return `${where}: direction ${d} framed ${got.length} messages, ${want.length} sent`;
      if (!g.payload.equals(w.payload))
        return `${where}: direction ${d} message ${k}: bytes differ (${g.payload.length} vs ${w.payload.length})`;
      if (g.source?.packetNumber !== w.packetNumber || g.timestampNs !== w.timestampNs)
        return `${where}: direction ${d} message ${k}: framed at packet ${g.source?.packetNumber}, completed by ${w.packetNumber}`;
    }
  }
  const stats = extractor.stats;
  if (stats.streamTruncated !== 0 || stats.streamResyncs !== 0 || stats.streamOverflows !== 0)
    return `${where}: stream stats ${JSON.stringify(stats)}`;
  const streamProblem = problems.find((p) => p.kind !== 'sip-warning');
  if (streamProblem) return `${where}: ${streamProblem.kind}: ${streamProblem.message}`;
  return null;
}

function runs(directions: Buffer[][], seeds: number, singleBytes: boolean): void {
  expect(directions.length).toBeGreaterThan(0);
  for (let seed = 1; seed <= seeds; seed++) expect(check(directions, seed, singleBytes)).toBeNull();
}

describe('SIP over TCP framed from any segmentation (sample capture)', () => {
  it('frames every message at the segment that completes it, in order, bytes intact', async () => {
    const directions = await messagesPerDirection(SAMPLE);
    expect(directions.flat().length).toBeGreaterThan(200);
    runs(directions, 25, false);
  });

  it('frames one-byte segments', async () => {
    // The first calls only: one packet per byte of the whole capture is slow and proves nothing more.
    const directions = (await messagesPerDirection(SAMPLE)).map((list) => list.slice(0, 6));
    runs(directions, 1, true);
  });
});

describe.skipIf(!SHARED_PCAPS)('SIP over TCP framed from any segmentation (public captures)', () => {
  it.each(['sip_ipv4_tcp.pcap', 'sip_ipv4_tcp_retrans.pcap'])('%s', async (file) => {
    const directions = await messagesPerDirection(join(SHARED_PCAPS ?? '', file));
    expect(directions.flat().length).toBeGreaterThanOrEqual(7);
    runs(directions, 60, false);
    runs(directions, 1, true);
  });
});

describe('a TCP stream that ends inside a SIP message', () => {
  const message = (callId: string, body: string) =>
    Buffer.from(
      [
        'INVITE sip:bob@example.com SIP/2.0',
        'Via: SIP/2.0/TCP 10.1.0.0:20000;branch=z9hG4bK1',
        'From: <sip:alice@example.com>;tag=1',
        'To: <sip:bob@example.com>',
        `Call-ID: ${callId}`,
        'CSeq: 1 INVITE',
        'Content-Type: application/sdp',
        `Content-Length: ${body.length}`,
        '',
        body,
      ].join('\r\n'),
      'latin1',
    );
  const body =
    'v=0\r\no=- 1 1 IN IP4 10.1.0.0\r\ns=-\r\nc=IN IP4 10.1.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n';
  const first = message('complete@example.com', body);
  const second = message('cut@example.com', body);
  const l = layout([first, second]);

  /**
   * Sends the stream up to `cut` as three segments, then an empty one with `flags` (FIN or RST) if
   * given, then ends the capture.
   */
  const endAt = (cut: number, flags = 0) => {
    const cuts = [0, first.length - 10, first.length + 20, cut];
    const events: CaptureEvent[] = [];
    const problems: SipProblem[] = [];
    const extractor = new SipExtractor({
      onEvent: (e) => events.push(e),
      onProblem: (p) => problems.push(p),
    });
    const decoder = new PacketDecoder(extractor);
    for (let i = 0; i < cuts.length - (flags === 0 ? 1 : 0); i++) {
      const start = cuts[i];
      const end = cuts[i + 1] ?? start;
      const packet = ipv4Tcp(l.stream.subarray(start, end), { ...endpointOf(0), seq: 1000 + start });
      if (end === start) packet[20 + 13] |= flags;
      decoder.decode(rawRecord(packet, i + 1, 1_700_000_000 + i));
    }
    const ended = problems.length;
    extractor.flush();
    return { events, problems, extractor, endedBeforeFlush: ended };
  };

  it('counts and reports the lost bytes with the Call-ID once the headers are in', () => {
    const cut = l.bodies[1] + 10;
    const { events, problems, extractor } = endAt(cut);
    expect(events.map((e) => e.sip?.callId)).toEqual(['complete@example.com']);
    expect(extractor.stats.streamTruncated).toBe(1);
    expect(extractor.stats.streamTruncatedBytes).toBe(cut - first.length);
    expect(problems).toEqual([
      {
        kind: 'stream-truncated',
        message: expect.stringContaining(`${cut - first.length} bytes`),
        packetNumber: 3,
        transport: 'tcp',
        src: '10.1.0.0:20000',
        dst: '10.2.0.0:5060',
        callId: 'cut@example.com',
      },
    ]);
  });

  it('reports a message cut inside its headers, without a Call-ID', () => {
    const { problems, extractor } = endAt(l.bodies[1] - 30);
    expect(extractor.stats.streamTruncated).toBe(1);
    expect(problems.map((p) => [p.kind, p.packetNumber, p.callId])).toEqual([
      ['stream-truncated', 3, undefined],
    ]);
  });

  it.each([
    ['FIN', TCP_FIN],
    ['RST', TCP_RST],
  ])('reports it when %s ends the stream, not only at the end of the capture', (_name, flags) => {
    const { problems, extractor, endedBeforeFlush } = endAt(l.bodies[1] + 10, flags);
    expect(endedBeforeFlush).toBe(1);
    expect(extractor.stats.streamTruncated).toBe(1);
    expect(problems[0].callId).toBe('cut@example.com');
  });

  it('says nothing when the stream ends between messages', () => {
    const { events, problems, extractor } = endAt(l.ends[1], TCP_FIN);
    expect(events.length).toBe(2);
    expect(extractor.stats.streamTruncated).toBe(0);
    expect(problems).toEqual([]);
  });
});

const haveTshark = haveTool('tshark');
const inCi = process.env.CI === 'true';

describe.skipIf(!SHARED_PCAPS)('tshark frames sip_ipv4_tcp.pcap as we do', () => {
  // CI installs tshark: there a missing tshark is a failure, not a skip.
  it.skipIf(!haveTshark && !inCi)('every SIP message tshark sees, in the same frame', async () => {
    if (!haveTshark) throw new Error('tshark is not installed (CI=true requires it)');
    const file = join(SHARED_PCAPS ?? '', 'sip_ipv4_tcp.pcap');
    const out = execFileSync(
      'tshark',
      ['-r', file, '-Y', 'sip', '-T', 'fields', '-e', 'frame.number', '-e', 'sip.Call-ID'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const theirs = out
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => line.split('\t').join(' '));
    const ours: string[] = [];
    const extractor = new SipExtractor({
      onEvent: (e) => ours.push(`${e.source?.packetNumber} ${e.sip?.callId}`),
    });
    const decoder = new PacketDecoder(extractor);
    await readCaptureFile(file, (r) => decoder.decode(r));
    extractor.flush();
    expect(theirs.length).toBe(7);
    expect(ours).toEqual(theirs);
  });
});
