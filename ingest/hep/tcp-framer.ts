/**
 * HEP3 over TCP: cuts a byte stream into frames. Frames are simply concatenated on the wire, with no
 * resynchronisation marker, so the first bytes that are not a HEP3 header make the rest of the stream
 * unreadable: the framer reports it and the caller closes the connection.
 */
import { HEP3_MAX_FRAME, hep3FrameLength } from '../../core/hep3.js';

/** What `push` found wrong; the connection cannot be read further. */
export type FramerError = 'not-hep3' | 'bad-frame-length';

/** Called per complete frame; the bytes are valid only during the call. False: stop for now. */
export type FrameSink = (buf: Buffer, off: number, end: number) => boolean;

export class HepTcpFramer {
  /**
   * Holds only the one frame that straddles two reads, so a connection costs at most 64 KiB however
   * it is fed. Allocated on first use: most reads end on a frame boundary.
   */
  private partial: Buffer | null = null;
  private have = 0;
  /** The rest of a read the sink stopped (a view of that read: no copy). */
  private held: Buffer | null = null;

  /** Bytes of an incomplete frame held back (for the end-of-stream check). */
  get pendingBytes(): number {
    return this.have + (this.held?.length ?? 0);
  }

  /** True while the sink's "stop" left bytes of a read undecoded: call resume() before reading more. */
  get holding(): boolean {
    return this.held !== null;
  }

  /**
   * Feeds one read. `onFrame(buf, off, end)` is called synchronously for every complete frame; the
   * bytes may be the framer's own buffer, reused for the next frame. When it returns false the framer
   * keeps the rest of the read until resume(). Returns null, or the reason the stream cannot be read
   * on (frames before it were delivered).
   */
  push(chunk: Buffer, onFrame: FrameSink): FramerError | null {
    if (this.held) {
      chunk = Buffer.concat([this.held, chunk]);
      this.held = null;
    }
    let off = 0;
    const len = chunk.length;
    while (off < len) {
      if (this.have > 0) {
        const partial = this.partial!;
        // Complete the 6-byte header first: its length field says how much more belongs to the frame.
        if (this.have < 6) {
          const n = Math.min(6 - this.have, len - off);
          chunk.copy(partial, this.have, off, off + n);
          this.have += n;
          off += n;
          if (hep3FrameLength(partial, 0, this.have) === -2) return this.fail(partial.subarray(0, this.have));
          if (this.have < 6) break;
        }
        const frameLen = partial.readUInt16BE(4);
        const n = Math.min(frameLen - this.have, len - off);
        chunk.copy(partial, this.have, off, off + n);
        this.have += n;
        off += n;
        if (this.have < frameLen) break;
        this.have = 0;
        if (!onFrame(partial, 0, frameLen)) return this.hold(chunk, off);
        continue;
      }
      const n = hep3FrameLength(chunk, off, len);
      if (n === -2) return this.fail(chunk.subarray(off, Math.min(off + 6, len)));
      if (n === -1) {
        // An incomplete frame: fewer than 6 bytes, or fewer than its length field says (≤ 65,535).
        this.partial ??= Buffer.allocUnsafe(HEP3_MAX_FRAME);
        chunk.copy(this.partial, 0, off, len);
        this.have = len - off;
        break;
      }
      off += n;
      if (!onFrame(chunk, off - n, off)) return this.hold(chunk, off);
    }
    return null;
  }

  /** Decodes what a stopped push() left. */
  resume(onFrame: FrameSink): FramerError | null {
    const held = this.held;
    if (!held) return null;
    this.held = null;
    return this.push(held, onFrame);
  }

  private hold(chunk: Buffer, off: number): null {
    if (off < chunk.length) this.held = chunk.subarray(off);
    return null;
  }

  private fail(header: Buffer): FramerError {
    this.have = 0;
    this.held = null;
    // hep3FrameLength says -2 both for a missing magic and for a length field below 6.
    const magic = header.length >= 4 && header.toString('latin1', 0, 4) === 'HEP3';
    return magic ? 'bad-frame-length' : 'not-hep3';
  }
}
