/**
 * HEP3 sender: ships capture events to HOMER, heplify-server, sngrep or callscope's own listener.
 * UDP sends one frame per datagram; TCP concatenates frames on one connection that is re-opened with
 * backoff when lost. `send` never blocks and never throws on an event: a bounded queue absorbs bursts
 * and outages, and what does not fit is dropped and counted. Frame format: docs/HEP.md.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, isIPv6, type Socket } from 'node:net';
import type { CaptureEvent } from '../../core/event.js';
import { encodeHep3 } from '../../core/hep3.js';
import { type Logger, ProblemLog, silentLogger } from '../../core/log.js';

export interface HepSenderOptions {
  /** "udp:host:port" or "tcp:host:port"; an IPv6 host may be bracketed ("udp:[::1]:9060"). */
  target: string;
  /** Sent as chunk 14 in every frame. */
  authKey?: string;
  /** Replaces each event's captureId (chunk 12) when set: identifies this agent to HOMER. */
  captureId?: number;
  /** Frames waiting to be sent, at most; send() drops beyond it (default 10,000). */
  maxQueue?: number;
  /** The same limit in bytes (default 64 MiB): 10,000 frames of 64 KiB would be 640 MB. */
  maxQueueBytes?: number;
  logger?: Logger;
  /** TCP reconnect backoff: first delay, doubled per failure up to the maximum (defaults 100 ms, 30 s). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** How long close() waits for queued frames to go out before dropping them (default 2,000 ms). */
  closeTimeoutMs?: number;
}

export interface HepSenderStats {
  /** Frames handed to the kernel (UDP sent, TCP written). */
  sent: number;
  /** Events not sent because the queue was full or the sender closed. */
  dropped: number;
  /** Events that could not be encoded (too large for HEP, bad field) or sent, and connection errors. */
  errors: number;
  /** Events no HEP frame (or, over UDP, no datagram) can carry. */
  unsendable: number;
  /** Frames whose UDP send failed. */
  failed: number;
  /** TCP connection attempts after the first. */
  reconnects: number;
}

export interface HepTarget {
  transport: 'udp' | 'tcp';
  host: string;
  port: number;
}

/** Parses "udp:host:port" / "tcp:host:port"; throws TypeError on anything else (a configuration error). */
export function parseHepTarget(target: string): HepTarget {
  const m = /^(udp|tcp):(.+):(\d{1,5})$/i.exec(target.trim());
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) {
    throw new TypeError(`HEP target "${target}" is not udp:HOST:PORT or tcp:HOST:PORT`);
  }
  const host = m[2].startsWith('[') && m[2].endsWith(']') ? m[2].slice(1, -1) : m[2];
  return { transport: m[1].toLowerCase() as 'udp' | 'tcp', host, port };
}

/** Largest UDP payload: 65,535 minus the IP and UDP headers (IPv4 20 + 8; IPv6's length excludes its header). */
const MAX_UDP_PAYLOAD_V4 = 65_507;
const MAX_UDP_PAYLOAD_V6 = 65_527;
/** UDP sends handed to libuv at once: enough to keep the socket busy, few enough to stay bounded. */
const UDP_WINDOW = 64;

interface TcpConnection {
  socket: Socket;
  connected: boolean;
  /** Frames written but not yet flushed to the kernel: re-sent on the next connection if this one dies. */
  unflushed: Buffer[];
  dead: boolean;
}

export class HepSender {
  readonly stats: HepSenderStats = {
    sent: 0,
    dropped: 0,
    errors: 0,
    unsendable: 0,
    failed: 0,
    reconnects: 0,
  };
  readonly target: HepTarget;
  private readonly logger: Logger;
  private readonly problems: ProblemLog;
  private readonly maxQueue: number;
  private readonly maxQueueBytes: number;
  /** Bytes of the frames counted by pending(). */
  private pendingBytes = 0;
  private readonly reconnectMin: number;
  private readonly reconnectMax: number;
  /** FIFO of encoded frames; `head` avoids an O(n) shift per frame. */
  private queue: Buffer[] = [];
  private head = 0;
  private udp: UdpSocket | null = null;
  private udpInFlight = 0;
  private tcp: TcpConnection | null = null;
  private backoff: number;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private connectedOnce = false;
  private closing: Promise<void> | null = null;
  private closed = false;
  private flushWaiters: (() => void)[] = [];

