/**
 * HEP3 listener: receives HEP from agents that already emit it (Kamailio siptrace, Asterisk res_hep,
 * FreeSWITCH, heplify, sngrep, callscope's own HepSender) over UDP and TCP, and hands the events to
 * the same path as local capture. Frame format and interop notes: docs/HEP.md.
 *
 * Everything that arrives is hostile until decoded: bad frames are counted and logged with the peer,
 * never thrown. Memory is bounded: per TCP connection at most one partial frame (64 KiB) and the rest
 * of one read, at most `maxTcpConnections` connections, and a queue of events that stops growing at
 * `maxFrameQueue` events or `maxQueueBytes`: UDP frames beyond it are dropped, TCP decoding stops and
 * the socket pauses (its sender sees TCP backpressure).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { CaptureEvent } from '../../core/event.js';
import { decodeHep3 } from '../../core/hep3.js';
import { type LogFields, type Logger, ProblemLog, silentLogger } from '../../core/log.js';
import { IngestSip } from '../sip.js';
import { HepTcpFramer } from './tcp-framer.js';

export interface HepListenerOptions {
  /** Address to bind; default 0.0.0.0 (tests use 127.0.0.1). An IPv6 address binds IPv6 sockets. */
  host?: string;
  /** Port for both UDP and TCP; default 9060, 0 = ephemeral (TCP then tries UDP's port first). */
  port?: number;
  udp?: boolean;
  tcp?: boolean;
  /** When set, frames whose chunk 14 is not exactly this key are dropped and counted. */
  authKey?: string;
  /** Connections beyond this are closed at once and counted (default 256). */
  maxTcpConnections?: number;
  /**
   * Connections from one address beyond this are closed at once and counted (default 32): one source
   * cannot take every slot. Below maxTcpConnections.
   */
  maxTcpConnectionsPerSource?: number;
  /** A connection that sends nothing this long is closed (default 30,000 ms). */
  tcpIdleTimeoutMs?: number;
  /**
   * A connection that holds a partial frame this long is closed (default 10,000 ms): a frame of at
   * most 64 KiB takes milliseconds to arrive. With an auth key set, this is also how long a new
   * connection has to complete its first, authenticating frame.
   */
  partialFrameTimeoutMs?: number;
  /** Events waiting for onEvents beyond which UDP frames are dropped and TCP reads pause (default 10,000). */
  maxFrameQueue?: number;
  /** The same limit in payload bytes (default 64 MiB): 10,000 frames of 64 KiB would be 640 MB. */
  maxQueueBytes?: number;
  logger?: Logger;
  /**
   * Receives events in batches. While a returned promise is pending no further batch is delivered:
   * TCP sockets are paused (their senders see TCP backpressure) and UDP frames queue up to
   * maxFrameQueue, then are dropped. A throw or rejection is counted and logged; that batch is lost.
   */
  onEvents: (events: CaptureEvent[]) => Promise<void> | void;
}

/** Why the listener refused or closed a TCP connection. */
export type TcpCloseReason =
  | 'too-many-connections'
  | 'too-many-from-source'
  | 'idle-timeout'
  | 'partial-frame-timeout'
  | 'auth'
  | 'desync';

export interface HepListenerStats {
  /** HEP frames received (UDP datagrams and TCP frames), whatever became of them. */
  frames: number;
  /** Events handed to onEvents. */
  events: number;
  /** Frames that did not decode, TCP streams that were not HEP3 or ended mid-frame. */
  malformed: number;
  /** Frames with a missing or wrong auth key (the TCP connection is closed too). */
  authFailures: number;
  keepAlives: number;
  /** UDP frames dropped because maxFrameQueue events were already waiting. */
  dropped: number;
  /** TCP connections accepted, in total. */
  tcpConnections: number;
  /** TCP connections open now. */
  tcpOpen: number;
  /** TCP connections closed at once because maxTcpConnections were open. */
  tcpRefused: number;
  /** TCP connections refused or closed, by reason. */
  tcpClosedBy: Record<TcpCloseReason, number>;
  /** TCP connections closed because the stream stopped being HEP3 (there is no resync marker). */
  tcpDesyncs: number;
  /** SIP events (type 1) whose payload did not parse as SIP: delivered without `sip`. */
  sipUnparsed: number;
  /** Retransmission state forgotten at its bound (ingest/sip.ts). */
  retransmissionStatesForgotten: number;
  /** Batches whose onEvents threw or rejected. */
  deliveryErrors: number;
}

