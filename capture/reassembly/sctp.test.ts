import { describe, expect, it } from 'vitest';
import { SCTP_FLAG_BEGIN as B, SCTP_FLAG_END as E } from '../layers/sctp.js';
import { type SctpLimits, SctpMessageReassembler } from './sctp.js';

const M = 0; // a middle fragment: neither B nor E

/** Adds a whole buffer as one fragment. */
function add(
  r: SctpMessageReassembler,
  dir: string,
  sid: number,
  tsn: number,
  flags: number,
  data: Buffer | string,
) {
  const b = typeof data === 'string' ? Buffer.from(data) : data;
  return r.add(dir, sid, tsn, flags, b, 0, b.length);
}

function pattern(len: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: len }, (_, i) => (i * 31 + seed) & 0xff));
}

describe('SctpMessageReassembler: ordering', () => {
  it('B, M, E in TSN order give one message', () => {
    const r = new SctpMessageReassembler();
    expect(add(r, 'a', 1, 10, B, 'INVITE sip:')).toBeNull();
    expect(add(r, 'a', 1, 11, M, 'bob@example.com ')).toBeNull();
    expect(r.stats.pending).toBe(1);
    const whole = add(r, 'a', 1, 12, E, 'SIP/2.0\r\n');
    expect(whole?.toString()).toBe('INVITE sip:bob@example.com SIP/2.0\r\n');
    expect(r.stats).toEqual({
      fragments: 3,
      reassembled: 1,
      dropped: 0,
      evicted: 0,
      pending: 0,
      bufferedBytes: 0,
    });
  });

  it('honours off/end and returns a copy, not a view of the fed buffers', () => {
    const r = new SctpMessageReassembler();
    const b1 = Buffer.from('xxHelloyy');
    const b2 = Buffer.from('z, world');
    expect(r.add('a', 0, 1, B, b1, 2, 7)).toBeNull();
    b1.fill(0);
    const whole = r.add('a', 0, 2, E, b2, 1, b2.length);
    b2.fill(0);
    expect(whole?.toString()).toBe('Hello, world');
  });

  it('many middle fragments, including empty ones, are concatenated in order', () => {
    const r = new SctpMessageReassembler();
    const payload = pattern(50_000, 3);
    const cuts = [0, 1, 1, 700, 1900, 1901, 10_000, 33_333, 49_999, 50_000];
    let tsn = 100;
    let whole: Buffer | null = null;
    for (let i = 0; i + 1 < cuts.length; i++) {
      const flags = (i === 0 ? B : 0) | (i + 2 === cuts.length ? E : 0);
      whole = add(r, 'a', 5, tsn++, flags, payload.subarray(cuts[i], cuts[i + 1]));
      if (i + 2 < cuts.length) expect(whole).toBeNull();
    }
    expect(whole?.equals(payload)).toBe(true);
    expect(r.stats.bufferedBytes).toBe(0);
  });

  it('a TSN gap drops the fragments after it', () => {
    const r = new SctpMessageReassembler();
    expect(add(r, 'a', 1, 1, B, 'one')).toBeNull();
    expect(add(r, 'a', 1, 3, M, 'three')).toBeNull(); // 2 never seen
    expect(add(r, 'a', 1, 4, E, 'four')).toBeNull();
    expect(r.stats.dropped).toBe(2);
    expect(r.stats.reassembled).toBe(0);
    // A middle or end fragment without its B is dropped too.
    expect(add(r, 'a', 2, 7, E, 'orphan')).toBeNull();
    expect(r.stats.dropped).toBe(3);
  });

  it('a retransmitted fragment is dropped and the message still completes', () => {
    const r = new SctpMessageReassembler();
    expect(add(r, 'a', 1, 20, B, 'ab')).toBeNull();
    expect(add(r, 'a', 1, 21, M, 'cd')).toBeNull();
    expect(add(r, 'a', 1, 21, M, 'cd')).toBeNull(); // retransmission
    expect(r.stats.dropped).toBe(1);
    expect(add(r, 'a', 1, 22, E, 'ef')?.toString()).toBe('abcdef');
    expect(add(r, 'a', 1, 22, E, 'ef')).toBeNull(); // retransmitted after completion
    expect(r.stats).toMatchObject({ reassembled: 1, dropped: 2, pending: 0 });
  });

  it('interleaved streams and directions are kept apart', () => {
    const r = new SctpMessageReassembler();
    expect(add(r, 'a', 1, 1, B, 'A1-')).toBeNull();
    expect(add(r, 'a', 2, 1, B, 'A2-')).toBeNull();
    expect(add(r, 'b', 1, 1, B, 'B1-')).toBeNull();
    expect(r.stats.pending).toBe(3);
    expect(add(r, 'a', 2, 2, M, 'mid-')).toBeNull();
    expect(add(r, 'b', 1, 2, E, 'end')?.toString()).toBe('B1-end');
    expect(add(r, 'a', 1, 2, E, 'end')?.toString()).toBe('A1-end');
    expect(add(r, 'a', 2, 3, E, 'end')?.toString()).toBe('A2-mid-end');
    expect(r.stats).toMatchObject({ reassembled: 3, dropped: 0, pending: 0, bufferedBytes: 0 });
  });

  it('TSNs wrap around at 2^32', () => {
    const r = new SctpMessageReassembler();
    expect(add(r, 'a', 1, 0xfffffffe, B, 'x')).toBeNull();
    expect(add(r, 'a', 1, 0xffffffff, M, 'y')).toBeNull();
    expect(add(r, 'a', 1, 0, M, 'z')).toBeNull();
    expect(add(r, 'a', 1, 1, E, '!')?.toString()).toBe('xyz!');
    expect(add(r, 'a', 2, 0xffffffff, B, 'p')).toBeNull();
    expect(add(r, 'a', 2, 0, E, 'q')?.toString()).toBe('pq');
  });

  it('a new B on a stream abandons the message pending there', () => {
    const r = new SctpMessageReassembler();
    expect(add(r, 'a', 1, 1, B, 'old')).toBeNull();
    expect(add(r, 'a', 1, 5, B, 'new')).toBeNull();
    expect(r.stats).toMatchObject({ dropped: 1, pending: 1, bufferedBytes: 3 });
    expect(add(r, 'a', 1, 6, E, '!')?.toString()).toBe('new!');
  });
});

