/**
 * WebSocket (RFC 6455) framing for SIP over WebSocket (RFC 7118): recognise the HTTP Upgrade, then
 * turn each direction's TCP byte stream into whole messages. Passive: nothing is ever answered.
 */

const OP_CONTINUATION = 0;
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;

/** Longest HTTP header block we wait for before deciding the stream is not an Upgrade. */
const MAX_UPGRADE_HEADER = 16 * 1024;
/** Smallest message buffer allocated once payload bytes arrive. */
const MIN_MESSAGE_BUFFER = 256;

/**
 * Per-direction deframer: feed it the in-order TCP byte stream after the HTTP Upgrade; it emits
 * complete messages (text or binary), unmasked, reassembled across continuation frames and across
 * feed() calls. Control frames (ping/pong/close) are consumed, not emitted; close sets `closed`.
 * Never throws; protocol errors are counted in `errors`.
 *
 * Memory follows the payload bytes that have actually arrived, never the lengths frame headers
 * claim: a message is collected in one buffer that grows by doubling, capped at the total the
 * headers of its frames have claimed so far (itself at most maxMessageBytes), so by the last byte
 * it is exactly the message's size and is handed over without a final copy.
 */
export class WebSocketDeframer {
  /** Protocol errors: bad opcode, reserved bits, oversized message, broken fragmentation. */
  errors = 0;
  private readonly maxMessageBytes: number;
  private isClosed = false;
  /** Set by an error after which frame boundaries can no longer be trusted: nothing more is emitted. */
  private isFailed = false;

  // Frame header being collected (2..14 bytes).
  private readonly hdr = Buffer.alloc(14);
  private hdrHave = 0;
  private hdrNeed = 2;
  // Current frame payload.
  private inPayload = false;
  private remaining = 0;
  private opcode = 0;
  private fin = false;
  private masked = false;
  private readonly mask = Buffer.alloc(4);
  private maskPos = 0;
  private keepPayload = false; // false: the payload is skipped (control or discarded)
  // Message being reassembled.
  private msgOpcode = -1; // -1: no message in progress
  private msgBuf: Buffer | null = null; // bytes [0, msgHave) received; null until the first arrives
  private msgHave = 0;
  private msgClaimed = 0; // sum of the lengths its frame headers claim, ≤ maxMessageBytes
  private msgDiscard = false; // oversized: swallow the rest of it

