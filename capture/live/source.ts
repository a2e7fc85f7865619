/**
 * Live capture from a network interface through libpcap (the optional `pcap` package): every packet
 * as a PacketRecord, synchronously, plus capture-health records (kernel and our own counters).
 *
 * How it reads: libpcap's handle is non-blocking; a timer calls node_pcap's dispatch(), which drains
 * everything the kernel's ring holds, then again at once (setImmediate, so I/O and timers still run
 * between reads) while packets keep coming, or after `pollIntervalMs` when the ring was empty.
 * dispatch() cannot be interrupted, and while packets arrive nearly as fast as we decode it would not
 * return: past `readBudgetMs` of decoding, one read copies packets into a PacketBacklog instead
 * (backlog.ts), so it returns, and the backlog is decoded in slices between reads. Only packets that
 * find the backlog full are lost (`droppedOverload`), so an overload cannot starve the event loop:
 * signals, health and the store keep working, and the loss is visible.
 *
 * What it survives: a read error (libpcap returns -1: the interface was deleted, the socket failed)
 * and an interface recreated under the same name (a new ifindex, which libpcap does not notice) make
 * it log, close the handle and reopen with backoff (0.25 s doubling to 5 s), counting reopenings.
 * `ip link set down` / `up` needs nothing: the socket stays bound and reads again after `up`; the
 * down is logged and counted (`linkDowns`).
 *
 * node_pcap reuses one buffer for every packet: a record's bytes are valid only during onPacket (the
 * PacketRecord contract). node_pcap frees a handle only when a read after close() finds a packet; a
 * closed handle is therefore read again every 200 ms until it is freed (an unreferenced timer, so it
 * never holds the process); one whose interface was deleted can never be freed by node_pcap 3.1 and
 * keeps its socket and ring buffer (bufferSize bytes) until the process exits — once per deletion.
 */
import { endianness } from 'node:os';
import { type Logger, silentLogger } from '../../core/log.js';
import { emptyPacketRecord, type PacketRecord } from '../file/record.js';
import { PacketBacklog } from './backlog.js';
import { LiveCaptureError, linkTypeNumber, loadPcap, type NativeSession } from './binding.js';
import { readLinkState } from './link.js';
import { type CaptureHealth, type CaptureTotals, HealthRecorder, KernelCounters } from './stats.js';

export interface LiveCaptureOptions {
  /** Interface name (`any` captures on all, as Linux cooked frames). */
  interface: string;
  /** BPF filter (tcpdump syntax); none by default. */
  filter?: string;
  /** Bytes kept of each packet (default 262144, tcpdump's). */
  snaplen?: number;
  /** Kernel capture buffer in bytes (default 32 MiB): what absorbs bursts while we decode. */
  bufferSize?: number;
  /** Promiscuous mode (default true: a mirror port receives frames addressed to others). */
  promiscuous?: boolean;
  /**
   * libpcap immediate mode: every packet is readable at once. Off by default: libpcap then uses the
   * kernel's TPACKET_V3 ring (packets in blocks, far more per buffer byte, no per-packet wakeups),
   * and a packet waits at most `timeoutMs` in a block that is not full.
   */
  immediate?: boolean;
  /** libpcap's packet buffer timeout when not immediate, ms (default 50). */
  timeoutMs?: number;
  /** How long an empty read waits before the next, ms (default 2). */
  pollIntervalMs?: number;
  /** Decoding time after which one read copies packets aside to decode them later, ms (default 50). */
  readBudgetMs?: number;
  /** Bytes of packets that may wait, copied, for the decoder (default 64 MiB). */
  backlogBytes?: number;
  /** Capture-health records every this many ms (default 10 000; 0: only the final one). */
  healthIntervalMs?: number;
  /** Reopening after an error: first delay and the most it doubles to, ms (250, 5000). */
  reopenDelayMs?: { initial?: number; max?: number };
  /** How often the interface's state is checked, ms (default 1000). */
  linkCheckMs?: number;
  /** Each packet, synchronously; the record and its bytes are reused after the call returns. */
  onPacket: (record: PacketRecord) => void;
  onHealth?: (health: CaptureHealth) => void;
  logger?: Logger;
}

interface Handle {
  native: NativeSession;
  generation: number;
  /** dispatch() returned -2: node_pcap freed it; it must never be called again. */
  freed: boolean;
  /** Kicks a closed handle has had without being freed. */
  kicks: number;
}

type State = 'open' | 'reopening' | 'stopping' | 'stopped';

