/**
 * Small seeded PRNG (mulberry32): the generator must produce byte-identical captures for a seed, and
 * Math.random cannot be seeded.
 */
export class Rng {
  private state: number;

  constructor(seed: number) {
    // Fold any number (fractional, negative, > 2^32) into 32 bits so every seed is usable.
    this.state = (Math.floor(seed) ^ Math.floor(seed / 4294967296)) | 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    // State kept as int32 (not uint32) so V8 holds it unboxed; the bits are the same.
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    return Math.floor(this.next() * 4294967296) >>> 0;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Uniform real in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Exponentially distributed value with the given mean (Poisson inter-arrival times). */
  exponential(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }

  /** `bytes` random bytes as lower-case hex. */
  hex(bytes: number): string {
    let s = '';
    for (let i = 0; i < bytes; i++) s += HEX[this.int(256)];
    return s;
  }

  /** Independent generator seeded from this one, so a sub-stream's draws do not depend on interleaving. */
  fork(): Rng {
    return new Rng(this.u32());
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
