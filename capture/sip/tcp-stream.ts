/**
 * SIP over TCP: one direction of a connection, fed in order by the TCP reassembler, framed into messages
 * by Content-Length (RFC 3261 §18.3). The same stream may instead carry SIP over WebSocket (after an HTTP
 * Upgrade) or HEP3 frames (an agent feeding HOMER over TCP); anything else is ignored.
 */
import type { TransportName } from '../../core/event.js';
import { hep3FrameLength } from '../../core/hep3.js';
import { parseWebSocketUpgrade, WebSocketDeframer } from '../layers/websocket.js';
import type { TcpEndReason, TcpSegmentMeta, TcpStreamSink } from '../reassembly/tcp.js';
import { isHep3, looksLikeSip } from './detect.js';
import type { Endpoint, SipExtractor } from './extractor.js';
import { sipMessageTotalLength, skipKeepalive } from './framing.js';

function hasLineFeed(buf: Buffer, from: number, end: number): boolean {
  for (let i = from; i < end; i++) if (buf[i] === 10) return true;
  return false;
}

/** True when buf[from - 3, end) holds an empty line (LF LF or LF CR LF): a header section may have ended. */
function hasEmptyLine(buf: Buffer, from: number, end: number): boolean {
  for (let i = Math.max(from - 3, 0); i < end; i++) {
    if (buf[i] !== 10) continue;
    if ((i + 1 < end && buf[i + 1] === 10) || (i + 2 < end && buf[i + 1] === 13 && buf[i + 2] === 10))
      return true;
  }
  return false;
}

const MODE_DETECT = 0;
const MODE_SIP = 1;
const MODE_WEBSOCKET = 2;
const MODE_OTHER = 3;
const MODE_HEP = 4;
/** A SIP stream that lost bytes: looking for the next line that starts a SIP message. */
const MODE_RESYNC = 5;

/**
 * One direction of a TCP connection: decides from the first bytes whether it carries SIP, a
 * WebSocket (after an HTTP Upgrade) or something else, then frames SIP messages by Content-Length.
 */
export class SipStream implements TcpStreamSink {
  private mode = MODE_DETECT;
  /** Bytes of an incomplete message carried between segments; grows by doubling, so appends are amortised O(1). */
  private pending: Buffer | null = null;
  private pendingLength = 0;
  /** Total length of the incomplete SIP message once its headers are in, or of the HEP frame (0 while unknown). */
  private need = 0;
  /** Packet of the last segment that brought bytes, for the report when the stream ends inside a message. */
  private lastPacketNumber = 0;
  private websocket: WebSocketDeframer | null = null;
  private transport: TransportName = 'tcp';

  constructor(
    private readonly owner: SipExtractor,
    private readonly endpoint: Endpoint,
  ) {}

  data(buf: Buffer, off: number, end: number, meta: TcpSegmentMeta): void {
    this.lastPacketNumber = meta.packetNumber;
    if (this.pendingLength > 0) {
      const before = this.pendingLength;
      if (before + (end - off) > this.owner.maxStreamMessageBytes + 65536) {
        this.owner.stats.streamOverflows++;
        this.owner.problem(
          'stream-overflow',
          'buffered stream data exceeds limit; dropped',
          meta.packetNumber,
          this.transport,
          this.endpoint,
        );
        this.dropPending();
        this.mode = MODE_DETECT;
      } else if (!this.append(buf, off, end)) {
        this.overflow(meta.packetNumber, 'stream buffers of all connections exceed their budget; dropped');
        return;
      } else {
        // While a SIP message is incomplete, look again only when it can have completed: its known
        // length is reached, or an empty line (the end of its headers) arrived in the new bytes.
        if (this.need > 0 && this.pendingLength < this.need) return;
        if (
          this.need === 0 &&
          this.mode === MODE_SIP &&
          !hasEmptyLine(this.pending!, before, this.pendingLength)
        ) {
          return;
        }
        buf = this.pending!;
        off = 0;
        end = this.pendingLength;
      }
    }
    let consumed = off;
    for (let guard = 0; guard < 4 && consumed < end; guard++) {
      if (this.mode === MODE_RESYNC) {
        const start = looksLikeSip(buf, consumed, end) ? consumed : this.nextSipLine(buf, consumed, end);
        if (start < 0) {
          this.dropPending();
          return;
        }
        this.mode = MODE_SIP;
        consumed = start;
        continue;
      }
      if (this.mode === MODE_DETECT || this.mode === MODE_OTHER) {
        const detected = this.detect(buf, consumed, end);
        if (detected === 'wait') break;
        if (detected === 'other') {
          this.mode = MODE_OTHER;
          this.dropPending();
          return;
        }
        consumed = detected;
        continue;
      }
      if (this.mode === MODE_SIP) {
        consumed = this.frameSip(buf, consumed, end, meta);
        break;
      }
      if (this.mode === MODE_HEP) {
        consumed = this.frameHep(buf, consumed, end, meta);
        break;
      }
      if (this.mode === MODE_WEBSOCKET) {
        this.dropPending();
        this.feedWebSocket(buf, consumed, end, meta);
        return;
      }
    }
    this.keep(buf, consumed, end);
  }