  constructor(limits?: { maxMessageBytes?: number }) {
    this.maxMessageBytes = limits?.maxMessageBytes ?? 1024 * 1024;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** True after an unrecoverable error: the rest of the stream is ignored. */
  get failed(): boolean {
    return this.isFailed;
  }

  feed(buf: Buffer, off: number, end: number, onMessage: (payload: Buffer, opcode: number) => void): void {
    end = Math.min(end, buf.length);
    while (off < end && !this.isFailed && !this.isClosed) {
      if (!this.inPayload) {
        const take = Math.min(this.hdrNeed - this.hdrHave, end - off);
        buf.copy(this.hdr, this.hdrHave, off, off + take);
        this.hdrHave += take;
        off += take;
        if (this.hdrHave < this.hdrNeed) return;
        if (this.hdrNeed === 2) {
          // The first two bytes say how long the rest of the header is.
          const len7 = this.hdr[1] & 0x7f;
          this.hdrNeed = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (this.hdr[1] & 0x80 ? 4 : 0);
          if (this.hdrHave < this.hdrNeed) continue;
        }
        this.startFrame();
        if (this.isFailed) return;
        if (this.remaining === 0) this.endFrame(onMessage);
        continue;
      }
      const take = Math.min(this.remaining, end - off);
      if (this.keepPayload && take > 0) {
        const dst = this.reserve(this.msgHave + take);
        if (this.masked) {
          const m = this.mask;
          let mp = this.maskPos;
          let p = this.msgHave;
          for (let i = off; i < off + take; i++) {
            dst[p++] = buf[i] ^ m[mp];
            mp = (mp + 1) & 3;
          }
          this.maskPos = mp;
        } else {
          buf.copy(dst, this.msgHave, off, off + take);
        }
        this.msgHave += take;
      }
      off += take;
      this.remaining -= take;
      if (this.remaining === 0) this.endFrame(onMessage);
    }
  }

  private fail(): void {
    this.errors++;
    this.isFailed = true;
    this.msgBuf = null;
    this.keepPayload = false;
  }

  /**
   * The message buffer with room for `need` bytes (need ≤ msgClaimed). Grows by doubling, never
   * past msgClaimed, so the bytes copied while growing stay under twice the message's size.
   */
  private reserve(need: number): Buffer {
    const old = this.msgBuf;
    if (old !== null && old.length >= need) return old;
    const cap = Math.min(
      this.msgClaimed,
      Math.max(need, MIN_MESSAGE_BUFFER, old === null ? 0 : old.length * 2),
    );
    const grown = Buffer.allocUnsafe(cap);
    if (old !== null) old.copy(grown, 0, 0, this.msgHave);
    this.msgBuf = grown;
    return grown;
  }

  /** Header complete: validate it and set up payload handling. */
  private startFrame(): void {
    const h = this.hdr;
    this.fin = (h[0] & 0x80) !== 0;
    this.opcode = h[0] & 0x0f;
    this.masked = (h[1] & 0x80) !== 0;
    const len7 = h[1] & 0x7f;
    let p = 2;
    let len: number;
    if (len7 === 126) {
      len = h.readUInt16BE(2);
      p = 4;
    } else if (len7 === 127) {
      const hi = h.readUInt32BE(2);
      // RFC 6455 §5.2: the most significant bit must be 0; above 2^53 we could not count the bytes.
      if (hi > 0x1fffff) {
        this.fail();
        return;
      }
      len = hi * 0x1_0000_0000 + h.readUInt32BE(6);
      p = 10;
    } else {
      len = len7;
    }
    if (this.masked) h.copy(this.mask, 0, p, p + 4);
    this.maskPos = 0;
    this.hdrHave = 0;
    this.hdrNeed = 2;
    this.inPayload = true;
    this.remaining = len;
    this.keepPayload = false;

    // RSV bits mean an extension we cannot decode (permessage-deflate sets RSV1 on every
    // compressed message), so nothing later in the stream would be readable either.
    if (h[0] & 0x70) {
      this.fail();
      return;
    }
    const op = this.opcode;
    if (op >= 8) {
      // Control frames: ≤125 bytes, never fragmented, allowed between fragments (§5.5).
      if (op > 10 || !this.fin || len > 125) this.fail();
      return;
    }
    if (op !== OP_CONTINUATION && op !== OP_TEXT && op !== OP_BINARY) {
      this.fail();
      return;
    }
    if (op === OP_CONTINUATION) {
      if (this.msgOpcode === -1) {
        this.fail();
        return;
      }
    } else {
      if (this.msgOpcode !== -1) {
        this.fail();
        return;
      }
      this.msgOpcode = op;
      this.msgBuf = null;
      this.msgHave = 0;
      this.msgClaimed = 0;
      this.msgDiscard = false;
    }
    if (this.msgDiscard) return;
    if (this.msgClaimed + len > this.maxMessageBytes) {
      // Oversized but well-framed: drop this message, keep the stream.
      this.errors++;
      this.msgDiscard = true;
      this.msgBuf = null;
      return;
    }
    // Only a claim: memory is taken as the payload arrives (reserve), not here.
    this.msgClaimed += len;
    this.keepPayload = true;
  }

  private endFrame(onMessage: (payload: Buffer, opcode: number) => void): void {
    this.inPayload = false;
    this.keepPayload = false;
    const op = this.opcode;
    if (op >= 8) {
      if (op === OP_CLOSE) this.isClosed = true;
      return;
    }
    if (!this.fin) return;
    const msgBuf = this.msgBuf;
    const have = this.msgHave;
    const msgOpcode = this.msgOpcode;
    const discard = this.msgDiscard;
    this.msgOpcode = -1;
    this.msgBuf = null;
    this.msgHave = 0;
    this.msgClaimed = 0;
    this.msgDiscard = false;
    if (discard) return;
    // reserve() never grows past the claimed total, which every byte has now filled: no slack.
    const payload =
      msgBuf === null ? Buffer.alloc(0) : msgBuf.length === have ? msgBuf : msgBuf.subarray(0, have);
    onMessage(payload, msgOpcode);
  }
}

/**
 * Recognises an HTTP Upgrade request/response for websocket in a TCP payload. Returns the byte
 * length of the HTTP header block (through CRLFCRLF), 'incomplete' when it may be one but the
 * block has not all arrived, or null when it is not a websocket Upgrade. `protocol` is the
 * Sec-WebSocket-Protocol value (e.g. "sip"; a request may list several, comma-separated). For a
 * response, the stream switches to WebSocket framing only when statusCode is 101.
 */
export function parseWebSocketUpgrade(
  buf: Buffer,
  off: number,
  end: number,
):
  | { headerLength: number; isRequest: boolean; protocol: string | null; statusCode: number | null }
  | 'incomplete'
  | null {
  end = Math.min(end, buf.length);
  if (off < 0 || off >= end) return off === end ? 'incomplete' : null;
  const isRequest = buf[off] === 0x47; // 'G'
  const prefix = isRequest ? 'GET ' : 'HTTP/1.';
  const n = Math.min(prefix.length, end - off);
  for (let i = 0; i < n; i++) if (buf[off + i] !== prefix.charCodeAt(i)) return null;
  if (n < prefix.length) return 'incomplete';

  const limit = Math.min(end, off + MAX_UPGRADE_HEADER);
  const rel = buf.subarray(off, limit).indexOf('\r\n\r\n', 0, 'latin1');
  if (rel === -1) return limit - off >= MAX_UPGRADE_HEADER ? null : 'incomplete';
  const crlf2 = off + rel;
  const headerLength = rel + 4;

  const lines = buf.toString('latin1', off, crlf2).split('\r\n');
  let statusCode: number | null = null;
  if (isRequest) {
    if (!/^GET \S+ HTTP\/1\.\d$/.test(lines[0])) return null;
  } else {
    const m = /^HTTP\/1\.\d (\d{3})(?: |$)/.exec(lines[0]);
    if (!m) return null;
    statusCode = Number(m[1]);
  }
  let upgrade = false;
  const protocols: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'upgrade') {
      // A token list (RFC 7230 §6.7); protocol names compare case-insensitively.
      if (value.split(',').some((t) => t.trim().toLowerCase() === 'websocket')) upgrade = true;
    } else if (name === 'sec-websocket-protocol') {
      if (value) protocols.push(value);
    }
  }
  if (!upgrade) return null;
  return { headerLength, isRequest, protocol: protocols.length ? protocols.join(', ') : null, statusCode };
}
