import { describe, expect, it } from 'vitest';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  type TcpLimits,
  TcpReassembler,
  type TcpSegmentMeta,
  type TcpStreamSink,
} from './tcp.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function bytes(len: number, seed = 1): Buffer {
  const r = rng(seed);
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(r() * 256);
  return b;
}

/** Records what a stream receives; gaps appear as `null` chunks. */
class Recorder implements TcpStreamSink {
  chunks: (Buffer | null)[] = [];
  gaps: number[] = [];
  ends: string[] = [];
  packets: number[] = [];
  lastView: Buffer | null = null;
  constructor(
    readonly key: string,
    readonly openedBy: number,
  ) {}
  data(buf: Buffer, off: number, end: number, meta: TcpSegmentMeta): void {
    if (this.ends.length > 0) throw new Error('data after end');
    this.lastView = buf;
    this.chunks.push(Buffer.from(buf.subarray(off, end)));
    this.packets.push(meta.packetNumber);
  }
  gap(n: number): void {
    if (this.ends.length > 0) throw new Error('gap after end');
    this.gaps.push(n);
    this.chunks.push(null);
  }
  end(reason: 'fin' | 'rst' | 'idle' | 'evicted' | 'flush'): void {
    if (this.ends.length > 0) throw new Error('ended twice');
    this.ends.push(reason);
  }
  get text(): Buffer {
    return Buffer.concat(this.chunks.filter((c): c is Buffer => c !== null));
  }
}

function setup(limits?: TcpLimits) {
  const sinks: Recorder[] = [];
  const r = new TcpReassembler((key, meta) => {
    const s = new Recorder(key, meta.packetNumber);
    sinks.push(s);
    return s;
  }, limits);
  let n = 0;
  const send = (key: string, seq: number, flags: number, data: Buffer = Buffer.alloc(0), ts = 1) => {
    n++;
    // Reused scratch buffer with junk around the payload, as a capture reader hands it over.
    const scratch = Buffer.alloc(data.length + 20, 0xcc);
    data.copy(scratch, 10);
    r.segment(key, seq >>> 0, flags, scratch, 10, 10 + data.length, {
      tsSec: ts,
      tsNsec: 0,
      packetNumber: n,
    });
    scratch.fill(0);
  };
  return { r, sinks, send };
}

const A = TCP_ACK;