/** What the timeout sweep knows of one TCP connection. */
interface Connection {
  framer: HepTcpFramer;
  peer: string;
  /** When data last arrived. */
  lastData: number;
  /** Since when the peer has left a frame incomplete; null when it has none. */
  partialSince: number | null;
  /** A frame with the right auth key arrived (always true without an auth key). */
  authenticated: boolean;
}

const DEFAULT_PORT = 9060;
const DEFAULT_MAX_TCP = 256;
const DEFAULT_MAX_TCP_PER_SOURCE = 32;
const DEFAULT_IDLE_MS = 30_000;
const DEFAULT_PARTIAL_FRAME_MS = 10_000;
const DEFAULT_MAX_QUEUE = 10_000;
const DEFAULT_MAX_QUEUE_BYTES = 64 << 20;
/** Asked of the kernel for bursts from many agents; Linux caps it at net.core.rmem_max. */
const UDP_RECEIVE_BUFFER = 4 << 20;

/** "ip:port", with brackets for IPv6; IPv4-mapped addresses (dual-stack sockets) shown as IPv4. */
function peerName(address: string | undefined, port: number | undefined): string {
  let a = address ?? '?';
  if (a.startsWith('::ffff:') && a.includes('.')) a = a.slice(7);
  return a.includes(':') ? `[${a}]:${port ?? 0}` : `${a}:${port ?? 0}`;
}

