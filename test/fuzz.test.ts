import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import { MAX_COUNTED_CALL_IDS, SummarySink } from '../analyze/summary.js';
import { PcapWriter } from '../capture/file/pcap-writer.js';
import { readCaptureFile } from '../capture/file/reader.js';
import { LINKTYPE_ETHERNET, LINKTYPE_RAW, type PacketRecord } from '../capture/file/record.js';
import { arpExchange, gratuitousArp } from '../capture/generator/arp.js';
import { makeHost } from '../capture/generator/frames.js';
import { Rng } from '../capture/generator/random.js';
import { CapturePipeline } from '../capture/pipeline.js';
import { createLogger } from '../core/log.js';
import { ipv4Header, ipv4Tcp, ipv4Udp, rawRecord } from './fixtures/packets.js';
import { removeTmpDir, SHARED_PCAPS, tmpDir } from './oracle/tools.js';

const SAMPLE = new URL('../capture/sample/calls.pcap', import.meta.url).pathname;

interface Seed {
  bytes: Buffer;
  linkType: number;
}

async function loadSeeds(): Promise<Seed[]> {
  const files = [SAMPLE];
  if (SHARED_PCAPS) {
    for (const name of readdirSync(SHARED_PCAPS))
      if (name.endsWith('.pcap')) files.push(join(SHARED_PCAPS, name));
  }
  const seeds: Seed[] = [];
  for (const file of files) {
    let taken = 0;
    await readCaptureFile(file, (r) => {
      // Keep every SIP-ish packet and a sample of the rest, so mutations hit the SIP paths hard.
      if (taken++ % 4 !== 0 && r.caplen < 200) return;
      seeds.push({
        bytes: Buffer.from(r.data.subarray(r.offset, r.offset + r.caplen)),
        linkType: r.linkType,
      });
    });
  }
  // ARP (the failover tracker reads it): requests, replies, gratuitous, tagged; as many as the SIP seeds
  // would be drawn against, so that mutations hit the ARP layer often.
  const a = makeHost(1, 0);
  const b = makeHost(2, 0);
  const arp = [...arpExchange(a, b), gratuitousArp(b), ...arpExchange(b, a, 30), gratuitousArp(a, 30)];
  for (let i = 0; i < Math.max(20, seeds.length >> 4); i++)
    seeds.push({ bytes: Buffer.from(arp[i % arp.length]!), linkType: LINKTYPE_ETHERNET });
  return seeds;
}

function record(bytes: Buffer, linkType: number, n: number, tsSec: number): PacketRecord {
  return rawRecord(bytes, n, tsSec, linkType);
}

/** One mutation of the kinds a hostile capture contains. */
function mutate(rng: Rng, seed: Buffer): Buffer {
  const b = Buffer.from(seed);
  switch (rng.int(6)) {
    case 0: {
      // bit flips
      const flips = 1 + rng.int(8);
      for (let i = 0; i < flips && b.length; i++) b[rng.int(b.length)] ^= 1 << rng.int(8);
      return b;
    }
    case 1:
      return b.subarray(0, rng.int(b.length + 1));
    case 2: {
      // a 16-bit field (lengths, offsets, ports) set to an extreme
      if (b.length < 2) return b;
      const at = rng.int(b.length - 1);
      b.writeUInt16BE([0, 0xffff, 1, 0x7fff, 8, 20][rng.int(6)], at);
      return b;
    }
    case 3: {
      // the header-length and total-length fields of IPv4 behind Ethernet
      if (b.length > 34) {
        b[14] = 0x40 | rng.int(16);
        b.writeUInt16BE(rng.int(65536), 16);
        b.writeUInt16BE(rng.int(65536), 20);
      }
      return b;
    }
    case 4: {
      // garbage tail inside a valid head
      const from = rng.int(b.length + 1);
      for (let i = from; i < b.length; i++) b[i] = rng.int(256);
      return b;
    }
    default: {
      // a 32-bit field set to an extreme (sequence numbers, HEP/SCTP lengths)
      if (b.length < 4) return b;
      b.writeUInt32BE([0, 0xffffffff, 0x80000000][rng.int(3)], rng.int(b.length - 3));
      return b;
    }
  }
}

