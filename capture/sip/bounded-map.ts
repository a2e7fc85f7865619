/**
 * A map bounded to about `capacity` entries that forgets the least recently used ones in O(1):
 * entries live in a young and an old generation; when the young one fills, the old one is dropped
 * whole and the young one becomes old. A hit in the old generation moves the entry back to the young
 * one. (Deleting the first key of one big Map instead gets slower as V8 skips deleted slots.)
 */
export class BoundedMap<V> {
  private young = new Map<string, V>();
  private old = new Map<string, V>();
  private readonly generation: number;
  /** Entries forgotten so far. */
  forgotten = 0;

  constructor(capacity: number) {
    this.generation = Math.max(1, Math.floor(capacity / 2));
  }

  get(key: string): V | undefined {
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const o = this.old.get(key);
    if (o !== undefined) {
      this.old.delete(key);
      this.set(key, o);
    }
    return o;
  }

  has(key: string): boolean {
    return this.young.has(key) || this.old.has(key);
  }

  set(key: string, value: V): void {
    if (this.young.size >= this.generation && !this.young.has(key)) {
      this.forgotten += this.old.size;
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}

/** Longest part of a packet-supplied string kept in a key (Call-IDs are normally under 100 bytes). */
export const MAX_KEY_PART = 256;

/**
 * A copy of `text` (at most MAX_KEY_PART characters) that does not share memory with the string it
 * was cut from: V8 substrings point into their parent, so a stored Call-ID would otherwise keep its
 * message's whole header section alive.
 */
export function ownedKeyPart(text: string): string {
  return ownedCopy(text.length > MAX_KEY_PART ? text.slice(0, MAX_KEY_PART) : text);
}

/** A copy of `text` that shares no memory with the string it came from (see ownedKeyPart). */
export function ownedCopy(text: string): string {
  return Buffer.from(text, 'latin1').toString('latin1');
}
