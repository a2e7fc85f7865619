import { describe, expect, it } from 'vitest';
import { FragmentReassembler } from './fragments.js';

/** Small deterministic PRNG so failures reproduce. */
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

function payload(len: number, seed = 1): Buffer {
  const r = rng(seed);
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = Math.floor(r() * 256);
  return b;
}

interface Frag {
  offset: number;
  mf: boolean;
  data: Buffer;
}

/** Splits like an IP stack: every fragment but the last carries a multiple of 8 bytes. */
function split(p: Buffer, size: number): Frag[] {
  const out: Frag[] = [];
  for (let off = 0; off < p.length; off += size) {
    const end = Math.min(off + size, p.length);
    out.push({ offset: off, mf: end < p.length, data: p.subarray(off, end) });
  }
  return out;
}

/** Feeds through a reused scratch buffer with junk around the data, as a capture reader would. */
function feed(r: FragmentReassembler, key: string, frags: Frag[], ts = 100, meta = 17) {
  const scratch = Buffer.alloc(70000, 0xee);
  let result: ReturnType<FragmentReassembler['add']> = null;
  let completions = 0;
  for (const f of frags) {
    f.data.copy(scratch, 5);
    const got = r.add(key, f.offset, f.mf, scratch, 5, 5 + f.data.length, ts, f.offset === 0 ? meta : -1);
    scratch.fill(0xee);
    if (got !== null) {
      result = got;
      completions++;
    }
  }
  return { result, completions };
}

