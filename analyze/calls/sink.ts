/**
 * The call engine as a sink: SIP events grouped by Call-ID into CallBuilders, each closed into one
 * CallRecord when the call is over (after a linger for stragglers and its media reports), when it
 * outlives the maximum duration, when its state must make room, or when the input ends (`close`).
 *
 * Time is capture time (the events'), so a file gives the same records however fast it is read. Only
 * an initial INVITE starts a call: a BYE or a retransmission arriving after its call was closed, or
 * for a call whose start was not captured, is counted (`orphanMessages`), not made into a call.
 */
import type { CallRecord, CallStream } from '../../core/call.js';
import type { CaptureEvent } from '../../core/event.js';
import { type Logger, silentLogger } from '../../core/log.js';
import type { MediaEndReason, MediaStreamReport } from '../../core/media-report.js';
import { type EventSink, emptySinkStats, type SinkStats } from '../../core/sink.js';
import { DeadlineHeap, eventWholeMs, KeyHash } from '../tracking.js';
import { CallBuilder } from './builder.js';
import { CallLinker, type LinkOptions } from './linker.js';

export interface CallSinkOptions {
  /** Each record, once its call is closed. */
  onRecord: (record: CallRecord) => void;
  /** Open calls kept at most (default 200,000): beyond, the longest-open one is closed ('evicted'). */
  maxOpenCalls?: number;
  /** A call whose end is not seen is closed this long after its start (default 4 h). */
  maxDurationMs?: number;
  /** After its end a call waits this long for stragglers and media reports (default 10 s). */
  lingerMs?: number;
  /**
   * An answered call whose BYE is not seen is closed ('media-silence') this long after every one of
   * its media streams ended by silence and nothing else came (default 60 s; 0: only the maximum
   * duration closes it).
   */
  mediaSilenceMs?: number;
  /** How a B2BUA's legs are linked (analyze/calls/linker.ts). */
  link?: LinkOptions;
  logger?: Logger;
}

export interface CallSinkStats {
  /** Calls started (initial INVITEs with a new Call-ID). */
  calls: number;
  /** Records handed out. */
  records: number;
  /** Calls open now. */
  open: number;
  /** Calls closed early to stay within maxOpenCalls. */
  evicted: number;
  /** Calls closed at the maximum duration. */
  maxDuration: number;
  /** Answered calls closed because their media went silent (no BYE seen). */
  mediaSilence: number;
  /** SIP messages of no open call (its start not captured, or arriving after it was closed). */
  orphanMessages: number;
  /** Legs dropped from the linking index at its bound. */
  legsForgotten: number;
}

/** Call-IDs are keyed by their first 256 characters, as the rest of the capture keys them. */
const KEY_CHARS = 256;

export class CallSink implements EventSink {
  readonly name = 'calls';
  private readonly calls = new Map<string, CallBuilder>();
  /** When each open call is looked at next, by its key (stale entries skipped by their stamp). */
  private readonly due = new DeadlineHeap<string>();
  private readonly maxOpenCalls: number;
  private readonly maxDurationMs: number;
  private readonly lingerMs: number;
  private readonly logger: Logger;
  private readonly linker: CallLinker;
  /** Scratch for the calls' message keys. */
  private readonly keyHash = new KeyHash();
  private readonly counters = {
    calls: 0,
    records: 0,
    evicted: 0,
    maxDuration: 0,
    mediaSilence: 0,
    orphanMessages: 0,
  };
  private readonly mediaSilenceMs: number;
  private accepted = 0;
  /** Latest capture time seen, ms. */
  private now = 0;
  private closed = false;

  constructor(private readonly options: CallSinkOptions) {
    this.maxOpenCalls = Math.max(1, options.maxOpenCalls ?? 200_000);
    this.maxDurationMs = options.maxDurationMs ?? 4 * 3_600_000;
    this.lingerMs = options.lingerMs ?? 10_000;
    this.mediaSilenceMs = options.mediaSilenceMs ?? 60_000;
    this.logger = options.logger ?? silentLogger;
    this.linker = new CallLinker(options.link);
  }