describe('decoder fuzzing', () => {
  it('survives 1,000,000 mutated packets with every packet counted and state bounded', async () => {
    const seeds = await loadSeeds();
    expect(seeds.length).toBeGreaterThan(50);
    if (!SHARED_PCAPS) console.log('fuzz: ../shared absent, seeds from the sample capture only');
    const rng = new Rng(20261121);
    const pipeline = new CapturePipeline({
      sourceName: 'fuzz',
      isFile: true,
      fragments: { maxDatagrams: 256, maxBytes: 1 << 20 },
      tcp: { maxStreams: 512, maxBufferedBytes: 1 << 20, maxBufferedBytesPerStream: 64 << 10 },
    });
    const total = 1_000_000;
    for (let i = 1; i <= total; i++) {
      const seed = seeds[rng.int(seeds.length)];
      pipeline.handle(record(mutate(rng, seed.bytes), seed.linkType, i, 1_700_000_000 + Math.floor(i / 100)));
    }
    pipeline.finish();
    const d = pipeline.decoderStats;
    expect(d.packets).toBe(total);
    expect(d.malformed).toBeGreaterThan(1000);
    expect(pipeline.sipStats.malformed + pipeline.sipStats.messages).toBeGreaterThan(100);
    // ARP decoded, and cut or inconsistent ARP counted as malformed rather than thrown on.
    expect(d.arp.requests + d.arp.replies).toBeGreaterThan(1000);
    expect(Object.keys(d.errors).filter((reason) => reason.startsWith('arp:')).length).toBeGreaterThan(0);
    expect(pipeline.failover.stats.addresses).toBeLessThanOrEqual(65_536);
    const f = pipeline.decoder.fragments.stats;
    expect(f.inFlight).toBeLessThanOrEqual(256);
    expect(f.bufferedBytes).toBeLessThanOrEqual(1 << 20);
    const t = pipeline.sip.tcpStreams.stats;
    expect(t.activeStreams).toBeLessThanOrEqual(512);
    expect(t.bufferedBytes).toBeLessThanOrEqual(1 << 20);
    console.log(
      `fuzz: ${total} packets, ${d.malformed} malformed (${Object.keys(d.errors).length} reasons), ` +
        `SIP ${pipeline.sipStats.messages} parsed / ${pipeline.sipStats.malformed} malformed`,
    );
  });

  it('bounds fragment state under a flood of incomplete datagrams', () => {
    const pipeline = new CapturePipeline({
      sourceName: 'flood',
      isFile: true,
      fragments: { maxDatagrams: 1000, maxBytes: 4 << 20 },
    });
    const data = Buffer.alloc(1000);
    for (let i = 0; i < 100_000; i++) {
      // MF set, offset 0: never completed.
      const frame = Buffer.concat([
        ipv4Header(1000, 17, { id: i, src: 0x0a000001 + (i >>> 16), fragment: 0x2000 }),
        data,
      ]);
      pipeline.handle(record(frame, LINKTYPE_RAW, i + 1, 1_700_000_000));
    }
    const f = pipeline.decoder.fragments.stats;
    expect(f.fragments).toBe(100_000);
    expect(f.inFlight).toBeLessThanOrEqual(1000);
    expect(f.evicted).toBeGreaterThanOrEqual(99_000);
    expect(f.bufferedBytes).toBeLessThanOrEqual(4 << 20);
  });

  it('bounds TCP state under a flood of streams and of out-of-order data', () => {
    const pipeline = new CapturePipeline({
      sourceName: 'flood',
      isFile: true,
      tcp: { maxStreams: 1000, maxBufferedBytes: 2 << 20, maxBufferedBytesPerStream: 64 << 10 },
    });
    const payload = Buffer.from('INVITE sip:b@x SIP/2.0\r\nContent-Length: 100000\r\n\r\n');
    const segment = Buffer.alloc(1400);
    payload.copy(segment);
    const build = (srcPort: number, seq: number) => ipv4Tcp(segment, { srcPort, seq });
    let n = 0;
    // 50,000 connections that each leave a hole → streams must be evicted, not accumulated.
    for (let i = 0; i < 50_000; i++) {
      pipeline.handle(record(build(1024 + (i % 60000), 1000), LINKTYPE_RAW, ++n, 1_700_000_000));
      pipeline.handle(record(build(1024 + (i % 60000), 900_000), LINKTYPE_RAW, ++n, 1_700_000_000));
    }
    // One stream that only ever sends data ahead of a hole.
    for (let i = 0; i < 2000; i++) {
      pipeline.handle(record(build(7, 10_000 + i * 1400), LINKTYPE_RAW, ++n, 1_700_000_001));
      if (i === 0) pipeline.handle(record(build(7, 1), LINKTYPE_RAW, ++n, 1_700_000_001));
    }
    const t = pipeline.sip.tcpStreams.stats;
    expect(t.activeStreams).toBeLessThanOrEqual(1000);
    expect(t.evictedStreams).toBeGreaterThan(0);
    expect(t.bufferedBytes).toBeLessThanOrEqual(2 << 20);
    expect(t.gaps).toBeGreaterThan(0);
    pipeline.finish();
  });

  it('counts a datagram that is not Ethernet at all as malformed and keeps going', () => {
    const pipeline = new CapturePipeline({ sourceName: 'x', isFile: true });
    for (let len = 0; len < 80; len++)
      pipeline.handle(record(Buffer.alloc(len, 0xff), LINKTYPE_ETHERNET, len + 1, 1));
    expect(pipeline.decoderStats.packets).toBe(80);
    expect(pipeline.decoderStats.malformed + pipeline.decoderStats.nonIp).toBe(80);
  });
});

