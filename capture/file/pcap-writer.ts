import { closeSync, openSync, writeSync } from 'node:fs';
import { LINKTYPE_ETHERNET } from './record.js';

export interface PcapWriterOptions {
  linkType?: number;
  /** Write nanosecond-resolution timestamps (magic 0xa1b23c4d) instead of microseconds. */
  nanosecond?: boolean;
  snaplen?: number;
}

/**
 * Classic pcap writer (little-endian), buffered, synchronous: fixtures, the traffic generator and
 * fuzz corpora write through it.
 */
export class PcapWriter {
  private readonly fd: number;
  private readonly buffer = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  private readonly nanosecond: boolean;
  private readonly snaplen: number;
  packets = 0;

  constructor(
    readonly path: string,
    options: PcapWriterOptions = {},
  ) {
    this.nanosecond = options.nanosecond ?? false;
    this.snaplen = options.snaplen ?? 262144;
    this.fd = openSync(path, 'w');
    const header = Buffer.alloc(24);
    header.writeUInt32LE(this.nanosecond ? 0xa1b23c4d : 0xa1b2c3d4, 0);
    header.writeUInt16LE(2, 4);
    header.writeUInt16LE(4, 6);
    header.writeUInt32LE(this.snaplen, 16);
    header.writeUInt32LE(options.linkType ?? LINKTYPE_ETHERNET, 20);
    this.append(header);
  }

  /** Appends one packet; `frame` is copied, so the caller may reuse it. */
  write(tsSec: number, tsNsec: number, frame: Uint8Array, origLen = frame.length): void {
    const caplen = Math.min(frame.length, this.snaplen);
    if (this.used + 16 + caplen > this.buffer.length) this.flush();
    if (16 + caplen > this.buffer.length) throw new Error(`packet of ${caplen} bytes exceeds writer buffer`);
    const b = this.buffer;
    let o = this.used;
    b.writeUInt32LE(tsSec >>> 0, o);
    b.writeUInt32LE(this.nanosecond ? tsNsec : Math.floor(tsNsec / 1000), o + 4);
    b.writeUInt32LE(caplen, o + 8);
    b.writeUInt32LE(Math.max(origLen, caplen), o + 12);
    o += 16;
    b.set(caplen === frame.length ? frame : frame.subarray(0, caplen), o);
    this.used = o + caplen;
    this.packets++;
  }

  private append(bytes: Uint8Array): void {
    if (this.used + bytes.length > this.buffer.length) this.flush();
    this.buffer.set(bytes, this.used);
    this.used += bytes.length;
  }

  flush(): void {
    let off = 0;
    while (off < this.used) off += writeSync(this.fd, this.buffer, off, this.used - off);
    this.used = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}