  async write(events: readonly CaptureEvent[]): Promise<void> {
    for (const event of events) this.add(event);
  }

  /** Takes one event synchronously. */
  add(event: CaptureEvent): void {
    this.accepted++;
    const timeMs = eventWholeMs(event.timestampNs);
    const sip = event.sip;
    // The clock moves first: a message arriving after its call's deadline finds the call closed,
    // whatever other traffic moved the clock before it (a file and the store's job agree).
    if (sip !== undefined && timeMs > this.now) this.advance(timeMs);
    if (sip !== undefined) {
      const callId = sip.callId;
      if (callId === null) return;
      const key = callId.length > KEY_CHARS ? callId.slice(0, KEY_CHARS) : callId;
      let call = this.calls.get(key);
      if (call === undefined) {
        const initial = sip.isRequest && sip.method === 'INVITE' && !sip.to?.tag && !event.retransmission;
        if (!initial) {
          this.counters.orphanMessages++;
          return;
        }
        if (this.calls.size >= this.maxOpenCalls) this.evictOldest();
        call = new CallBuilder(event, sip, timeMs, this.keyHash);
        this.linkLeg(call);
        // Keyed by the call's own copy: the message's Call-ID is a substring of the whole message.
        this.calls.set(call.key, call);
        this.counters.calls++;
        this.schedule(call.key, call);
      } else {
        const before = call.stamp;
        call.add(event, sip, timeMs, this.keyHash);
        if (call.stamp !== before) this.schedule(call.key, call);
      }
    } else {
      // Media reports attach to their call; they do not move the calls' clock (SIP does), so that a
      // capture and its stored SIP close calls alike.
      const media = event.media;
      if (media !== undefined && media.callId !== null)
        this.addMedia(media.callId, media.kind === 'final', media.endReason, callStreamOf(media), timeMs);
    }
  }

  /**
   * A media report of the call of `callId`, if it is open: a final one's figures join the record; any
   * report says whether the stream runs (for the media-silence closure).
   */
  addMedia(
    callId: string,
    final: boolean,
    endReason: MediaEndReason | null,
    stream: CallStream,
    timeMs: number,
  ): void {
    const call = this.calls.get(callId.length > KEY_CHARS ? callId.slice(0, KEY_CHARS) : callId);
    if (call === undefined) return;
    const before = call.stamp;
    if (final) call.addStream(stream, timeMs);
    const key = this.keyHash
      .reset()
      .text(stream.src)
      .number(stream.srcPort)
      .text(stream.dst)
      .number(stream.dstPort)
      .number(stream.ssrc)
      .value();
    call.mediaReport(key, final, endReason === 'idle' || endReason === 'rtcp-bye', timeMs);
    if (call.stamp !== before) this.schedule(call.key, call);
  }

  /** Moves the capture clock to `nowMs` (never back), closing the calls whose time is up. */
  advance(nowMs: number): void {
    if (nowMs <= this.now) return;
    this.now = nowMs;
    this.sweep();
  }

  /**
   * The calls still open, as of the clock, without closing them: progress versions of their records
   * (outcome inProgress while unanswered) and the capture time at which each would change by itself.
   */
  snapshot(): Array<{ record: CallRecord; deadline: number }> {
    return [...this.calls.values()].map((call) => ({
      record: call.record(this.now, null),
      deadline: this.deadlineOf(call),
    }));
  }

  /** Links a new call to the earlier legs of its end-to-end call, both ways while they are open. */
  private linkLeg(call: CallBuilder): void {
    const link = this.linker.link(call.keys);
    call.link = link;
    if (link.linkedTo === null) return;
    // Every leg of the call knows every other (those open now: an edge is still open while its legs start).
    const members = new Set([link.edgeCallId, link.linkedTo]);
    for (const id of [...members]) {
      const other = this.calls.get(id.length > KEY_CHARS ? id.slice(0, KEY_CHARS) : id);
      for (const sibling of other?.linkedCallIds ?? []) members.add(sibling);
    }
    for (const id of members) {
      if (id === call.callId) continue;
      call.addLinked(id);
      this.calls.get(id.length > KEY_CHARS ? id.slice(0, KEY_CHARS) : id)?.addLinked(call.callId);
    }
  }