describe('a flood of Call-IDs', () => {
  it('keeps per-Call-ID state bounded and counts what it forgets', () => {
    const summary = new SummarySink({ maxCallIds: 5000 });
    const pipeline = new CapturePipeline({
      sourceName: 'flood',
      isFile: true,
      maxRetransmissionEntries: 5000,
      onEvent: (e) => summary.add(e),
    });
    // A real collection before each reading, so the figure is what the pipeline retains.
    setFlagsFromString('--expose_gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < 200_000; i++) {
      const sip = Buffer.from(
        `INVITE sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK${i}\r\nFrom: <sip:a@x>;tag=${i}\r\n` +
          `To: <sip:b@x>\r\nCall-ID: flood-${i}-'); DROP TABLE calls;--\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`,
      );
      pipeline.handle(record(ipv4Udp(sip), LINKTYPE_RAW, i + 1, 1_700_000_000 + (i >> 10)));
    }
    expect(pipeline.sipStats.messages).toBe(200_000);
    const s = summary.counts().sip;
    expect(s.messages).toBe(200_000);
    expect(s.callIds).toBe(5000);
    expect(s.callIdsCapped).toBe(true);
    expect(pipeline.sip.retransmissions.size).toBeLessThanOrEqual(5000);
    expect(pipeline.sip.retransmissions.evicted).toBeGreaterThan(190_000);
    gc();
    const grownMiB = (process.memoryUsage().heapUsed - heapBefore) / 1048576;
    console.log(`Call-ID flood: 200,000 messages, ${grownMiB.toFixed(1)} MiB retained`);
    // 5,000 Call-IDs and 5,000 retransmission entries: a few MiB, not one entry per message.
    expect(grownMiB).toBeLessThan(16);
  });
});