const LITTLE_ENDIAN = endianness() === 'LE';
const DEFAULT_SNAPLEN = 262_144;
const DEFAULT_BUFFER = 32 << 20;

function positiveInt(value: number, name: string, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new LiveCaptureError(`${name} must be a whole number 1..${max}, got ${value}`, 'bad-option');
  return value;
}

/** Longest timer delay: Node runs a longer setTimeout/setInterval after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** 0 (only the final record) or 1 ms .. MAX_TIMER_MS. */
export function validHealthIntervalMs(ms: number): number {
  if (ms !== 0 && !(ms >= 1 && ms <= MAX_TIMER_MS))
    throw new LiveCaptureError(`health interval must be 0 or 1..${MAX_TIMER_MS} ms, got ${ms}`, 'bad-option');
  return ms;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class LiveCapture {
  readonly interface: string;
  /** LINKTYPE_* of the open handle. */
  linkType = -1;
  private readonly options: LiveCaptureOptions;
  private readonly logger: Logger;
  private readonly binding = loadPcap();
  private readonly buf: Buffer;
  private readonly header = Buffer.alloc(16);
  private readonly record: PacketRecord;
  private readonly counters = new KernelCounters();
  private readonly recorder: HealthRecorder;
  private handle: Handle | null = null;
  private readonly closing: Handle[] = [];
  private state: State = 'open';
  private generation = 0;
  private ifindex = 0;
  private watchLink = false;
  private linkUp = true;
  private backoffMs: number;
  private reopenAttempts = 0;
  private readStarted = 0;
  /** Packets go to the backlog (the decoder is behind). */
  private deferring = false;
  private readonly backlog: PacketBacklog;
  /** -Infinity: the first overload is logged at once (performance.now() starts near 0 at process start). */
  private lastOverloadLog = Number.NEGATIVE_INFINITY;
  private readTimer: NodeJS.Timeout | null = null;
  private readImmediate: NodeJS.Immediate | null = null;
  private reopenTimer: NodeJS.Timeout | null = null;
  private healthTimer: NodeJS.Timeout | null = null;
  private linkTimer: NodeJS.Timeout | null = null;
  private drainTimer: NodeJS.Timeout | null = null;
  private stopping: Promise<CaptureHealth> | null = null;
  /** Packets and bytes (captured length) handed to onPacket. */
  packets = 0;
  bytes = 0;
  droppedOverload = 0;
  reopenings = 0;
  linkDowns = 0;
  /** Packets whose onPacket threw. */
  callbackErrors = 0;
  private lastCallbackErrorLog = 0;

  /** Opens the interface and starts reading; throws LiveCaptureError when it cannot. */
  static open(options: LiveCaptureOptions): LiveCapture {
    return new LiveCapture(options);
  }

  private constructor(options: LiveCaptureOptions) {
    this.options = options;
    this.interface = options.interface;
    if (!this.interface) throw new LiveCaptureError('live capture needs an interface name', 'bad-option');
    this.logger = options.logger ?? silentLogger;
    const snaplen = positiveInt(options.snaplen ?? DEFAULT_SNAPLEN, 'snaplen', 262_144);
    positiveInt(options.bufferSize ?? DEFAULT_BUFFER, 'buffer size', 2 ** 31 - 1);
    this.buf = Buffer.alloc(snaplen);
    this.record = emptyPacketRecord(this.buf);
    this.recorder = new HealthRecorder(this.interface);
    this.backlog = new PacketBacklog(
      positiveInt(options.backlogBytes ?? 64 << 20, 'backlog size', 2 ** 31 - 1),
    );
    const every = validHealthIntervalMs(options.healthIntervalMs ?? 10_000);
    this.backoffMs = options.reopenDelayMs?.initial ?? 250;
    this.openHandle();
    const state = readLinkState(this.interface);
    // `any` and other pseudo-devices have no /sys entry: nothing to watch.
    this.watchLink = state?.exists === true;
    this.linkUp = state?.up ?? true;
    this.linkTimer = setInterval(this.checkLink, options.linkCheckMs ?? 1000);
    this.linkTimer.unref();
    if (every > 0) {
      this.healthTimer = setInterval(() => this.emitHealth(false), every);
      this.healthTimer.unref();
    }
    this.logger.info('live capture started', {
      interface: this.interface,
      linkType: this.linkType,
      filter: options.filter ?? '',
      snaplen,
      bufferSize: options.bufferSize ?? DEFAULT_BUFFER,
      immediate: options.immediate ?? false,
    });
    this.schedule(0);
  }

  /** Cumulative counters (kernel counters sampled now). */
  totals(): CaptureTotals {
    this.sampleKernel();
    return {
      received: this.counters.received,
      droppedKernel: this.counters.droppedKernel,
      droppedInterface: this.counters.droppedInterface,
      packets: this.packets,
      bytes: this.bytes,
      droppedOverload: this.droppedOverload,
      reopenings: this.reopenings,
      linkDowns: this.linkDowns,
      callbackErrors: this.callbackErrors,
    };
  }

  /** True while a handle is open on an interface that is up. */
  get capturing(): boolean {
    return this.handle !== null && this.state === 'open' && this.linkUp;
  }

  get stopped(): boolean {
    return this.state === 'stopped';
  }

  /**
   * Reads what the kernel still holds (waiting out libpcap's buffer timeout), closes the handle and
   * returns the final health record (also given to onHealth). Idempotent.
   */
  stop(): Promise<CaptureHealth> {
    if (this.stopping === null) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<CaptureHealth> {
    const wasOpen = this.state === 'open';
    this.state = 'stopping';
    this.clearTimers();
    const h = this.handle;
    if (h !== null && wasOpen) {
      // Packets in a TPACKET_V3 block that is not full become readable after the buffer timeout.
      const wait = this.options.immediate ? 5 : (this.options.timeoutMs ?? 50) + 20;
      if (this.read(h)) {
        await new Promise((resolve) => setTimeout(resolve, wait));
        this.read(h);
      }
    }
    this.drainBacklog(Number.POSITIVE_INFINITY);
    this.sampleKernel();
    const current = this.handle; // null when a read above lost it (then it is retired already)
    this.handle = null;
    this.state = 'stopped';
    this.generation++;
    if (current !== null) this.retire(current);
    const final = this.emitHealth(true);
    this.logger.info('live capture stopped', {
      interface: this.interface,
      packets: final.packets,
      received: final.received,
      droppedKernel: final.droppedKernel,
      droppedInterface: final.droppedInterface,
      droppedOverload: final.droppedOverload,
      reopenings: final.reopenings,
      callbackErrors: final.callbackErrors,
    });
    return final;
  }

  private clearTimers(): void {
    if (this.readTimer !== null) clearTimeout(this.readTimer);
    if (this.readImmediate !== null) clearImmediate(this.readImmediate);
    this.readTimer = null;
    this.readImmediate = null;
    for (const t of [this.reopenTimer, this.healthTimer, this.linkTimer]) if (t !== null) clearInterval(t);
    this.reopenTimer = this.healthTimer = this.linkTimer = null;
  }

  private openHandle(): void {
    const native = new this.binding.PcapSession();
    const generation = ++this.generation;
    let linkType: string;
    try {
      linkType = native.open_live(
        this.interface,
        this.options.filter ?? '',
        this.options.bufferSize ?? DEFAULT_BUFFER,
        this.buf.length,
        '',
        this.packetHandler(generation),
        false,
        this.options.immediate ? 0 : Math.max(1, this.options.timeoutMs ?? 50),
        (warning) => this.logger.debug('libpcap warning', { interface: this.interface, warning }),
        this.options.promiscuous ?? true,
      );
    } catch (error) {
      throw new LiveCaptureError(`cannot capture on ${this.interface}: ${messageOf(error)}`, 'open-failed', {
        cause: error,
      });
    }
    this.linkType = linkTypeNumber(linkType);
    this.record.linkType = this.linkType;
    this.handle = { native, generation, freed: false, kicks: 0 };
    this.counters.reset();
    this.ifindex = readLinkState(this.interface)?.ifindex ?? 0;
  }

  /** The per-handle packet callback: ignores packets of handles that were replaced or closed. */
  private packetHandler(generation: number): () => void {
    const header = this.header;
    const buf = this.buf;
    const record = this.record;
    const backlog = this.backlog;
    const deliver = this.deliver;
    const budget = this.options.readBudgetMs ?? 50;
    const maxCaplen = buf.length;
    let direct = 0;
    return () => {
      if (generation !== this.generation) return;
      let tsSec: number;
      let tsNsec: number;
      let caplen: number;
      let origLen: number;
      if (LITTLE_ENDIAN) {
        tsSec = header.readUInt32LE(0);
        tsNsec = header.readUInt32LE(4) * 1000;
        caplen = header.readUInt32LE(8);
        origLen = header.readUInt32LE(12);
      } else {
        tsSec = header.readUInt32BE(0);
        tsNsec = header.readUInt32BE(4) * 1000;
        caplen = header.readUInt32BE(8);
        origLen = header.readUInt32BE(12);
      }
      if (caplen > maxCaplen) caplen = maxCaplen;
      if (!this.deferring && (++direct & 255) === 0 && performance.now() - this.readStarted > budget)
        this.deferring = true;
      if (this.deferring) {
        if (!backlog.push(buf, caplen, origLen, tsSec, tsNsec)) this.droppedOverload++;
        return;
      }
      record.data = buf;
      record.offset = 0;
      record.tsSec = tsSec;
      record.tsNsec = tsNsec;
      record.caplen = caplen;
      record.origLen = origLen;
      record.number = ++this.packets;
      this.bytes += caplen;
      deliver(record);
    };
  }

  /**
   * Hands a record to onPacket. An exception must not escape: node_pcap's native callback would make
   * it fatal (and one from a backlog slice, run from a timer, would be uncaught). Counted, logged at
   * most every 10 s, and the capture goes on.
   */
  private readonly deliver = (record: PacketRecord): void => {
    try {
      this.options.onPacket(record);
    } catch (error) {
      this.callbackErrors++;
      const now = performance.now();
      if (this.callbackErrors === 1 || now - this.lastCallbackErrorLog > 10_000) {
        this.lastCallbackErrorLog = now;
        this.logger.error('packet handler failed; packet skipped', {
          interface: this.interface,
          packet: record.number,
          callbackErrors: this.callbackErrors,
          error: messageOf(error),
        });
      }
    }
  };

  /** Decodes backlogged packets for up to `budgetMs` (all of them with Infinity). */
  private drainBacklog(budgetMs: number): void {
    const record = this.record;
    const deliver = this.deliver;
    const started = performance.now();
    let n = 0;
    while (this.backlog.shift(record)) {
      record.number = ++this.packets;
      this.bytes += record.caplen;
      deliver(record);
      if ((++n & 63) === 0 && performance.now() - started > budgetMs) break;
    }
    if (this.backlog.count === 0) this.deferring = false;
  }

  /** One dispatch on the open handle; false when the handle was lost (then reopening is under way). */
  private read(h: Handle): boolean {
    this.readStarted = performance.now();
    this.deferring = this.backlog.count > 0;
    const overloadBefore = this.droppedOverload;
    let result: number;
    try {
      result = h.native.dispatch(this.buf, this.header);
    } catch (error) {
      this.lost(h, `read failed: ${messageOf(error)}`);
      return false;
    }
    const now = performance.now();
    if (this.droppedOverload > overloadBefore && now - this.lastOverloadLog > 10_000) {
      this.lastOverloadLog = now;
      this.logger.warn('capture overloaded: decoder and backlog full, packets dropped', {
        interface: this.interface,
        droppedOverload: this.droppedOverload,
      });
    }
    if (result === -2) {
      h.freed = true;
      this.lost(h, 'capture handle closed');
      return false;
    }
    if (result === -1) {
      this.lost(h, 'read error (interface deleted or socket failed)');
      return false;
    }
    return true;
  }

  private readonly pump = (): void => {
    this.readTimer = null;
    this.readImmediate = null;
    const h = this.handle;
    if (h === null || this.state !== 'open') return;
    const before = this.packets + this.droppedOverload + this.backlog.count;
    if (!this.read(h)) return;
    if (this.backlog.count > 0) this.drainBacklog(this.options.readBudgetMs ?? 50);
    const busy =
      this.packets + this.droppedOverload + this.backlog.count !== before || this.backlog.count > 0;
    this.schedule(busy ? 0 : (this.options.pollIntervalMs ?? 2));
  };

  private schedule(delayMs: number): void {
    if (this.readTimer !== null || this.readImmediate !== null || this.state !== 'open') return;
    if (delayMs <= 0) this.readImmediate = setImmediate(this.pump);
    else this.readTimer = setTimeout(this.pump, delayMs);
  }

  private readonly checkLink = (): void => {
    if (!this.watchLink || this.state !== 'open') return;
    const s = readLinkState(this.interface);
    if (s === null) return;
    const h = this.handle;
    if (h !== null && (!s.exists || (this.ifindex !== 0 && s.ifindex !== this.ifindex))) {
      this.lost(h, s.exists ? 'interface was recreated (new ifindex)' : 'interface disappeared');
      return;
    }
    if (!s.up && this.linkUp) {
      this.linkUp = false;
      this.linkDowns++;
      this.logger.warn('interface went down; capture resumes when it is up again', {
        interface: this.interface,
      });
    } else if (s.up && !this.linkUp) {
      this.linkUp = true;
      this.logger.warn('interface is up again; capturing', { interface: this.interface });
    }
  };

  /** The handle failed: retire it and reopen with backoff. */
  private lost(h: Handle, reason: string): void {
    if (this.handle !== h) return;
    this.sampleKernel();
    this.handle = null;
    this.generation++;
    this.drainBacklog(Number.POSITIVE_INFINITY);
    if (!h.freed) this.retire(h);
    if (this.state !== 'open') return; // stopping: no reopening
    this.state = 'reopening';
    this.reopenAttempts = 0;
    this.backoffMs = this.options.reopenDelayMs?.initial ?? 250;
    this.logger.warn('capture lost; reopening', {
      interface: this.interface,
      reason,
      retryInMs: this.backoffMs,
    });
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    this.reopenTimer = setTimeout(this.tryReopen, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.reopenDelayMs?.max ?? 5000);
  }

  private readonly tryReopen = (): void => {
    this.reopenTimer = null;
    if (this.state !== 'reopening') return;
    this.reopenAttempts++;
    try {
      this.openHandle();
    } catch (error) {
      // The first failure and then every tenth: an interface gone for hours must not flood the log.
      if (this.reopenAttempts === 1 || this.reopenAttempts % 10 === 0)
        this.logger.warn('capture reopen failed; retrying', {
          interface: this.interface,
          attempts: this.reopenAttempts,
          retryInMs: this.backoffMs,
          error: messageOf(error),
        });
      this.scheduleReopen();
      return;
    }
    this.reopenings++;
    this.state = 'open';
    const s = readLinkState(this.interface);
    this.linkUp = s?.up ?? true;
    this.logger.warn('capture reopened', {
      interface: this.interface,
      attempts: this.reopenAttempts,
      reopenings: this.reopenings,
    });
    this.schedule(0);
  };

  /** close() a handle and read it until node_pcap frees it (see the module comment). */
  private retire(h: Handle): void {
    try {
      h.native.close();
      if (h.native.dispatch(this.buf, this.header) === -2) {
        h.freed = true;
        return;
      }
    } catch {
      // a handle that cannot be read cannot be freed either
    }
    this.closing.push(h);
    if (this.drainTimer === null) {
      this.drainTimer = setInterval(this.kickClosing, 200);
      this.drainTimer.unref();
    }
  }

  private readonly kickClosing = (): void => {
    for (let i = this.closing.length - 1; i >= 0; i--) {
      const h = this.closing[i]!;
      let result = -1;
      try {
        result = h.native.dispatch(this.buf, this.header);
      } catch {
        result = -1;
      }
      h.kicks++;
      // -1 for a minute: its interface is gone and node_pcap cannot free it; stop trying.
      if (result === -2 || (result === -1 && h.kicks > 300)) {
        h.freed = result === -2;
        this.closing.splice(i, 1);
      }
    }
    if (this.closing.length === 0 && this.drainTimer !== null) {
      clearInterval(this.drainTimer);
      this.drainTimer = null;
    }
  };

  private sampleKernel(): void {
    const h = this.handle;
    if (h === null || h.freed) return;
    try {
      this.counters.sample(h.native.stats());
    } catch {
      // pcap_stats fails on a dead socket: the last sample stands
    }
  }

  private emitHealth(final: boolean): CaptureHealth {
    const health = this.recorder.record(this.totals(), this.capturing, final);
    if (!final) {
      const fields = {
        interface: this.interface,
        received: health.received,
        packets: health.packets,
        packetsDelta: health.packetsDelta,
        droppedKernelDelta: health.droppedKernelDelta,
        droppedInterfaceDelta: health.droppedInterfaceDelta,
        droppedOverloadDelta: health.droppedOverloadDelta,
        reopenings: health.reopenings,
        callbackErrors: health.callbackErrors,
        capturing: health.capturing,
      };
      if (health.droppedKernelDelta > 0 || health.droppedOverloadDelta > 0)
        this.logger.warn('capture health: packets dropped', fields);
      else this.logger.info('capture health', fields);
    }
    try {
      this.options.onHealth?.(health);
    } catch (error) {
      // Called from a timer: an exception would be uncaught.
      this.logger.error('capture health handler failed', {
        interface: this.interface,
        error: messageOf(error),
      });
    }
    return health;
  }
}