describe('TcpReassembler', () => {
  it('delivers in-order data after a SYN, passing the caller view through', () => {
    const { r, sinks } = setup();
    const msg = Buffer.from('INVITE sip:bob@example.com SIP/2.0\r\n\r\n');
    const meta = { tsSec: 1, tsNsec: 0, packetNumber: 1 };
    r.segment('a', 1000, TCP_SYN, msg, 0, 0, meta);
    const pkt = Buffer.concat([Buffer.alloc(54), msg]);
    r.segment('a', 1001, A, pkt, 54, pkt.length, { ...meta, packetNumber: 2 });
    expect(sinks.length).toBe(1);
    expect(sinks[0].text.equals(msg)).toBe(true);
    expect(sinks[0].lastView).toBe(pkt); // no copy on the in-order path
    expect(sinks[0].openedBy).toBe(1);
    expect(r.stats).toMatchObject({ segments: 2, streams: 1, activeStreams: 1, bufferedBytes: 0 });
  });

  it('reorders out-of-order segments within the window', () => {
    const { r, sinks, send } = setup();
    const d = bytes(3000, 2);
    send('a', 99, TCP_SYN);
    send('a', 100 + 2000, A, d.subarray(2000));
    send('a', 100 + 1000, A, d.subarray(1000, 2000));
    expect(sinks[0].chunks.length).toBe(0);
    expect(r.stats.bufferedBytes).toBeGreaterThan(0);
    send('a', 100, A, d.subarray(0, 1000));
    expect(sinks[0].text.equals(d)).toBe(true);
    expect(sinks[0].packets).toEqual([4, 3, 2]);
    expect(r.stats).toMatchObject({ outOfOrder: 2, bufferedBytes: 0, gaps: 0 });
  });

  it('drops and counts retransmissions', () => {
    const { r, sinks, send } = setup();
    const d = bytes(300, 3);
    send('a', 0, TCP_SYN);
    send('a', 1, A, d.subarray(0, 100));
    send('a', 1, A, d.subarray(0, 100));
    send('a', 101, A, d.subarray(100, 200));
    send('a', 51, A, d.subarray(50, 100));
    send('a', 201, A, d.subarray(200));
    send('a', 201, A, d.subarray(200)); // retransmission of held-then-delivered data
    send('a', 0, TCP_SYN); // retransmitted SYN
    expect(sinks[0].text.equals(d)).toBe(true);
    expect(r.stats.retransmissions).toBe(4);
    expect(sinks.length).toBe(1);
  });

  it('counts a retransmission of held data', () => {
    const { r, sinks, send } = setup();
    const d = bytes(200, 4);
    send('a', 0, TCP_SYN);
    send('a', 101, A, d.subarray(100));
    send('a', 101, A, d.subarray(100));
    expect(r.stats.retransmissions).toBe(1);
    send('a', 1, A, d.subarray(0, 100));
    expect(sinks[0].text.equals(d)).toBe(true);
  });

  it('trims partially overlapping segments to their new bytes', () => {
    const { r, sinks, send } = setup();
    const d = bytes(400, 5);
    send('a', 0, TCP_SYN);
    send('a', 1, A, d.subarray(0, 100));
    send('a', 51, A, d.subarray(50, 200)); // overlaps delivered bytes
    send('a', 301, A, d.subarray(300, 400)); // held
    send('a', 251, A, d.subarray(250, 350)); // overlaps held bytes
    send('a', 201, A, d.subarray(200, 400)); // in order, overlapping held bytes
    expect(sinks[0].text.equals(d)).toBe(true);
    expect(r.stats.overlaps).toBeGreaterThanOrEqual(3);
    expect(r.stats.bufferedBytes).toBe(0);
  });

  it('keeps the first-received copy of bytes held out of order', () => {
    const { sinks, send } = setup();
    const d = bytes(300, 6);
    send('a', 0, TCP_SYN);
    send('a', 101, A, d.subarray(100, 200));
    const forged = Buffer.from(d.subarray(0, 300));
    forged.fill(0x41, 100, 200);
    send('a', 1, A, forged);
    expect(sinks[0].text.equals(d)).toBe(true);
  });

  it('handles sequence wraparound at 2^32', () => {
    const { r, sinks, send } = setup();
    const d = bytes(5000, 7);
    const isn = 2 ** 32 - 2500;
    send('a', isn, TCP_SYN);
    const seg = (from: number, to: number) => send('a', isn + 1 + from, A, d.subarray(from, to));
    seg(0, 1000);
    seg(2000, 3000); // crosses 2^32 out of order
    seg(3000, 5000);
    seg(1000, 2000);
    seg(1500, 2600); // retransmission across the wrap
    send('a', isn + 1 + 5000, A | TCP_FIN);
    expect(sinks[0].text.equals(d)).toBe(true);
    expect(sinks[0].ends).toEqual(['fin']);
    expect(r.stats.gaps).toBe(0);
  });

  it('starts a stream seen mid-connection at the first segment with payload', () => {
    const { r, sinks, send } = setup();
    const d = bytes(500, 8);
    send('a', 5000, A); // pure ACK: no stream yet
    expect(sinks.length).toBe(0);
    send('a', 123456, A, d.subarray(0, 200));
    send('a', 123456 + 300, A, d.subarray(300));
    send('a', 123456 + 200, A, d.subarray(200, 300));
    expect(sinks.length).toBe(1);
    expect(sinks[0].text.equals(d)).toBe(true);
    expect(r.stats.streams).toBe(1);
  });

  it('ends on FIN once all data up to it is in', () => {
    const { r, sinks, send } = setup();
    const d = bytes(300, 9);
    send('a', 0, TCP_SYN);
    send('a', 201, A | TCP_FIN, d.subarray(200)); // FIN arrives before a hole is filled
    send('a', 1, A, d.subarray(0, 100));
    expect(sinks[0].ends).toEqual([]);
    send('a', 101, A, d.subarray(100, 200));
    expect(sinks[0].text.equals(d)).toBe(true);
    expect(sinks[0].ends).toEqual(['fin']);
    expect(r.stats.activeStreams).toBe(0);
    // Stragglers of the closed connection do not open a new stream.
    send('a', 101, A, d.subarray(100, 200));
    send('a', 301, A | TCP_FIN);
    send('a', 302, A);
    expect(sinks.length).toBe(1);
    expect(r.stats.retransmissions).toBe(1);
  });

  it('drops data past the FIN', () => {
    const { r, sinks, send } = setup();
    send('a', 0, TCP_SYN);
    send('a', 1, A | TCP_FIN, Buffer.from('bye'));
    send('a', 1, A, Buffer.from('bye and more'));
    expect(sinks[0].text.toString()).toBe('bye');
    expect(sinks[0].ends).toEqual(['fin']);
    const b = setup();
    b.send('a', 0, TCP_SYN);
    b.send('a', 10, A, Buffer.from('later'));
    b.send('a', 1, A | TCP_FIN, Buffer.from('early'));
    expect(b.sinks[0].text.toString()).toBe('early');
    expect(b.sinks[0].ends).toEqual(['fin']);
    expect(b.r.stats.droppedBytes).toBe(5); // 'later' lies wholly past the FIN at 6
    expect(b.r.stats.bufferedBytes).toBe(0);
    expect(r.stats.droppedBytes).toBe(0);
  });

  it('ends on RST, delivering held data after a gap', () => {
    const { r, sinks, send } = setup();
    send('a', 0, TCP_SYN);
    send('a', 1, A, Buffer.from('abc'));
    send('a', 10, A, Buffer.from('xyz'));
    send('a', 13, TCP_RST);
    expect(sinks[0].chunks).toEqual([Buffer.from('abc'), null, Buffer.from('xyz')]);
    expect(sinks[0].gaps).toEqual([6]);
    expect(sinks[0].ends).toEqual(['rst']);
    expect(r.stats).toMatchObject({ activeStreams: 0, bufferedBytes: 0 });
    send('a', 20, TCP_RST); // nothing left to end
    expect(sinks[0].ends).toEqual(['rst']);
  });

  it('starts a new stream on a SYN reusing a closed key', () => {
    const { r, sinks, send } = setup();
    send('a', 0, TCP_SYN);
    send('a', 1, A | TCP_FIN, Buffer.from('one'));
    send('a', 7000, TCP_SYN);
    send('a', 7001, A, Buffer.from('two'));
    expect(sinks.length).toBe(2);
    expect(sinks[0].ends).toEqual(['fin']);
    expect(sinks[1].text.toString()).toBe('two');
    // Port reuse without a FIN/RST seen: the old stream is superseded.
    send('a', 90000, TCP_SYN);
    expect(sinks[1].ends).toEqual(['evicted']);
    expect(sinks.length).toBe(3);
    expect(r.stats.streams).toBe(3);
  });

  it('restarts a stream when a segment is far outside its sequence space', () => {
    const { sinks, send } = setup();
    send('a', 1000, A, Buffer.from('old'));
    send('a', 1000 + 2 ** 31, A, Buffer.from('new'));
    expect(sinks.length).toBe(2);
    expect(sinks[0].ends).toEqual(['evicted']);
    expect(sinks[1].text.toString()).toBe('new');
  });

  it('reports a hole that never fills as a gap at flush', () => {
    const { r, sinks, send } = setup();
    send('a', 0, TCP_SYN);
    send('a', 1, A, Buffer.from('head'));
    send('a', 105, A, Buffer.from('tail'));
    send('a', 200, A, Buffer.from('more'));
    expect(sinks[0].text.toString()).toBe('head');
    r.flush();
    expect(sinks[0].chunks).toEqual([
      Buffer.from('head'),
      null,
      Buffer.from('tail'),
      null,
      Buffer.from('more'),
    ]);
    expect(sinks[0].gaps).toEqual([100, 91]);
    expect(sinks[0].ends).toEqual(['flush']);
    expect(r.stats).toMatchObject({ gaps: 2, gapBytes: 191, activeStreams: 0, bufferedBytes: 0 });
  });

  it('ends a FIN-terminated stream with a hole as fin at flush', () => {
    const { sinks, send, r } = setup();
    send('a', 0, TCP_SYN);
    send('a', 11, A | TCP_FIN, Buffer.from('end'));
    r.flush();
    expect(sinks[0].gaps).toEqual([10]);
    expect(sinks[0].text.toString()).toBe('end');
    expect(sinks[0].ends).toEqual(['fin']);
  });

  it('declares a gap when the per-stream segment limit is exceeded', () => {
    const { r, sinks, send } = setup({ maxOutOfOrderSegments: 4 });
    send('a', 0, TCP_SYN);
    for (let i = 0; i < 6; i++) send('a', 101 + i * 10, A, Buffer.alloc(10, 65 + i));
    expect(sinks[0].gaps).toEqual([100]);
    expect(sinks[0].text.toString()).toBe(['A', 'B', 'C', 'D', 'E', 'F'].map((c) => c.repeat(10)).join(''));
    expect(r.stats.bufferedBytes).toBe(0);
  });

  it('declares a gap when the per-stream byte limit is exceeded', () => {
    const { r, sinks, send } = setup({ maxBufferedBytesPerStream: 1000 });
    send('a', 0, TCP_SYN);
    send('a', 101, A, Buffer.alloc(600, 1));
    expect(sinks[0].gaps).toEqual([]);
    // Would hold 1200 bytes: the first hole is skipped, after which this segment fits.
    send('a', 801, A, Buffer.alloc(600, 2));
    expect(sinks[0].gaps).toEqual([100]);
    expect(sinks[0].text.equals(Buffer.alloc(600, 1))).toBe(true);
    // A segment larger than the limit on its own: held data first, then a gap straight to it.
    send('a', 5000, A, Buffer.alloc(2000, 3));
    expect(sinks[0].gaps).toEqual([100, 100, 3599]);
    expect(sinks[0].text.length).toBe(3200);
    expect(r.stats.bufferedBytes).toBe(0);
  });

  it('prefers the earlier of the segment and the held data when making room', () => {
    const { sinks, send } = setup({ maxOutOfOrderSegments: 1 });
    send('a', 0, TCP_SYN);
    send('a', 201, A, Buffer.from('late'));
    send('a', 101, A, Buffer.from('early')); // cannot be held: skip to it, not past it
    expect(sinks[0].gaps).toEqual([100]);
    expect(sinks[0].text.toString()).toBe('early');
  });

  it('respects the total buffered limit across streams', () => {
    const limits = { maxBufferedBytes: 50_000 };
    const { r, sinks, send } = setup(limits);
    let violations = 0;
    for (let i = 0; i < 500; i++) {
      const key = `s${i}`;
      send(key, 0, TCP_SYN);
      send(key, 1, A, Buffer.from('x'));
      send(key, 1000, A, Buffer.alloc(500, i & 0xff));
      if (r.stats.bufferedBytes > limits.maxBufferedBytes) violations++;
    }
    expect(violations).toBe(0);
    expect(r.stats.gaps).toBeGreaterThan(0);
    r.flush();
    for (const s of sinks) {
      expect(s.text.length).toBe(501);
      expect(s.gaps).toEqual([998]);
    }
    expect(r.stats.bufferedBytes).toBe(0);
  });

  it('declares a hole open too long as a gap on expire', () => {
    const { r, sinks, send } = setup({ holeTimeoutSec: 5 });
    send('a', 0, TCP_SYN, undefined, 100);
    send('a', 1, A, Buffer.from('abc'), 100);
    send('a', 11, A, Buffer.from('def'), 101);
    r.expire(103);
    expect(sinks[0].gaps).toEqual([]);
    r.expire(106.5);
    expect(sinks[0].gaps).toEqual([7]);
    expect(sinks[0].text.toString()).toBe('abcdef');
    expect(sinks[0].ends).toEqual([]);
  });

  it('ends idle streams on expire', () => {
    const { r, sinks, send } = setup({ idleTimeoutSec: 60 });
    send('a', 0, TCP_SYN, undefined, 1000);
    send('b', 0, TCP_SYN, undefined, 1030);
    send('a', 1, A, Buffer.from('hi'), 1040);
    r.expire(1095);
    expect(sinks[1].ends).toEqual(['idle']);
    expect(sinks[0].ends).toEqual([]);
    r.expire(1101);
    expect(sinks[0].ends).toEqual(['idle']);
    expect(r.stats).toMatchObject({ idleStreams: 2, activeStreams: 0 });
  });

  it('bounds a flood of 200k streams by maxStreams', () => {
    // Light sinks: the test must not be the one holding 200k streams' worth of memory.
    const ends = new Map<string, number>();
    const gaps: number[] = [];
    const r = new TcpReassembler(
      (key) => ({
        data() {},
        gap(n) {
          if (key === 'flood1') gaps.push(n);
        },
        end(reason) {
          ends.set(reason, (ends.get(reason) ?? 0) + 1);
        },
      }),
      { maxStreams: 1000 },
    );
    const payload = Buffer.from('REGISTER sip:x SIP/2.0\r\n');
    const meta = { tsSec: 1, tsNsec: 0, packetNumber: 0 };
    let violations = 0;
    for (let i = 0; i < 200_000; i++) {
      r.segment(`flood${i}`, i * 7919, A, payload, 0, payload.length, meta);
      // Every other stream also holds an out-of-order segment.
      if (i & 1) r.segment(`flood${i}`, i * 7919 + 1000, A, payload, 0, payload.length, meta);
      if (r.stats.activeStreams > 1000) violations++;
    }
    expect(violations).toBe(0);
    expect(r.stats.streams).toBe(200_000);
    expect(r.stats.evictedStreams).toBe(199_000);
    expect(ends.get('evicted')).toBe(199_000);
    expect(gaps).toEqual([1000 - payload.length]);
    r.flush();
    expect(ends.get('flush')).toBe(1000);
    expect(r.stats).toMatchObject({ activeStreams: 0, bufferedBytes: 0 });
  });

  it('evicts closed streams before active ones', () => {
    const { sinks, send } = setup({ maxStreams: 2 });
    send('a', 0, TCP_SYN);
    send('b', 0, TCP_SYN);
    send('b', 1, TCP_FIN);
    send('a', 1, A, Buffer.from('x'));
    send('c', 0, TCP_SYN);
    expect(sinks[0].ends).toEqual([]);
    send('d', 0, TCP_SYN);
    expect(sinks[0].ends).toEqual(['evicted']);
  });

  it('reassembles a 10 KB message from 1-byte segments', () => {
    const { r, sinks, send } = setup();
    const d = bytes(10_000, 10);
    send('a', 41, TCP_SYN);
    const order = [...Array(10_000).keys()];
    // Reverse within blocks of 100 so every block is held then released.
    for (let b = 0; b < 100; b++) {
      for (let i = 99; i >= 0; i--) {
        const k = order[b * 100 + i];
        send('a', 42 + k, A, d.subarray(k, k + 1));
      }
    }
    expect(sinks[0].text.equals(d)).toBe(true);
    expect(r.stats).toMatchObject({ gaps: 0, bufferedBytes: 0 });
  });

  it('delivers exactly the original bytes under random segmentation, duplication and reordering', () => {
    const rand = rng(20);
    for (let iter = 0; iter < 200; iter++) {
      const { r, sinks, send } = setup();
      const len = 1 + Math.floor(rand() * 20_000);
      const d = bytes(len, 100 + iter);
      const isn = rand() < 0.3 ? 2 ** 32 - Math.floor(rand() * len) : Math.floor(rand() * 2 ** 32);
      const maxSeg = 1 + Math.floor(rand() * 1500);
      const segs: [number, number][] = [];
      for (let o = 0; o < len; ) {
        const e = Math.min(len, o + 1 + Math.floor(rand() * maxSeg));
        segs.push([o, e]);
        o = e;
      }
      // Duplicates (sometimes shifted to overlap neighbours).
      const n = segs.length;
      for (let i = 0; i < n; i++) {
        if (rand() < 0.2) {
          const [o, e] = segs[Math.floor(rand() * n)];
          const so = Math.max(0, o - Math.floor(rand() * 50));
          segs.push([so, Math.min(len, e + Math.floor(rand() * 50))]);
        }
      }
      // Local reordering: swap segments at most 20 positions apart.
      for (let i = 0; i < segs.length; i++) {
        const j = Math.min(segs.length - 1, i + Math.floor(rand() * 20));
        [segs[i], segs[j]] = [segs[j], segs[i]];
      }
      const withSyn = rand() < 0.7;
      if (withSyn) send('k', isn - 1, TCP_SYN);
      else {
        // Mid-stream start: make sure the first segment seen is the first of the stream.
        const first = segs.findIndex(([o]) => o === 0);
        [segs[0], segs[first]] = [segs[first], segs[0]];
      }
      for (const [o, e] of segs) send('k', isn + o, A, d.subarray(o, e));
      send('k', isn + len, A | TCP_FIN);
      expect(sinks.length).toBe(1);
      expect(sinks[0].gaps).toEqual([]);
      expect(sinks[0].text.equals(d)).toBe(true);
      expect(sinks[0].ends).toEqual(['fin']);
      expect(r.stats.bufferedBytes).toBe(0);
    }
  });

  it('places every delivered byte at its stream offset under tight limits, losses and timeouts', () => {
    const rand = rng(40);
    let gapsSeen = 0;
    for (let iter = 0; iter < 300; iter++) {
      const len = 1 + Math.floor(rand() * 30_000);
      const d = bytes(len, 500 + iter);
      const isn = Math.floor(rand() * 2 ** 32);
      // Per-stream position check: data must match the original where the stream says it is.
      let pos = 0;
      let bad = 0;
      let ended = '';
      const r = new TcpReassembler(
        () => ({
          data(buf, off, end) {
            if (pos + end - off > len || !buf.subarray(off, end).equals(d.subarray(pos, pos + end - off)))
              bad++;
            pos += end - off;
          },
          gap(n) {
            if (n <= 0) bad++;
            pos += n;
          },
          end(reason) {
            ended = reason;
          },
        }),
        {
          maxBufferedBytesPerStream: 1 + Math.floor(rand() * 8000),
          maxOutOfOrderSegments: Math.floor(rand() * 10),
          maxBufferedBytes: Math.floor(rand() * 20_000),
          holeTimeoutSec: 1 + Math.floor(rand() * 5),
        },
      );
      const segs: [number, number][] = [];
      for (let o = 0; o < len; ) {
        const e = Math.min(len, o + 1 + Math.floor(rand() * 1500));
        if (rand() > 0.05) segs.push([o, e]); // some segments are lost for good
        o = e;
      }
      for (let i = 0; i < segs.length; i++) {
        if (rand() < 0.1) segs.push([...segs[Math.floor(rand() * segs.length)]]);
        const j = Math.min(segs.length - 1, i + Math.floor(rand() * 30));
        [segs[i], segs[j]] = [segs[j], segs[i]];
      }
      const meta = { tsSec: 0, tsNsec: 0, packetNumber: 0 };
      r.segment('k', isn - 1, TCP_SYN, d, 0, 0, meta);
      let t = 0;
      for (const [o, e] of segs) {
        t += rand() * 0.5;
        meta.tsSec = t;
        r.segment('k', (isn + o) >>> 0, A, d, o, e, meta);
        r.expire(t);
      }
      if (rand() < 0.5) r.segment('k', (isn + len) >>> 0, A | TCP_FIN, d, 0, 0, meta);
      r.flush();
      expect(bad).toBe(0);
      expect(ended === 'fin' || ended === 'flush').toBe(true);
      // Everything up to the last byte received is accounted for, as data or as gap.
      const lastByte = segs.reduce((m, [, e]) => Math.max(m, e), 0);
      expect(pos).toBe(ended === 'fin' ? len : lastByte);
      gapsSeen += r.stats.gaps;
      expect(r.stats.bufferedBytes).toBe(0);
    }
    expect(gapsSeen).toBeGreaterThan(300);
  });

  it('never throws on garbage and keeps its bounds', () => {
    const rand = rng(30);
    const limits = { maxStreams: 20, maxBufferedBytes: 100_000, maxOutOfOrderSegments: 16 };
    const r = new TcpReassembler(() => ({ data() {}, gap() {}, end() {} }), limits);
    const buf = bytes(4000, 31);
    const num = () => {
      const x = rand();
      if (x < 0.05) return Number.NaN;
      if (x < 0.1) return -Math.floor(rand() * 1e6);
      if (x < 0.15) return 2 ** 40;
      if (x < 0.2) return 1.5;
      return Math.floor(rand() * 4200);
    };
    let violations = 0;
    let seqBase = 0;
    for (let i = 0; i < 100_000; i++) {
      if (rand() < 0.001) seqBase = Math.floor(rand() * 2 ** 32);
      const seq = rand() < 0.8 ? seqBase + Math.floor(rand() * 20_000) : num();
      const flags = rand() < 0.9 ? TCP_ACK | (rand() < 0.02 ? TCP_FIN : 0) : Math.floor(rand() * 1e9);
      const meta =
        rand() < 0.01 ? (null as unknown as TcpSegmentMeta) : { tsSec: i / 100, tsNsec: 0, packetNumber: i };
      r.segment(`k${Math.floor(rand() * 30)}`, seq, flags, buf, num(), num(), meta);
      r.expire(rand() < 0.01 ? Number.NaN : i / 100);
      const s = r.stats;
      if (s.activeStreams > 20 || s.bufferedBytes > 100_000 || s.bufferedBytes < 0) violations++;
    }
    expect(violations).toBe(0);
    r.flush();
    expect(r.stats).toMatchObject({ activeStreams: 0, bufferedBytes: 0 });
  });
});
