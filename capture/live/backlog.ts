/**
 * Packets copied aside while the decoder is behind: a ring of packet bytes plus a ring of their
 * headers, both preallocated (no allocation per packet).
 *
 * Why: node_pcap's dispatch() reads until the kernel's ring is empty and cannot be interrupted, so
 * when packets arrive almost as fast as we decode, one dispatch() can run for seconds and starve the
 * event loop (signals, health, the store's inserts). Past a time budget the capture copies packets
 * here instead of decoding them (a copy costs a small fraction of a decode), so dispatch() returns
 * soon, and decodes the backlog in slices between reads, in arrival order. Only when this ring is full
 * too are packets dropped (counted as overload).
 */
import type { PacketRecord } from '../file/record.js';

export class PacketBacklog {
  private readonly slab: Buffer;
  private readonly offset: Uint32Array;
  private readonly caplen: Uint32Array;
  private readonly origLen: Uint32Array;
  private readonly tsSec: Uint32Array;
  private readonly tsNsec: Uint32Array;
  private readonly slots: number;
  /** Next byte to write; byte offset of the oldest packet (0 when empty). */
  private head = 0;
  private tail = 0;
  /** Next header slot to write, oldest header slot. */
  private first = 0;
  private next = 0;
  /** Packets held. */
  count = 0;
  /** Most packets held at once. */
  peak = 0;

  constructor(bytes: number) {
    this.slab = Buffer.allocUnsafe(bytes);
    // Room for the headers of packets of 128 bytes on average (SIP and RTP frames are larger).
    this.slots = Math.max(64, Math.floor(bytes / 128));
    this.offset = new Uint32Array(this.slots);
    this.caplen = new Uint32Array(this.slots);
    this.origLen = new Uint32Array(this.slots);
    this.tsSec = new Uint32Array(this.slots);
    this.tsNsec = new Uint32Array(this.slots);
  }

  /** Copies the packet; false when there is no room (the caller counts the drop). */
  push(data: Buffer, length: number, origLen: number, tsSec: number, tsNsec: number): boolean {
    if (this.count === this.slots) return false;
    if (this.count === 0) this.head = this.tail = 0;
    let at: number;
    if (this.head >= this.tail) {
      // Held bytes are [tail, head): write after them, or wrap to the start if it stays below tail.
      if (this.head + length <= this.slab.length) at = this.head;
      else if (length < this.tail) at = 0;
      else return false;
    } else {
      // Wrapped: held bytes are [tail, end) and [0, head).
      if (this.head + length < this.tail) at = this.head;
      else return false;
    }
    data.copy(this.slab, at, 0, length);
    const i = this.next;
    this.offset[i] = at;
    this.caplen[i] = length;
    this.origLen[i] = origLen;
    this.tsSec[i] = tsSec;
    this.tsNsec[i] = tsNsec;
    this.next = i + 1 === this.slots ? 0 : i + 1;
    this.head = at + length;
    this.count++;
    if (this.count > this.peak) this.peak = this.count;
    return true;
  }

  /**
   * Points `record` at the oldest packet (bytes valid until the next push) and removes it from the
   * ring; false when empty. Fields other than the packet's own (linkType, number) are the caller's.
   */
  shift(record: PacketRecord): boolean {
    if (this.count === 0) return false;
    const i = this.first;
    record.data = this.slab;
    record.offset = this.offset[i]!;
    record.caplen = this.caplen[i]!;
    record.origLen = this.origLen[i]!;
    record.tsSec = this.tsSec[i]!;
    record.tsNsec = this.tsNsec[i]!;
    this.first = i + 1 === this.slots ? 0 : i + 1;
    this.count--;
    this.tail = this.count === 0 ? 0 : this.offset[this.first]!;
    if (this.count === 0) this.head = 0;
    return true;
  }
}