/** Constant-time comparison of keys of any length: both sides are hashed to 32 bytes first. */
function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export class HepListener {
  readonly stats: HepListenerStats = {
    frames: 0,
    events: 0,
    malformed: 0,
    authFailures: 0,
    keepAlives: 0,
    dropped: 0,
    tcpConnections: 0,
    tcpOpen: 0,
    tcpRefused: 0,
    tcpClosedBy: {
      'too-many-connections': 0,
      'too-many-from-source': 0,
      'idle-timeout': 0,
      'partial-frame-timeout': 0,
      auth: 0,
      desync: 0,
    },
    tcpDesyncs: 0,
    sipUnparsed: 0,
    retransmissionStatesForgotten: 0,
    deliveryErrors: 0,
  };
  private _udpPort = 0;
  private _tcpPort = 0;
  private udp: UdpSocket | null = null;
  private server: Server | null = null;
  /** Open connections, each with the hook that decodes what its framer held back when paused. */
  private readonly sockets = new Map<Socket, (force: boolean) => void>();
  /** What the timeout sweep checks of each connection. */
  private readonly connections = new Map<Socket, Connection>();
  /** Open connections per remote address. */
  private readonly perSource = new Map<string, number>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly maxPerSource: number;
  private readonly idleMs: number;
  private readonly partialMs: number;
  private readonly logger: Logger;
  private readonly problems: ProblemLog;
  /** Parses SIP payloads once and marks retransmissions (HEP carries no such flag). */
  private readonly sip: IngestSip;
  private readonly authDigest: Buffer | null;
  private readonly maxTcp: number;
  private readonly maxQueue: number;
  private readonly maxQueueBytes: number;
  private readonly onEvents: HepListenerOptions['onEvents'];
  private queue: CaptureEvent[] = [];
  private queuedBytes = 0;
  /** An onEvents promise is pending. */
  private busy = false;
  private scheduled = false;
  private closed = false;
  private closing: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];

  private constructor(private readonly options: HepListenerOptions) {
    this.logger = options.logger ?? silentLogger;
    this.problems = new ProblemLog(this.logger);
    this.sip = new IngestSip({ logger: this.logger });
    this.authDigest = options.authKey ? sha256(options.authKey) : null;
    this.maxTcp = options.maxTcpConnections ?? DEFAULT_MAX_TCP;
    this.maxPerSource = Math.min(
      this.maxTcp,
      Math.max(1, options.maxTcpConnectionsPerSource ?? DEFAULT_MAX_TCP_PER_SOURCE),
    );
    this.idleMs = Math.max(1, options.tcpIdleTimeoutMs ?? DEFAULT_IDLE_MS);
    this.partialMs = Math.max(1, options.partialFrameTimeoutMs ?? DEFAULT_PARTIAL_FRAME_MS);
    this.maxQueue = Math.max(1, options.maxFrameQueue ?? DEFAULT_MAX_QUEUE);
    this.maxQueueBytes = Math.max(1, options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES);
    this.onEvents = options.onEvents;
  }

  /** Binds the sockets; rejects (after releasing what was bound) when a port cannot be bound. */
  static async start(options: HepListenerOptions): Promise<HepListener> {
    const listener = new HepListener(options);
    try {
      await listener.bind();
    } catch (err) {
      await listener.close();
      throw err;
    }
    return listener;
  }

  /** Bound UDP port (0 when UDP is off). */
  get udpPort(): number {
    return this._udpPort;
  }

  /** Bound TCP port (0 when TCP is off). */
  get tcpPort(): number {
    return this._tcpPort;
  }

  /**
   * Stops receiving (UDP socket and TCP server closed, connections destroyed), then delivers the
   * events already received and waits for onEvents to finish, so the caller can close downstream next.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    // Frames already read from a connection were received: decode them before letting go.
    for (const drain of this.sockets.values()) drain(true);
    this.closed = true;
    const udp = this.udp;
    const server = this.server;
    // Wait for each connection's own 'close' too: stats.tcpOpen must read 0 once close() resolves.
    const sockets = [...this.sockets.keys()].map(
      (s) => new Promise<void>((done) => s.once('close', () => done())),
    );
    for (const s of this.sockets.keys()) s.destroy();
    await Promise.all([
      ...sockets,
      udp
        ? new Promise<void>((done) => {
            try {
              udp.close(() => done());
            } catch {
              done(); // never bound (start failed): nothing to close
            }
          })
        : null,
      server?.listening ? new Promise<void>((done) => server.close(() => done())) : null,
    ]);
    await this.idle();
    this.problems.summary({ component: 'hep-listener' });
    this.logger.info('HEP listener closed', this.statsFields());
  }

  /** The counters as flat log fields (closings by reason as `tcpClosed.<reason>`). */
  statsFields(): LogFields {
    const { tcpClosedBy, ...rest } = this.stats;
    const fields: LogFields = { ...rest };
    for (const [reason, n] of Object.entries(tcpClosedBy)) if (n > 0) fields[`tcpClosed.${reason}`] = n;
    return fields;
  }

  // -------------------------------------------------------------------------------------------
  // Sockets

  private async bind(): Promise<void> {
    const o = this.options;
    const host = o.host ?? '0.0.0.0';
    const port = o.port ?? DEFAULT_PORT;
    const wantUdp = o.udp ?? true;
    const wantTcp = o.tcp ?? true;
    if (!wantUdp && !wantTcp) throw new Error('HepListener: neither udp nor tcp is enabled');
    if (wantUdp) this._udpPort = await this.bindUdp(host, port);
    if (wantTcp) {
      // With an ephemeral port, one number for both transports is what agents configured for 9060 expect.
      if (port === 0 && this._udpPort !== 0) {
        try {
          this._tcpPort = await this.listenTcp(host, this._udpPort);
        } catch {
          this._tcpPort = await this.listenTcp(host, 0);
        }
      } else {
        this._tcpPort = await this.listenTcp(host, port);
      }
    }
    this.logger.info('HEP listener started', { host, udpPort: this._udpPort, tcpPort: this._tcpPort });
  }

  private bindUdp(host: string, port: number): Promise<number> {
    const udp = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    this.udp = udp;
    return new Promise((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, host, () => {
        udp.off('error', reject);
        udp.on('error', (err) =>
          this.problems.report('udp-error', 'HEP UDP socket error', { error: err.message }),
        );
        try {
          udp.setRecvBufferSize(UDP_RECEIVE_BUFFER);
        } catch {
          // Only a hint: the kernel default still works at moderate rates.
        }
        udp.on('message', (msg, rinfo) => this.datagram(msg, rinfo));
        resolve(udp.address().port);
      });
    });
  }

  private listenTcp(host: string, port: number): Promise<number> {
    const server = createServer((socket) => this.accept(socket));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host }, () => {
        server.off('error', reject);
        server.on('error', (err) =>
          this.problems.report('tcp-server-error', 'HEP TCP server error', { error: err.message }),
        );
        this.server = server;
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  private datagram(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closed) return;
    if (this.queueFull()) {
      // UDP has no backpressure: dropping here keeps memory bounded while onEvents is slow.
      this.stats.frames++;
      this.stats.dropped++;
      this.problems.report('dropped', 'HEP frame dropped: event queue full', {
        peer: peerName(rinfo.address, rinfo.port),
        transport: 'udp',
        queued: this.queue.length,
      });
      return;
    }
    this.frame(msg, 0, msg.length, 'udp', peerName(rinfo.address, rinfo.port));
  }

  private accept(socket: Socket): void {
    const peer = peerName(socket.remoteAddress, socket.remotePort);
    const source = peerName(socket.remoteAddress, 0).replace(/:0$/, '');
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.sockets.size >= this.maxTcp) {
      this.refuse(socket, 'too-many-connections', peer, { open: this.sockets.size });
      return;
    }
    const fromSource = this.perSource.get(source) ?? 0;
    if (fromSource >= this.maxPerSource) {
      this.refuse(socket, 'too-many-from-source', peer, { open: fromSource });
      return;
    }
    this.perSource.set(source, fromSource + 1);
    this.stats.tcpConnections++;
    this.stats.tcpOpen++;
    const framer = new HepTcpFramer();
    const connection: Connection = {
      framer,
      peer,
      lastData: Date.now(),
      partialSince: null,
      authenticated: this.authDigest === null,
    };
    let rejected = false;
    let force = false;
    const onFrame = (buf: Buffer, off: number, end: number): boolean => {
      if (!this.frame(buf, off, end, 'tcp', peer)) {
        rejected = true;
        return false;
      }
      connection.authenticated = true;
      // At the queue limit decoding stops: the rest of the read waits in the framer, the socket pauses.
      return force || !this.queueFull();
    };
    const feed = (chunk: Buffer | null): void => {
      if (rejected || this.closed) return;
      if (chunk) connection.lastData = Date.now();
      const error = chunk ? framer.push(chunk, onFrame) : framer.resume(onFrame);
      if (error) {
        // HEP over TCP has no resync marker: the only way back to a frame boundary is a new connection.
        this.stats.malformed++;
        this.stats.tcpDesyncs++;
        this.stats.tcpClosedBy.desync++;
        this.problems.report('tcp-desync', 'HEP TCP stream is not HEP3; closing the connection', {
          peer,
          transport: 'tcp',
          error,
        });
        rejected = true;
      } else if (rejected) this.stats.tcpClosedBy.auth++;
      // A partial frame the peer has not completed (not one we hold back while the sinks are busy).
      if (framer.pendingBytes > 0 && !framer.holding) connection.partialSince ??= Date.now();
      else connection.partialSince = null;
      if (rejected) socket.destroy();
      else if (framer.holding || this.mustPause()) socket.pause();
    };
    const drain = (all: boolean): void => {
      force = all;
      feed(null);
      force = false;
      if (!rejected && !this.closed && !framer.holding && !this.mustPause()) socket.resume();
    };
    this.sockets.set(socket, drain);
    this.connections.set(socket, connection);
    this.armSweep();
    if (this.mustPause()) socket.pause();
    socket.on('data', feed);
    socket.on('end', () => {
      if (!rejected && framer.pendingBytes > 0) {
        this.stats.malformed++;
        this.problems.report('tcp-truncated', 'HEP TCP connection ended inside a frame', {
          peer,
          transport: 'tcp',
          bytes: framer.pendingBytes,
        });
      }
    });
    socket.on('error', (err) =>
      this.problems.report('tcp-error', 'HEP TCP connection error', { peer, error: err.message }, 'info'),
    );
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.connections.delete(socket);
      const left = (this.perSource.get(source) ?? 1) - 1;
      if (left > 0) this.perSource.set(source, left);
      else this.perSource.delete(source);
      this.stats.tcpOpen--;
    });
  }

  private refuse(socket: Socket, reason: TcpCloseReason, peer: string, fields: LogFields): void {
    this.stats.tcpRefused++;
    this.stats.tcpClosedBy[reason]++;
    this.problems.report(`tcp-${reason}`, `HEP TCP connection refused: ${reason.replaceAll('-', ' ')}`, {
      peer,
      ...fields,
    });
    socket.destroy();
  }

  /**
   * Closes connections that went silent, or hold a frame they do not complete (an unauthenticated one
   * has that long to send its first frame). Connections the listener itself paused (the sinks are
   * busy) are not timed out: the wait is ours, not theirs.
   */
  private sweep(): void {
    const now = Date.now();
    const paused = this.mustPause();
    for (const [socket, c] of this.connections) {
      if (paused || c.framer.holding) {
        c.lastData = now;
        if (c.partialSince !== null) c.partialSince = now;
        continue;
      }
      let reason: TcpCloseReason | null = null;
      if (c.partialSince !== null && now - c.partialSince >= this.partialMs) reason = 'partial-frame-timeout';
      else if (!c.authenticated && now - c.lastData >= this.partialMs) reason = 'partial-frame-timeout';
      else if (now - c.lastData >= this.idleMs) reason = 'idle-timeout';
      if (reason === null) continue;
      this.stats.tcpClosedBy[reason]++;
      this.problems.report(`tcp-${reason}`, `HEP TCP connection closed: ${reason.replaceAll('-', ' ')}`, {
        peer: c.peer,
        pendingBytes: c.framer.pendingBytes,
      });
      this.connections.delete(socket);
      socket.destroy();
    }
    if (this.connections.size === 0 && this.sweepTimer !== null) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  private armSweep(): void {
    if (this.sweepTimer !== null) return;
    const every = Math.max(50, Math.min(1000, Math.floor(Math.min(this.idleMs, this.partialMs) / 4)));
    this.sweepTimer = setInterval(() => this.sweep(), every);
    this.sweepTimer.unref();
  }

  // -------------------------------------------------------------------------------------------
  // Frames

  /** Decodes one frame into the queue. Returns false when the peer failed authentication. */
  private frame(buf: Buffer, off: number, end: number, transport: 'udp' | 'tcp', peer: string): boolean {
    const packetNumber = ++this.stats.frames;
    const decoded = decodeHep3(buf, off, end);
    if (!decoded.ok) {
      this.stats.malformed++;
      this.problems.report('malformed', 'malformed HEP frame', {
        peer,
        transport,
        frame: packetNumber,
        error: decoded.error,
      });
      return true;
    }
    if (this.authDigest !== null && !this.authorised(decoded.authKey)) {
      this.stats.authFailures++;
      this.problems.report('auth', 'HEP frame with a missing or wrong auth key dropped', {
        peer,
        transport,
        frame: packetNumber,
        keyPresent: decoded.authKey !== null,
      });
      return false;
    }
    const event = decoded.event;
    if (decoded.keepAlive && event.payload.length === 0) {
      this.stats.keepAlives++;
      return true;
    }
    // docs/HEP.md: a frame without time chunks decodes as 0; the arrival time is the better guess.
    if (event.timestampNs === 0n) event.timestampNs = BigInt(Date.now()) * 1_000_000n;
    event.source = { interface: `hep:${transport}:${peer}`, packetNumber };
    this.queue.push(event);
    this.queuedBytes += event.payload.length;
    this.schedule();
    return true;
  }

  private authorised(key: string | null): boolean {
    return key !== null && timingSafeEqual(sha256(key), this.authDigest!);
  }

  // -------------------------------------------------------------------------------------------
  // Delivery and backpressure

  private queueFull(): boolean {
    return this.queue.length >= this.maxQueue || this.queuedBytes >= this.maxQueueBytes;
  }

  private mustPause(): boolean {
    return this.busy || this.queueFull();
  }

  /** Frames arriving in the same I/O turn go out as one batch. */
  private schedule(): void {
    if (this.scheduled || this.busy) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.deliver();
    });
  }

  private deliver(): void {
    if (this.busy) return;
    if (this.queue.length === 0) {
      // Connections held back decode what they kept; that may queue a next batch (and pause again).
      if (!this.closed) for (const drain of this.sockets.values()) drain(false);
      if (this.queue.length > 0) {
        this.schedule();
        return;
      }
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
      return;
    }
    const batch = this.sip.prepare(this.queue);
    const sip = this.sip.stats;
    this.stats.sipUnparsed = sip.unparsable;
    this.stats.retransmissionStatesForgotten = sip.retransmissionStatesForgotten;
    this.queue = [];
    this.queuedBytes = 0;
    this.stats.events += batch.length;
    let result: Promise<void> | void;
    try {
      result = this.onEvents(batch);
    } catch (err) {
      this.deliveryFailed(err, batch.length);
      result = undefined;
    }
    if (result && typeof (result as Promise<void>).then === 'function') {
      this.busy = true;
      for (const s of this.sockets.keys()) s.pause();
      (result as Promise<void>)
        .then(undefined, (err: unknown) => this.deliveryFailed(err, batch.length))
        .finally(() => {
          this.busy = false;
          this.deliver();
        });
    } else {
      this.deliver();
    }
  }

  private deliveryFailed(err: unknown, events: number): void {
    this.stats.deliveryErrors++;
    this.problems.report(
      'delivery',
      'HEP listener: onEvents failed; batch lost',
      { events, error: (err as Error)?.message ?? String(err) },
      'warn',
    );
  }

  /** Resolves once nothing is queued or being delivered. */
  private idle(): Promise<void> {
    if (!this.busy && !this.scheduled && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      if (!this.busy && !this.scheduled) this.deliver();
    });
  }
}