describe('SctpMessageReassembler: limits', () => {
  it('100,000 distinct partial messages stay within maxPending and maxBytes', () => {
    const limits = { maxPending: 1000, maxBytes: 1 << 20 };
    const r = new SctpMessageReassembler(limits);
    const chunk = pattern(4000, 9);
    let adds = 0;
    let returned = 0;
    const check = (result: Buffer | null) => {
      if (result !== null) returned++;
      if (++adds % 1000 !== 0) return;
      expect(r.stats.pending).toBeLessThanOrEqual(limits.maxPending);
      expect(r.stats.bufferedBytes).toBeLessThanOrEqual(limits.maxBytes);
      expect(r.stats.pending).toBeGreaterThan(0);
    };
    for (let i = 0; i < 100_000; i++) {
      const dir = `d${i >> 16}`;
      const sid = i & 0xffff;
      const size = 1 + ((i * 7919) % chunk.length);
      check(r.add(dir, sid, i, B, chunk, 0, size));
      // Every third message grows a little more, which may evict older ones but never itself.
      if (i % 3 === 0) {
        check(r.add(dir, sid, i + 1, M, chunk, 0, chunk.length));
        if (r.stats.pending === 0) expect.unreachable('the growing message evicted itself');
      }
    }
    expect(returned).toBe(0);
    expect(r.stats.fragments).toBe(adds);
    expect(r.stats.dropped).toBe(0);
    expect(r.stats.evicted + r.stats.pending).toBe(100_000);
    // The newest message (B and one M: 99,999 is a multiple of 3) is still there and completes.
    const last = 99_999;
    const whole = r.add(`d${last >> 16}`, last & 0xffff, last + 2, E, chunk, 0, 1);
    expect(whole?.length).toBe(1 + ((last * 7919) % chunk.length) + chunk.length + 1);
  });

  it('evicts the oldest first when the byte budget is full', () => {
    const r = new SctpMessageReassembler({ maxBytes: 100, maxMessageBytes: 80 });
    expect(add(r, 'a', 1, 1, B, Buffer.alloc(40))).toBeNull();
    expect(add(r, 'a', 2, 1, B, Buffer.alloc(40))).toBeNull();
    expect(r.stats).toMatchObject({ pending: 2, bufferedBytes: 80, evicted: 0 });
    // Stream 2 grows past the budget: stream 1, the oldest, goes; stream 2 itself stays.
    expect(add(r, 'a', 2, 2, M, Buffer.alloc(30))).toBeNull();
    expect(r.stats).toMatchObject({ pending: 1, evicted: 1, bufferedBytes: 70 });
    expect(add(r, 'a', 1, 2, E, 'x')).toBeNull(); // evicted
    expect(add(r, 'a', 2, 3, E, Buffer.alloc(0))?.length).toBe(70);
    expect(r.stats).toMatchObject({ pending: 0, bufferedBytes: 0 });
  });

  it('a 2 MiB message is dropped when maxMessageBytes is 1 MiB', () => {
    const r = new SctpMessageReassembler({ maxMessageBytes: 1 << 20 });
    const piece = pattern(64 * 1024, 1);
    const n = (2 << 20) / piece.length;
    for (let i = 0; i < n; i++) {
      const flags = (i === 0 ? B : 0) | (i === n - 1 ? E : 0);
      expect(add(r, 'a', 1, 1000 + i, flags, piece)).toBeNull();
      expect(r.stats.bufferedBytes).toBeLessThanOrEqual(1 << 20);
    }
    expect(r.stats).toMatchObject({ reassembled: 0, pending: 0, bufferedBytes: 0 });
    expect(r.stats.dropped).toBe(n / 2); // the one over the limit, then every later one
    // A first fragment alone over the limit is dropped without being kept.
    expect(add(r, 'a', 2, 1, B, Buffer.alloc((1 << 20) + 1))).toBeNull();
    expect(r.stats).toMatchObject({ pending: 0, bufferedBytes: 0, dropped: n / 2 + 1 });
    // Exactly the limit is kept.
    expect(add(r, 'a', 3, 1, B, Buffer.alloc(1 << 19))).toBeNull();
    expect(add(r, 'a', 3, 2, E, Buffer.alloc(1 << 19))?.length).toBe(1 << 20);
  });

  it('invalid limits fall back to the defaults', () => {
    const bad: SctpLimits[] = [
      { maxPending: 0, maxBytes: -1, maxMessageBytes: Number.NaN },
      { maxPending: Number.POSITIVE_INFINITY, maxBytes: 0.5 },
      { maxPending: '10' as unknown as number },
    ];
    for (const limits of bad) {
      const r = new SctpMessageReassembler(limits);
      for (let i = 0; i < 4097; i++) add(r, 'a', i, 1, B, 'x');
      expect(r.stats).toMatchObject({ pending: 4096, evicted: 1 });
      // 1 MiB per message still holds; 16 MiB in all.
      expect(add(r, 'b', 0, 1, B, Buffer.alloc((1 << 20) + 1))).toBeNull();
      expect(r.stats.dropped).toBe(1);
    }
    // maxMessageBytes above maxBytes is capped by it.
    const r = new SctpMessageReassembler({ maxBytes: 10, maxMessageBytes: 100 });
    expect(add(r, 'a', 1, 1, B, Buffer.alloc(11))).toBeNull();
    expect(r.stats).toMatchObject({ dropped: 1, pending: 0 });
  });
});