  constructor(private readonly options: HepSenderOptions) {
    this.target = parseHepTarget(options.target);
    this.logger = options.logger ?? silentLogger;
    this.problems = new ProblemLog(this.logger);
    this.maxQueue = Math.max(1, options.maxQueue ?? 10_000);
    this.maxQueueBytes = Math.max(1, options.maxQueueBytes ?? 64 << 20);
    this.reconnectMin = options.reconnectMinMs ?? 100;
    this.reconnectMax = Math.max(this.reconnectMin, options.reconnectMaxMs ?? 30_000);
    this.backoff = this.reconnectMin;
  }

  /**
   * Encodes and queues one event. False when it was not queued: dropped (queue full, sender closed)
   * or an error (too large for a HEP frame, a field out of range), each counted and logged.
   */
  send(event: CaptureEvent): boolean {
    if (this.closing) {
      this.stats.dropped++;
      this.problems.report('closed', 'HEP sender closed: event dropped', this.where(event));
      return false;
    }
    if (this.pending() >= this.maxQueue || this.pendingBytes >= this.maxQueueBytes) {
      this.stats.dropped++;
      this.problems.report('queue-full', 'HEP sender queue full: event dropped', {
        ...this.where(event),
        queued: this.pending(),
        queuedBytes: this.pendingBytes,
      });
      return false;
    }
    let frame: Buffer;
    try {
      const e =
        this.options.captureId === undefined ? event : { ...event, captureId: this.options.captureId };
      frame = encodeHep3(e, { authKey: this.options.authKey });
    } catch (err) {
      this.stats.errors++;
      this.stats.unsendable++;
      this.problems.report('encode', (err as Error).message, this.where(event));
      return false;
    }
    if (this.target.transport === 'udp') {
      const max = isIPv6(this.target.host) ? MAX_UDP_PAYLOAD_V6 : MAX_UDP_PAYLOAD_V4;
      if (frame.length > max) {
        // A valid HEP frame, but no UDP datagram can carry it: only HEP over TCP can.
        this.stats.errors++;
        this.stats.unsendable++;
        this.problems.report('too-big-for-udp', `HEP frame of ${frame.length} bytes exceeds a UDP datagram`, {
          ...this.where(event),
          max,
        });
        return false;
      }
    }
    this.queue.push(frame);
    this.pendingBytes += frame.length;
    this.pump();
    return true;
  }