describe('SIP over TCP delivered a byte at a time', () => {
  it('finds a 300 KB message and the ones around it without rescanning the stream per segment', () => {
    const events: string[] = [];
    const pipeline = new CapturePipeline({
      sourceName: 'trickle',
      isFile: true,
      onEvent: (e) => events.push(e.sip?.method ?? String(e.sip?.statusCode)),
    });
    const body = 'x'.repeat(300_000);
    const stream = Buffer.from(
      'OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n' +
        `MESSAGE sip:a@b SIP/2.0\r\nCall-ID: 2\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
        'BYE sip:a@b SIP/2.0\r\nCall-ID: 3\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n',
    );
    for (let i = 0; i < stream.length; i++) {
      const frame = ipv4Tcp(stream.subarray(i, i + 1), { seq: 1000 + i });
      pipeline.handle(record(frame, LINKTYPE_RAW, i + 1, 1_700_000_000 + Math.floor(i / 100_000)));
    }
    pipeline.finish();
    expect(events).toEqual(['OPTIONS', 'MESSAGE', 'BYE']);
  });
});

describe('hostile values found in review', () => {
  const tcpFrame = (srcPort: number, seq: number, payload: Buffer) => ipv4Tcp(payload, { srcPort, seq });

  it('holds incomplete messages of many TCP connections within one shared budget', () => {
    const pipeline = new CapturePipeline({
      sourceName: 'budget',
      isFile: true,
      maxPendingStreamBytes: 8 << 20,
    });
    const head = Buffer.from(
      'MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 1000000\r\n\r\n',
    );
    const chunk = Buffer.alloc(1400, 0x61);
    let n = 0;
    for (let c = 0; c < 300; c++) {
      pipeline.handle(record(tcpFrame(2000 + c, 1, head), LINKTYPE_RAW, ++n, 1_700_000_000));
      for (let k = 0; k < 100; k++) {
        pipeline.handle(
          record(tcpFrame(2000 + c, 1 + head.length + k * 1400, chunk), LINKTYPE_RAW, ++n, 1_700_000_000),
        );
      }
      expect(pipeline.sip.pendingStreamBytes).toBeLessThanOrEqual(8 << 20);
    }
    expect(pipeline.sipStats.streamOverflows).toBeGreaterThan(0);
    pipeline.finish();
    expect(pipeline.sip.pendingStreamBytes).toBe(0);
  });

  it('finds the messages after a lost TCP segment at the next SIP start line', () => {
    const events: string[] = [];
    const pipeline = new CapturePipeline({
      sourceName: 'gap',
      isFile: true,
      onEvent: (e) => events.push(e.correlationId),
    });
    const msgs = [1, 2, 3, 4, 5].map((i) =>
      Buffer.from(
        `OPTIONS sip:a@b SIP/2.0\r\nCall-ID: m${i}\r\nCSeq: ${i} OPTIONS\r\nContent-Length: 0\r\n\r\n`,
      ),
    );
    const stream = Buffer.concat(msgs);
    const cut = msgs[0].length + 20; // inside message 2
    const lost = 30;
    pipeline.handle(record(tcpFrame(3000, 1, stream.subarray(0, cut)), LINKTYPE_RAW, 1, 1_700_000_000));
    pipeline.handle(
      record(tcpFrame(3000, 1 + cut + lost, stream.subarray(cut + lost)), LINKTYPE_RAW, 2, 1_700_000_000),
    );
    pipeline.finish();
    expect(events).toEqual(['m1', 'm3', 'm4', 'm5']);
  });

  it('counts methods named like object members as methods', () => {
    const counts: string[] = ['INVITE', 'constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'];
    const summary = new SummarySink();
    const pipeline = new CapturePipeline({
      sourceName: 'proto',
      isFile: true,
      onEvent: (e) => summary.add(e),
    });
    counts.forEach((m, i) => {
      const sip = Buffer.from(
        `${m} sip:b@x SIP/2.0\r\nCall-ID: c${i}\r\nCSeq: 1 ${m}\r\nContent-Length: 0\r\n\r\n`,
      );
      pipeline.handle(record(ipv4Udp(sip), LINKTYPE_RAW, i + 1, 1_700_000_000));
    });
    const requests = summary.counts().sip.requests;
    expect(Object.keys(requests).sort()).toEqual([...counts].sort());
    expect(Object.values(requests)).toEqual([1, 1, 1, 1, 1, 1]);
    // The JSON summary carries the method as an ordinary key.
    expect(JSON.stringify(requests)).toContain('"__proto__":1');
  });
});

describe('floods past every bound at its default', () => {
  it('1.5M Call-IDs from 20k endpoints: the summary and the log name each bound reached', async () => {
    const dir = tmpDir('callscope-flood-');
    try {
      const file = join(dir, 'flood.pcap');
      const w = new PcapWriter(file, { linkType: LINKTYPE_RAW });
      const total = 1_500_000;
      for (let i = 0; i < total; i++) {
        const sip = Buffer.from(
          `INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.0.1;branch=z9hG4bK${i}\r\nFrom: <sip:a@x>;tag=1\r\n` +
            `To: <sip:b@x>\r\nCall-ID: f${i}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`,
        );
        w.write(1_700_000_000 + Math.floor(i / 1000), 0, ipv4Udp(sip, { srcPort: 10_000 + (i % 20_000) }));
      }
      w.close();
      const warnings: Array<Record<string, unknown>> = [];
      const logger = createLogger({
        level: 'warn',
        format: 'json',
        write: (l) => warnings.push(JSON.parse(l)),
      });
      const s = await analyzeFile(file, { logger });
      expect(s.sip.messages).toBe(total);
      expect(s.sip.callIds).toBe(MAX_COUNTED_CALL_IDS);
      expect(s.limits.callIdsCapped).toBe(true);
      // Each Call-ID × direction is one retransmission entry: all but the last 250k–500k are forgotten.
      expect(s.limits.retransmissionStatesForgotten).toBeGreaterThanOrEqual(total - 500_000);
      // 20,000 sending ports and the one receiver: the messages beyond 10,000 endpoints are not counted.
      expect(s.limits.endpointMessagesUntracked).toBeGreaterThan(0);
      const said = (what: string) => warnings.some((l) => JSON.stringify(l).includes(what));
      expect(said('retransmissionStatesForgotten')).toBe(true);
      expect(said('SIP endpoints')).toBe(true);
      expect(said('distinct Call-IDs')).toBe(true);
    } finally {
      removeTmpDir(dir);
    }
  }, 120_000);
});