  /**
   * Keeps buf[from, end) as the pending bytes (moving them to the front when buf is the pending buffer).
   * The known length of the message they start (`need`) is kept too, so the segment that completes it
   * frames it.
   */
  private keep(buf: Buffer, from: number, end: number): void {
    const n = end - from;
    if (n <= 0) {
      this.dropPending();
      return;
    }
    if (buf === this.pending) {
      if (from > 0) buf.copy(buf, 0, from, end);
      this.pendingLength = n;
      return;
    }
    this.releasePending();
    if (!this.append(buf, from, end)) {
      this.overflow(0, 'stream buffers of all connections exceed their budget; dropped');
    }
  }

  /** Appends to the pending bytes; false (and nothing kept) when the shared budget is exhausted. */
  private append(buf: Buffer, off: number, end: number): boolean {
    const n = end - off;
    const needed = this.pendingLength + n;
    if (!this.pending || this.pending.length < needed) {
      const capacity = this.pending ? Math.max(needed, this.pending.length * 2) : needed;
      const growth = capacity - (this.pending?.length ?? 0);
      if (this.owner.pendingStreamBytes + growth > this.owner.maxPendingStreamBytes) return false;
      const grown = Buffer.allocUnsafe(capacity);
      if (this.pending) this.pending.copy(grown, 0, 0, this.pendingLength);
      this.owner.pendingStreamBytes += growth;
      this.pending = grown;
    }
    buf.copy(this.pending, this.pendingLength, off, end);
    this.pendingLength = needed;
    return true;
  }

  /** Forgets the pending bytes and the length of the message they start. */
  private dropPending(): void {
    this.releasePending();
    this.need = 0;
  }

  /** Returns the pending buffer to the shared budget. */
  private releasePending(): void {
    if (this.pending) this.owner.pendingStreamBytes -= this.pending.length;
    this.pending = null;
    this.pendingLength = 0;
  }

  /** The stream's share of the shared budget ran out: its partial message is lost, counted and logged. */
  private overflow(packetNumber: number, why: string): void {
    this.owner.stats.streamOverflows++;
    this.owner.problem('stream-overflow', why, packetNumber, this.transport, this.endpoint);
    this.dropPending();
    if (this.mode === MODE_SIP || this.mode === MODE_HEP) this.mode = MODE_RESYNC;
  }

  /** Returns the offset where the detected protocol starts, 'wait' for more bytes, or 'other'. */
  private detect(buf: Buffer, off: number, end: number): number | 'wait' | 'other' {
    const start = skipKeepalive(buf, off, end);
    if (start >= end) return end;
    if (looksLikeSip(buf, start, end)) {
      this.mode = MODE_SIP;
      return start;
    }
    if (end - start >= 4 && isHep3(buf, start)) {
      this.mode = MODE_HEP;
      return start;
    }
    const upgrade = parseWebSocketUpgrade(buf, start, end);
    if (upgrade === 'incomplete') return this.mode === MODE_OTHER ? 'other' : 'wait';
    // A response switches to WebSocket framing only when it accepts the upgrade (101).
    if (upgrade !== null && (upgrade.isRequest || upgrade.statusCode === 101)) {
      this.mode = MODE_WEBSOCKET;
      this.transport = 'ws';
      this.websocket = new WebSocketDeframer({ maxMessageBytes: this.owner.maxStreamMessageBytes });
      return start + upgrade.headerLength;
    }
    // A first line may arrive split; wait for a full line before giving up on this stream.
    if (this.mode === MODE_DETECT && end - start < 1024 && !hasLineFeed(buf, start, end)) return 'wait';
    return 'other';
  }