  /** Resolves when every frame queued so far has been handed to the kernel (or the sender is closed). */
  flush(): Promise<void> {
    if (this.closed || this.pending() === 0) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  /**
   * Waits up to closeTimeoutMs for queued frames to go out, then drops what is left (counted),
   * closes the socket and stops reconnecting.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.flush(),
      new Promise<void>((done) => {
        timer = setTimeout(done, this.options.closeTimeoutMs ?? 2000);
      }),
    ]);
    clearTimeout(timer);
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const left = this.queue.length - this.head + (this.tcp?.unflushed.length ?? 0);
    if (left > 0) {
      this.stats.dropped += left;
      this.logger.warn('HEP sender closed with frames unsent', {
        target: this.options.target,
        dropped: left,
      });
    }
    this.queue = [];
    this.head = 0;
    this.pendingBytes = 0;
    const tcp = this.tcp;
    if (tcp) {
      tcp.dead = true;
      tcp.unflushed = [];
      await new Promise<void>((done) => {
        tcp.socket.once('close', () => done());
        // end() sends what is written, then FIN; destroy only if the peer never answers.
        tcp.socket.end();
        setTimeout(() => tcp.socket.destroy(), 1000).unref();
      });
    }
    const udp = this.udp;
    if (udp) await new Promise<void>((done) => udp.close(() => done()));
    this.wakeFlushWaiters();
    this.problems.summary({ component: 'hep-sender', target: this.options.target });
    this.logger.info('HEP sender closed', { target: this.options.target, ...this.stats });
  }

  // -------------------------------------------------------------------------------------------

  /** Frames queued or handed to a socket but not yet confirmed. */
  private pending(): number {
    return this.queue.length - this.head + this.udpInFlight + (this.tcp?.unflushed.length ?? 0);
  }

  private take(): Buffer {
    const frame = this.queue[this.head++];
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return frame;
  }

  private where(event: CaptureEvent): Record<string, string | number | undefined> {
    return {
      target: this.options.target,
      callId: event.correlationId || event.sip?.callId || undefined,
      file: event.source?.file,
      packet: event.source?.packetNumber,
    };
  }

  private pump(): void {
    if (this.closed) return;
    if (this.target.transport === 'udp') this.pumpUdp();
    else this.pumpTcp();
    this.checkFlushed();
  }

  private pumpUdp(): void {
    if (!this.udp) {
      const udp = createSocket(isIPv6(this.target.host) ? 'udp6' : 'udp4');
      udp.on('error', (err) => {
        this.stats.errors++;
        this.problems.report('udp-error', 'HEP UDP socket error', {
          target: this.options.target,
          error: err.message,
        });
      });
      this.udp = udp;
    }
    const udp = this.udp;
    while (this.head < this.queue.length && this.udpInFlight < UDP_WINDOW) {
      const frame = this.take();
      this.udpInFlight++;
      udp.send(frame, this.target.port, this.target.host, (err) => {
        this.udpInFlight--;
        this.pendingBytes -= frame.length;
        if (err) {
          this.stats.errors++;
          this.stats.failed++;
          this.problems.report('udp-send', 'HEP UDP send failed', {
            target: this.options.target,
            error: err.message,
          });
        } else {
          this.stats.sent++;
        }
        this.pump();
      });
    }
  }

  private pumpTcp(): void {
    const tcp = this.tcp;
    if (!tcp) {
      if (!this.reconnectTimer) this.connectTcp();
      return;
    }
    if (!tcp.connected) return;
    while (this.head < this.queue.length && !tcp.socket.writableNeedDrain) {
      const frame = this.take();
      tcp.unflushed.push(frame);
      tcp.socket.write(frame, (err) => {
        // A failed write is re-sent from `unflushed` by the close handler; success confirms in order.
        if (tcp.dead || err) return;
        tcp.unflushed.shift();
        this.pendingBytes -= frame.length;
        this.stats.sent++;
        this.checkFlushed();
      });
    }
  }

  private connectTcp(): void {
    const socket = connect({ host: this.target.host, port: this.target.port });
    const tcp: TcpConnection = { socket, connected: false, unflushed: [], dead: false };
    this.tcp = tcp;
    socket.setKeepAlive(true, 30_000);
    socket.on('connect', () => {
      tcp.connected = true;
      this.backoff = this.reconnectMin;
      this.logger.info(this.connectedOnce ? 'HEP sender reconnected' : 'HEP sender connected', {
        target: this.options.target,
      });
      this.connectedOnce = true;
      this.pump();
    });
    socket.on('drain', () => this.pump());
    // HEP receivers send nothing back; read and discard so a chatty peer cannot fill our buffers.
    socket.on('data', () => {});
    socket.on('error', (err) => {
      this.stats.errors++;
      this.problems.report('tcp-error', 'HEP TCP connection error', {
        target: this.options.target,
        error: err.message,
      });
    });
    socket.on('close', () => {
      if (tcp.dead) return;
      tcp.dead = true;
      this.tcp = null;
      // Frames the kernel never took go first on the next connection, in their order.
      if (tcp.unflushed.length > 0) {
        this.queue = tcp.unflushed.concat(this.queue.slice(this.head));
        this.head = 0;
      }
      if (this.closed) return;
      if (tcp.connected) {
        this.problems.report('tcp-lost', 'HEP TCP connection lost; reconnecting', {
          target: this.options.target,
        });
      }
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    // Up to 20 % jitter so many agents that lost the same collector do not return in lockstep.
    const delay = Math.round(this.backoff * (1 + Math.random() * 0.2));
    this.backoff = Math.min(this.backoff * 2, this.reconnectMax);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.closed) return;
      this.stats.reconnects++;
      this.connectTcp();
    }, delay);
  }

  private checkFlushed(): void {
    if (this.flushWaiters.length > 0 && this.pending() === 0) this.wakeFlushWaiters();
  }

  private wakeFlushWaiters(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiters) w();
  }
}