describe('FragmentReassembler', () => {
  it('reassembles fragments in order', () => {
    const r = new FragmentReassembler();
    const p = payload(4000);
    const { result, completions } = feed(r, 'k', split(p, 1480));
    expect(completions).toBe(1);
    expect(result?.payload.equals(p)).toBe(true);
    expect(result?.meta).toBe(17);
    expect(result?.fragments).toBe(3);
    expect(r.stats).toMatchObject({ fragments: 3, reassembled: 1, inFlight: 0, bufferedBytes: 0 });
  });

  it('reassembles fragments in reverse order', () => {
    const r = new FragmentReassembler();
    const p = payload(9000, 2);
    const { result } = feed(r, 'k', split(p, 1480).reverse());
    expect(result?.payload.equals(p)).toBe(true);
    expect(result?.meta).toBe(17);
    expect(r.stats.inFlight).toBe(0);
  });

  it('reassembles fragments in random order', () => {
    const rand = rng(3);
    for (let iter = 0; iter < 300; iter++) {
      const r = new FragmentReassembler();
      const len = 1 + Math.floor(rand() * 65535);
      const size = 8 * (1 + Math.floor(rand() * 400));
      const p = payload(len, iter);
      const frags = split(p, size);
      for (let i = frags.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [frags[i], frags[j]] = [frags[j], frags[i]];
      }
      const { result, completions } = feed(r, `k${iter}`, frags);
      expect(completions).toBe(1);
      expect(result?.payload.equals(p)).toBe(true);
      expect(r.stats.inFlight).toBe(0);
      expect(r.stats.bufferedBytes).toBe(0);
    }
  });

  it('keeps datagrams with different keys apart', () => {
    const r = new FragmentReassembler();
    const a = split(payload(3000, 4), 1000 - (1000 % 8));
    const b = split(payload(3000, 5), 1000 - (1000 % 8));
    const got: Buffer[] = [];
    for (let i = 0; i < a.length; i++) {
      for (const [key, f] of [
        ['a', a[i]],
        ['b', b[i]],
      ] as const) {
        const res = r.add(key, f.offset, f.mf, f.data, 0, f.data.length, 1, 0);
        if (res) got.push(res.payload);
      }
    }
    expect(got.length).toBe(2);
    expect(got[0].equals(payload(3000, 4))).toBe(true);
    expect(got[1].equals(payload(3000, 5))).toBe(true);
  });

  it('counts and ignores exact duplicates', () => {
    const r = new FragmentReassembler();
    const p = payload(3000, 6);
    const frags = split(p, 1480);
    const { result, completions } = feed(r, 'k', [frags[0], frags[0], frags[1], frags[1], frags[2]]);
    expect(completions).toBe(1);
    expect(result?.payload.equals(p)).toBe(true);
    expect(result?.fragments).toBe(5);
    expect(r.stats.duplicates).toBe(2);
    expect(r.stats.overlaps).toBe(0);
  });

  it('keeps the first-received bytes of overlapping fragments and counts conflicts', () => {
    const r = new FragmentReassembler();
    const p = payload(48, 7);
    // [0,16) first; [8,32) overlaps it with different bytes in [8,16); [24,48) overlaps identically.
    const evil = Buffer.from(p.subarray(8, 32));
    evil.fill(0x41, 0, 8);
    expect(r.add('k', 0, true, p, 0, 16, 1, 9)).toBeNull();
    expect(r.add('k', 8, true, evil, 0, evil.length, 1, 0)).toBeNull();
    expect(r.stats.overlaps).toBe(1);
    expect(r.stats.conflictingOverlaps).toBe(1);
    const res = r.add('k', 24, false, p, 24, 48, 1, 0);
    expect(r.stats.overlaps).toBe(2);
    expect(r.stats.conflictingOverlaps).toBe(1);
    expect(res?.payload.equals(p)).toBe(true);
    expect(res?.meta).toBe(9);
  });

  it('counts a fully covered fragment with different bytes as a conflicting overlap', () => {
    const r = new FragmentReassembler();
    const p = payload(32, 8);
    r.add('k', 0, true, p, 0, 16, 1, 0);
    r.add('k', 0, true, Buffer.alloc(16, 0x55), 0, 16, 1, 0);
    expect(r.stats).toMatchObject({ duplicates: 0, overlaps: 1, conflictingOverlaps: 1 });
    expect(r.add('k', 16, false, p, 16, 32, 1, 0)?.payload.equals(p)).toBe(true);
  });

  it('times out a datagram with a missing fragment', () => {
    const r = new FragmentReassembler({ timeoutSec: 30 });
    const frags = split(payload(4000, 9), 1480);
    feed(r, 'k', [frags[0], frags[2]], 1000);
    expect(r.stats.inFlight).toBe(1);
    r.expire(1010);
    expect(r.stats.inFlight).toBe(1);
    r.expire(1031);
    expect(r.stats).toMatchObject({ timedOut: 1, inFlight: 0, bufferedBytes: 0 });
    // The late fragment starts a new datagram instead of completing the expired one.
    expect(feed(r, 'k', [frags[1]], 1032).completions).toBe(0);
    expect(r.stats.inFlight).toBe(1);
  });

  it('does not let a stale datagram absorb fragments even without expire()', () => {
    const r = new FragmentReassembler({ timeoutSec: 30 });
    const frags = split(payload(3000, 10), 1480);
    feed(r, 'k', [frags[0], frags[1]], 1000);
    expect(feed(r, 'k', [frags[2]], 2000).completions).toBe(0);
    expect(r.stats.timedOut).toBe(1);
  });

  it('expires in insertion order and only scans once per second', () => {
    const r = new FragmentReassembler({ timeoutSec: 5 });
    for (let i = 0; i < 10; i++) r.add(`k${i}`, 0, true, Buffer.alloc(8), 0, 8, 100 + i, 0);
    r.expire(106);
    expect(r.stats.inFlight).toBe(8);
    r.expire(106.5); // within the same second: no scan
    expect(r.stats.inFlight).toBe(8);
    r.expire(107.2);
    expect(r.stats.inFlight).toBe(7);
    r.expire(1000);
    expect(r.stats.inFlight).toBe(0);
    expect(r.stats.timedOut).toBe(10);
  });

  it('stays bounded under a flood of distinct incomplete datagrams', () => {
    const limits = { maxDatagrams: 1000, maxBytes: 4 * 1024 * 1024 };
    const r = new FragmentReassembler(limits);
    const rand = rng(11);
    const junk = Buffer.alloc(1480, 0x5a);
    let violations = 0;
    for (let i = 0; i < 100_000; i++) {
      // Sparse fragments far into the datagram force large buffers: the byte limit must bite too.
      const offset = rand() < 0.5 ? 0 : 8 * Math.floor(rand() * 8000);
      r.add(`flood${i}`, offset, true, junk, 0, 1480, i / 1000, 0);
      if (r.stats.inFlight > limits.maxDatagrams || r.stats.bufferedBytes > limits.maxBytes) violations++;
    }
    expect(violations).toBe(0);
    expect(r.stats.inFlight).toBeLessThanOrEqual(limits.maxDatagrams);
    expect(r.stats.bufferedBytes).toBeLessThanOrEqual(limits.maxBytes);
    expect(r.stats.evicted).toBeGreaterThan(90_000);
    // Still works afterwards.
    const p = payload(3000, 12);
    expect(feed(r, 'after', split(p, 1480), 200).result?.payload.equals(p)).toBe(true);
  });

  it('stays bounded under many tiny disjoint fragments of one datagram', () => {
    const r = new FragmentReassembler({ maxBytes: 100_000 });
    const eight = Buffer.alloc(8, 1);
    for (let off = 0; off < 65528; off += 16) r.add('k', off, true, eight, 0, 8, 1, 0);
    expect(r.stats.bufferedBytes).toBeLessThanOrEqual(100_000);
  });

  it('drops oversize datagrams (ping of death)', () => {
    const r = new FragmentReassembler();
    const big = Buffer.alloc(1480);
    expect(r.add('k', 0, true, big, 0, 1480, 1, 1)).toBeNull();
    expect(r.add('k', 65528, false, big, 0, 100, 1, 0)).toBeNull();
    expect(r.stats).toMatchObject({ oversize: 1, inFlight: 0, bufferedBytes: 0 });
    const small = new FragmentReassembler({ maxDatagramBytes: 2000 });
    expect(small.add('k', 1480, false, big, 0, 1000, 1, 0)).toBeNull();
    expect(small.stats.oversize).toBe(1);
  });

  it('accepts a datagram of exactly maxDatagramBytes', () => {
    const r = new FragmentReassembler();
    const p = payload(65535, 13);
    expect(feed(r, 'k', split(p, 8192)).result?.payload.equals(p)).toBe(true);
  });

  it('rejects invalid fragments', () => {
    const r = new FragmentReassembler();
    const b = Buffer.alloc(100);
    expect(r.add('k', 0, true, b, 0, 13, 1, 0)).toBeNull(); // middle length not a multiple of 8
    expect(r.add('k', 4, true, b, 0, 16, 1, 0)).toBeNull(); // offset not a multiple of 8
    expect(r.add('k', 0, true, b, 50, 40, 1, 0)).toBeNull(); // reversed range
    expect(r.add('k', 0, true, b, 0, 200, 1, 0)).toBeNull(); // beyond the buffer
    expect(r.add('k', -8, true, b, 0, 16, 1, 0)).toBeNull();
    expect(r.add('k', Number.NaN, true, b, 0, 16, 1, 0)).toBeNull();
    expect(r.add('k', 0, true, b, 0, 16, Number.NaN, 0)).toBeNull();
    expect(r.stats.invalid).toBe(7);
    expect(r.stats.inFlight).toBe(0);
  });

  it('drops the datagram on a second, different last fragment or data past the end', () => {
    const r = new FragmentReassembler();
    const b = Buffer.alloc(100);
    r.add('k', 0, true, b, 0, 16, 1, 0);
    r.add('k', 32, false, b, 0, 10, 1, 0);
    r.add('k', 48, false, b, 0, 10, 1, 0);
    expect(r.stats).toMatchObject({ invalid: 1, inFlight: 0 });
    r.add('j', 0, false, b, 0, 10, 1, 0);
    expect(r.stats.reassembled).toBe(1);
    r.add('m', 32, false, b, 0, 10, 1, 0);
    r.add('m', 40, true, b, 0, 8, 1, 0); // middle fragment past the known end
    expect(r.stats).toMatchObject({ invalid: 2, inFlight: 0 });
    r.add('n', 64, true, b, 0, 8, 1, 0);
    r.add('n', 0, false, b, 0, 10, 1, 0); // last fragment ending before data already held
    expect(r.stats).toMatchObject({ invalid: 3, inFlight: 0 });
  });

  it('accepts the same last fragment twice', () => {
    const r = new FragmentReassembler();
    const p = payload(40, 14);
    r.add('k', 16, false, p, 16, 40, 1, 0);
    r.add('k', 16, false, p, 16, 40, 1, 0);
    expect(r.add('k', 0, true, p, 0, 16, 1, 5)?.payload.equals(p)).toBe(true);
    expect(r.stats.duplicates).toBe(1);
  });

  it('copies fragment data (the caller reuses its buffer)', () => {
    const r = new FragmentReassembler();
    const p = payload(2000, 15);
    const scratch = Buffer.from(p);
    r.add('k', 0, true, scratch, 0, 1480, 1, 0);
    scratch.fill(0);
    const res = r.add('k', 1480, false, p, 1480, 2000, 1, 0);
    expect(res?.payload.equals(p)).toBe(true);
  });

  it('evicts the oldest datagram when maxDatagrams is reached', () => {
    const r = new FragmentReassembler({ maxDatagrams: 2 });
    const p = payload(2000, 16);
    r.add('a', 0, true, p, 0, 1480, 1, 0);
    r.add('b', 0, true, p, 0, 1480, 2, 0);
    r.add('c', 0, true, p, 0, 1480, 3, 0);
    expect(r.stats).toMatchObject({ evicted: 1, inFlight: 2 });
    expect(r.add('a', 1480, false, p, 1480, 2000, 4, 0)).toBeNull();
    expect(r.add('c', 1480, false, p, 1480, 2000, 4, 0)?.payload.equals(p)).toBe(true);
  });

  it('clear() forgets everything', () => {
    const r = new FragmentReassembler();
    r.add('a', 0, true, Buffer.alloc(8), 0, 8, 1, 0);
    r.clear();
    expect(r.stats).toMatchObject({ fragments: 0, inFlight: 0, bufferedBytes: 0 });
    expect(r.add('a', 8, false, Buffer.alloc(8), 0, 8, 1, 0)).toBeNull();
  });

  it('never throws and stays consistent on random garbage', () => {
    const rand = rng(17);
    const r = new FragmentReassembler({ maxDatagrams: 50, maxBytes: 300_000 });
    const b = payload(3000, 18);
    const pick = () => {
      const x = rand();
      if (x < 0.05) return Number.NaN;
      if (x < 0.1) return -Math.floor(rand() * 100);
      if (x < 0.15) return 1e12;
      return Math.floor(rand() * 3200);
    };
    let violations = 0;
    for (let i = 0; i < 50_000; i++) {
      const off = rand() < 0.7 ? 8 * Math.floor(rand() * 300) : pick();
      r.add(`k${Math.floor(rand() * 80)}`, off, rand() < 0.7, b, pick(), pick(), i / 100, 0);
      r.expire(i / 100);
      const s = r.stats;
      if (s.inFlight > 50 || s.bufferedBytes > 300_000 || s.bufferedBytes < 0) violations++;
    }
    expect(violations).toBe(0);
    expect(r.stats.reassembled).toBeGreaterThan(0);
  });
});