  private frameSip(buf: Buffer, off: number, end: number, meta: TcpSegmentMeta): number {
    this.need = 0;
    while (off < end) {
      off = skipKeepalive(buf, off, end);
      if (off >= end) break;
      const length = sipMessageTotalLength(buf, off, end);
      if (length === -1 || (length > 0 && off + length > end)) {
        if (end - off > this.owner.maxStreamMessageBytes) {
          this.owner.stats.streamOverflows++;
          this.owner.problem(
            'stream-overflow',
            'SIP message exceeds limit; resynchronising',
            meta.packetNumber,
            'tcp',
            this.endpoint,
          );
          return this.resync(buf, off + 1, end);
        }
        // Headers complete, body still arriving: wait for exactly that many bytes.
        if (length > 0) this.need = length;
        return off;
      }
      if (length <= 0) {
        this.owner.stats.streamResyncs++;
        this.owner.problem(
          'stream-resync',
          'bytes that are not SIP inside a SIP stream',
          meta.packetNumber,
          'tcp',
          this.endpoint,
        );
        off = this.resync(buf, off + 1, end);
        continue;
      }
      this.owner.message(
        buf,
        off,
        off + length,
        'tcp',
        this.endpoint,
        6,
        meta.tsSec,
        meta.tsNsec,
        meta.packetNumber,
      );
      off += length;
    }
    return off;
  }

  private frameHep(buf: Buffer, off: number, end: number, meta: TcpSegmentMeta): number {
    this.need = 0;
    while (off < end) {
      const length = hep3FrameLength(buf, off, end);
      if (length === -1) {
        // The frame length is in its header: wait for all of it before looking again.
        if (end - off >= 6) this.need = buf.readUInt16BE(off + 4);
        return off;
      }
      if (length < 0) {
        // Lost framing: look for the next frame start on a later segment.
        this.owner.stats.malformedHep++;
        this.owner.problem(
          'malformed-hep',
          'bytes that are not HEP3 inside a HEP stream',
          meta.packetNumber,
          'tcp',
          this.endpoint,
        );
        this.mode = MODE_OTHER;
        return end;
      }
      this.owner.hep(buf, off, off + length, this.endpoint, 'tcp', meta.packetNumber);
      off += length;
    }
    return off;
  }

  /** Skips to the next line that starts a SIP message; without one, waits for it in later segments. */
  private resync(buf: Buffer, off: number, end: number): number {
    const next = this.nextSipLine(buf, off, end);
    if (next >= 0) return next;
    this.mode = MODE_RESYNC;
    return end;
  }

  /** Offset of the first line after `off` that starts a SIP message, or -1; never reads past `end`. */
  private nextSipLine(buf: Buffer, off: number, end: number): number {
    for (let i = off; i + 1 < end; i++) {
      if (buf[i] === 10 && looksLikeSip(buf, i + 1, end)) return i + 1;
    }
    return -1;
  }

  private feedWebSocket(buf: Buffer, off: number, end: number, meta: TcpSegmentMeta): void {
    const ws = this.websocket!;
    const errorsBefore = ws.errors;
    ws.feed(buf, off, end, (payload) => {
      if (payload.length >= 12 && looksLikeSip(payload, 0, payload.length)) {
        this.owner.message(
          payload,
          0,
          payload.length,
          'ws',
          this.endpoint,
          6,
          meta.tsSec,
          meta.tsNsec,
          meta.packetNumber,
          true,
        );
      }
    });
    if (ws.errors !== errorsBefore) {
      this.owner.stats.webSocketErrors += ws.errors - errorsBefore;
      this.owner.problem(
        'websocket-error',
        'WebSocket framing error',
        meta.packetNumber,
        'ws',
        this.endpoint,
      );
    }
  }

  gap(_bytes: number): void {
    // Lost bytes break the partial message; later bytes are searched for the next message start.
    this.dropPending();
    if (this.mode === MODE_SIP) this.mode = MODE_RESYNC;
    else if (this.mode === MODE_HEP) this.mode = MODE_OTHER;
  }

  end(reason: TcpEndReason): void {
    if (this.pendingLength > 0 && (this.mode === MODE_SIP || this.mode === MODE_HEP)) this.truncated(reason);
    this.dropPending();
  }

  /** The stream ended inside a message: its bytes are lost, counted and logged (with its Call-ID if known). */
  private truncated(reason: TcpEndReason): void {
    const bytes = this.pendingLength;
    const stats = this.owner.stats;
    stats.streamTruncated++;
    stats.streamTruncatedBytes += bytes;
    const sip = this.mode === MODE_SIP;
    let callId: string | undefined;
    // A known length means the header section is complete, so the Call-ID line is whole.
    if (sip && this.need > 0) {
      const parsed = this.owner.parser.parse(this.pending!, 0, bytes, { transportIsStream: true });
      if (parsed.ok) callId = parsed.message.callId ?? undefined;
    }
    this.owner.problem(
      'stream-truncated',
      `TCP stream ended (${reason}) inside a ${sip ? 'SIP message' : 'HEP frame'}: ${bytes} bytes lost`,
      this.lastPacketNumber,
      this.transport,
      this.endpoint,
      callId,
    );
  }
}