  /** Nothing is held back between calls: records leave as calls close (see close for the rest). */
  async flush(): Promise<void> {}

  /**
   * The input ended at `endMs` (capture time; default the latest SIP message): calls whose time is up
   * by then are closed as usual, every other one now ('end-of-capture' when its end was not seen).
   */
  async close(endMs?: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (endMs !== undefined && endMs > this.now) {
      this.now = endMs;
      this.sweep();
    }
    for (const [key, call] of this.calls) {
      this.calls.delete(key);
      this.emit(call, 'end-of-capture');
    }
  }

  stats(): SinkStats {
    return { ...emptySinkStats(), accepted: this.accepted, delivered: this.accepted };
  }

  callStats(): CallSinkStats {
    return { ...this.counters, open: this.calls.size, legsForgotten: this.linker.dropped };
  }

  /**
   * When a call should be looked at next: its end plus the linger, Timer B (C), its media silence, or
   * its maximum duration.
   */
  private deadlineOf(call: CallBuilder): number {
    const ended = call.endedAt;
    if (ended !== null) return ended + this.lingerMs;
    if (call.isAnswered) {
      const silent = call.mediaSilentAt(this.mediaSilenceMs);
      return Math.min(call.start + this.maxDurationMs, silent ?? Number.POSITIVE_INFINITY);
    }
    // A call that keeps ringing is still bounded by the maximum duration.
    return Math.min(call.noAnswerAt, call.start + this.maxDurationMs) + this.lingerMs;
  }

  private schedule(key: string, call: CallBuilder): void {
    this.due.push({ at: this.deadlineOf(call), owner: key, stamp: call.stamp });
    // Entries of calls evicted or rescheduled are skipped when popped; they must not outgrow the open
    // calls (a flood of Call-IDs evicts one call per message).
    this.due.compact((d) => this.calls.get(d.owner)?.stamp === d.stamp, this.calls.size);
  }

  private sweep(): void {
    for (let next = this.due.popDue(this.now); next !== undefined; next = this.due.popDue(this.now)) {
      const call = this.calls.get(next.owner);
      if (call === undefined || call.stamp !== next.stamp) continue;
      const deadline = this.deadlineOf(call);
      if (deadline > this.now) {
        this.due.push({ at: deadline, owner: next.owner, stamp: call.stamp });
        continue;
      }
      this.calls.delete(next.owner);
      const endless = call.isAnswered && call.endedAt === null;
      const silent = endless && call.start + this.maxDurationMs > this.now;
      if (silent) this.counters.mediaSilence++;
      else if (endless) this.counters.maxDuration++;
      this.emit(call, silent ? 'media-silence' : endless ? 'max-duration' : null);
    }
  }

  private evictOldest(): void {
    const oldest = this.calls.keys().next();
    if (oldest.done) return;
    const call = this.calls.get(oldest.value)!;
    this.calls.delete(oldest.value);
    if (this.counters.evicted++ === 0)
      this.logger.warn('calls: the bound of open calls was reached; the longest-open are closed early', {
        maxOpenCalls: this.maxOpenCalls,
      });
    this.emit(call, 'evicted');
  }

  private emit(call: CallBuilder, closedBy: CallRecord['closedBy']): void {
    this.counters.records++;
    this.options.onRecord(call.record(this.now, closedBy));
  }
}

/** What a call record keeps of a stream's final report. */
export function callStreamOf(report: MediaStreamReport): CallStream {
  return {
    src: report.src,
    srcPort: report.srcPort,
    dst: report.dst,
    dstPort: report.dstPort,
    ssrc: report.ssrc,
    codec: report.codec,
    packets: report.packets,
    lost: report.lost,
    lossPercent: report.lossPercent,
    maxJitterMs: report.maxJitterMs,
    meanJitterMs: report.meanJitterMs,
    mos: report.mos,
  };
}
