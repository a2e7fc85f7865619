/**
 * The calls table kept current from the store (docs/CALLS.md, "In the store"): the call engine run
 * over messages read back from the store, never over a process's memory, so that what comes out does
 * not depend on which agent captured a message, which Kafka partition or consumer carried it, the
 * order it arrived in, how often it was delivered, or whether a consumer died on the way.
 *
 * A cycle (every 2 s by default):
 * 1. the Call-IDs with messages or final media reports stored since the last cycle (stored_at, with
 *    an overlap),
 *    and the open calls whose deadline the store's clock has passed (Timer B, linger, maximum
 *    duration);
 * 2. per chunk of Call-IDs, their messages and final media reports are read back in capture order
 *    and run through a CallSink; the records of calls that ended, and progress versions of those still
 *    open, come out; the chunk grows by the stored legs that share a linking key with it, so that a
 *    B2BUA call's legs are always computed together, in start order, as `analyze` sees them;
 * 3. each version is compared with the stored one by content digest, and only changes are written
 *    (a call whose start moved gets a tombstone for its old row).
 *
 * The store's clock is the latest capture time among stored SIP messages: calls close by capture
 * time, as in `analyze`. `rebuildCalls` runs the same engine once over a whole scope (a finished
 * capture run), closing the calls still open at its end.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { CallRecord } from '../../core/call.js';
import { type Logger, silentLogger } from '../../core/log.js';
import { type CallVersion, callDigest } from '../../ingest/call-rows.js';
import { qualifiedName } from '../../ingest/schema/ddl.js';
import { TIMER_B_MS } from './builder.js';
import { DEFAULT_HEURISTIC_WINDOW_MS, DEFAULT_LINK_WINDOW_MS, type LinkOptions } from './linker.js';
import { CallSink } from './sink.js';
import { mergeByTime, type StoredScope, storedSipEvents, storedStreams } from './stored-events.js';

/** Where versions go: the store writer (ingest/writer.ts, writeCalls). */
export interface CallsWriter {
  writeCalls(
    versions: readonly CallVersion[],
    tombstones: ReadonlyArray<{ callId: string; start: number }>,
    version: bigint,
  ): Promise<void>;
}

export interface CallsJobOptions {
  client: ClickHouseClient;
  database: string;
  writer: CallsWriter;
  logger?: Logger;
  /** Time between cycles (default 2,000 ms). */
  intervalMs?: number;
  /** Call-IDs computed together at most (default 2,000; a chunk grows by linked legs beyond it). */
  chunkCalls?: number;
  /** Messages stored this many seconds before the last cycle are looked at again (default 5). */
  overlapSec?: number;
  link?: LinkOptions;
  maxDurationMs?: number;
  lingerMs?: number;
  /**
   * The edge legs' records written settled (not open) for the first time: no settled version of the
   * call was stored before (a settled row whose start moved, retired in the same write, counts as
   * stored). Each call comes here once however often it is computed, by this job or another: the
   * Prometheus calls counter (ingest/metrics/). Called after the write succeeded.
   */
  onSettled?: (records: readonly CallRecord[]) => void;
}

/** A call's version as stored: its key (start), content digest, run and whether it counted as settled. */
interface StoredVersion {
  start: number;
  digest: bigint;
  runId: string;
  open: boolean;
  edge: boolean;
}

export interface CallsJobStats {
  cycles: number;
  /** Calls computed (a call open for a while is computed in several cycles). */
  callsComputed: number;
  /** Versions written because something changed, and those found unchanged. */
  versionsWritten: number;
  unchanged: number;
  tombstones: number;
  /** Cycles that failed (they are retried by the next cycle: the watermark only moves on success). */
  failures: number;
  lastError: string | null;
  /** Duration of the last cycle, ms. */
  lastCycleMs: number;
  /** The store's clock: latest capture time of a stored SIP message (ms), 0 before any. */
  clockMs: number;
}

type Row = Record<string, unknown>;

const hexOf = (s: string): string => Buffer.from(s, 'latin1').toString('hex');
const fromHex = (hex: unknown): string => Buffer.from(String(hex ?? ''), 'hex').toString('latin1');
const IDS = '(SELECT unhex(arrayJoin({ids:Array(String)})))';
// No alias in these queries takes a column's name: ClickHouse would read a condition on the alias.

/**
 * µs of the store's clock (the process's own when not given), strictly increasing within the process:
 * the version of what a computation writes. Taken when it writes, after it read, so that of two jobs
 * the one that read later writes the newer version whatever the clocks of their hosts.
 */
let lastVersion = 0n;
function nextVersion(storeMicros?: bigint): bigint {
  const now = storeMicros ?? BigInt(Date.now()) * 1000n;
  lastVersion = now > lastVersion ? now : lastVersion + 1n;
  return lastVersion;
}

/** The addresses a call's INVITEs went to: every branch's destination and the callee's. */
function wentTo(record: CallRecord): Set<string> {
  const out = new Set<string>([record.callee.ip]);
  for (const hop of record.hops)
    for (const branch of hop.branches) {
      const cut = branch.to.lastIndexOf(':');
      if (cut > 0) out.add(branch.to.slice(0, cut).replace(/^\[|\]$/g, ''));
    }
  return out;
}

async function rows(
  client: ClickHouseClient,
  query: string,
  params: Record<string, unknown>,
): Promise<Row[]> {
  const result = await client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<Row>();
}

/** The computation shared by the job and a rebuild: records → versions → the changed ones written. */
class CallsComputer {
  readonly stats = { callsComputed: 0, versionsWritten: 0, unchanged: 0, tombstones: 0 };
  readonly calls: string;

  constructor(private readonly options: Omit<CallsJobOptions, 'intervalMs' | 'chunkCalls' | 'overlapSec'>) {
    this.calls = qualifiedName(options.database, 'calls');
  }

  newSink(onRecord: (record: CallRecord) => void): CallSink {
    return new CallSink({
      onRecord,
      link: this.options.link,
      maxDurationMs: this.options.maxDurationMs,
      lingerMs: this.options.lingerMs,
      logger: this.options.logger,
    });
  }

  /** The versions of these calls as stored: key (start), digest, run, open and edge flags, by Call-ID. */
  async stored(ids: readonly string[]): Promise<Map<string, StoredVersion[]>> {
    const out = new Map<string, StoredVersion[]>();
    if (ids.length === 0) return out;
    for (const r of await rows(
      this.options.client,
      `SELECT hex(call_id) AS id, toUnixTimestamp64Milli(start) AS start_ms, toString(digest) AS digest_text,
         run_id AS run, open AS was_open, is_edge AS edge_leg
       FROM ${this.calls} FINAL WHERE call_id IN ${IDS}`,
      { ids: ids.map(hexOf) },
    )) {
      const id = fromHex(r.id);
      const list = out.get(id) ?? [];
      list.push({
        start: Number(r.start_ms),
        digest: BigInt(String(r.digest_text)),
        runId: String(r.run ?? ''),
        open: r.was_open === true || r.was_open === 1,
        edge: r.edge_leg === true || r.edge_leg === 1,
      });
      out.set(id, list);
    }
    return out;
  }

  /** The version of a write now: the store's clock in µs. */
  async versionNow(): Promise<bigint> {
    const [r] = await rows(this.options.client, 'SELECT toString(toUnixTimestamp64Micro(now64(6))) AS v', {});
    return nextVersion(r?.v === undefined ? undefined : BigInt(String(r.v)));
  }

  /**
   * Writes what changed among `versions` (all the versions of their Call-IDs), as `version` or, without
   * it, as of the store's clock now; with `runId`, a version stored by another run counts as changed.
   * Returns whether anything was written.
   */
  async commit(versions: CallVersion[], version?: bigint, runId?: string): Promise<boolean> {
    const ids = [...new Set(versions.map((v) => v.record.callId))];
    const stored = await this.stored(ids);
    const changed: CallVersion[] = [];
    const tombstones: Array<{ callId: string; start: number }> = [];
    const starts = new Map<string, Set<number>>();
    for (const v of versions) {
      const id = v.record.callId;
      starts.set(id, (starts.get(id) ?? new Set()).add(v.record.start));
      const before = stored.get(id)?.find((s) => s.start === v.record.start);
      if (
        before !== undefined &&
        before.digest === callDigest(v) &&
        (runId === undefined || before.runId === runId)
      )
        this.stats.unchanged++;
      else changed.push(v);
    }
    for (const [id, list] of stored)
      for (const s of list)
        if (!starts.get(id)?.has(s.start)) tombstones.push({ callId: id, start: s.start });
    this.stats.callsComputed += versions.length;
    if (changed.length === 0 && tombstones.length === 0) return false;
    await this.options.writer.writeCalls(changed, tombstones, version ?? (await this.versionNow()));
    this.stats.versionsWritten += changed.length;
    this.stats.tombstones += tombstones.length;
    if (this.options.onSettled !== undefined) {
      const settled = newlySettled(changed, tombstones, stored);
      if (settled.length > 0) {
        try {
          this.options.onSettled(settled);
        } catch (error) {
          // Written already: a failing watcher must not make the cycle fail and count nothing later.
          this.options.logger?.error('calls job: onSettled failed', {
            error: error instanceof Error ? error.message : String(error),
          });
        }
      }
    }
    return true;
  }
}

/**
 * The edge legs among `changed` that the store now holds settled for the first time. The stored
 * versions (read before the write) are the truth: a call counts when no settled edge version of it
 * was stored at its start, unless a settled edge version it replaces (its start moved: tombstoned in
 * the same write) was. Bounded by the write; nothing is remembered between writes.
 */
function newlySettled(
  changed: readonly CallVersion[],
  tombstones: ReadonlyArray<{ callId: string; start: number }>,
  stored: Map<string, StoredVersion[]>,
): CallRecord[] {
  const settledAt = (id: string): Set<number> =>
    new Set((stored.get(id) ?? []).filter((s) => !s.open && s.edge).map((s) => s.start));
  // Settled edge rows retired by this write, per Call-ID: the same calls under a new start.
  const moved = new Map<string, number>();
  for (const t of tombstones)
    if (settledAt(t.callId).has(t.start)) moved.set(t.callId, (moved.get(t.callId) ?? 0) + 1);
  const out: CallRecord[] = [];
  for (const v of changed) {
    const r = v.record;
    if (v.open || r.edgeCallId !== r.callId || settledAt(r.callId).has(r.start)) continue;
    const replaced = moved.get(r.callId) ?? 0;
    if (replaced > 0) moved.set(r.callId, replaced - 1);
    else out.push(r);
  }
  return out;
}

export class CallsJob {
  private readonly computer: CallsComputer;
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private readonly chunkCalls: number;
  private readonly overlapSec: number;
  private readonly maxDurationMs: number;
  private readonly linkWindowMs: number;
  private watermark: number | null = null;
  private clockMs = 0;
  private cycles = 0;
  private failures = 0;
  private lastError: string | null = null;
  private lastCycleMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly options: CallsJobOptions) {
    this.computer = new CallsComputer(options);
    this.logger = options.logger ?? silentLogger;
    this.intervalMs = options.intervalMs ?? 2000;
    this.chunkCalls = Math.max(1, options.chunkCalls ?? 2000);
    this.overlapSec = options.overlapSec ?? 5;
    this.maxDurationMs = options.maxDurationMs ?? 4 * 3_600_000;
    this.linkWindowMs = Math.max(
      options.link?.windowMs ?? DEFAULT_LINK_WINDOW_MS,
      options.link?.heuristicWindowMs ?? DEFAULT_HEURISTIC_WINDOW_MS,
    );
  }

  /** Runs cycles every intervalMs until stop(). */
  start(): void {
    if (this.timer !== null || this.stopped) return;
    const tick = () => {
      this.timer = null;
      this.running = this.cycle()
        .catch(() => undefined)
        .finally(() => {
          this.running = null;
          if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  /**
   * Stops the cycles after a last one (so that what is stored by now is in the calls table).
   * Resolves true when that last cycle succeeded: every stored message is then in the calls table.
   */
  async stop(): Promise<boolean> {
    if (this.stopped) {
      await this.running;
      return false;
    }
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
    return this.cycle().then(
      () => true,
      () => false,
    );
  }

  stats(): CallsJobStats {
    return {
      cycles: this.cycles,
      ...this.computer.stats,
      failures: this.failures,
      lastError: this.lastError,
      lastCycleMs: this.lastCycleMs,
      clockMs: this.clockMs,
    };
  }

  /** One cycle; rejects (and counts the failure) when the store fails, leaving the watermark as it was. */
  async cycle(): Promise<void> {
    const started = performance.now();
    try {
      await this.runCycle();
      this.cycles++;
    } catch (error) {
      this.failures++;
      this.lastError = error instanceof Error ? error.message : String(error);
      this.logger.warn('calls job: cycle failed; the next one retries', { error: this.lastError });
      throw error;
    } finally {
      this.lastCycleMs = Math.round(performance.now() - started);
    }
  }

  private async runCycle(): Promise<void> {
    const { client, database } = this.options;
    const sip = qualifiedName(database, 'sip_messages');
    const media = qualifiedName(database, 'media_reports');
    const [clock] = await rows(client, 'SELECT toUnixTimestamp(now()) AS now', {});
    const serverNow = Number(clock?.now ?? Math.floor(Date.now() / 1000));
    if (this.watermark === null) this.watermark = await this.initialWatermark();
    const since = Math.max(0, this.watermark - this.overlapSec);
    // The Call-IDs touched since the watermark, a page at a time (a first cycle over a full store).
    const touched = new Map<string, number>();
    let after: { first: number; id: string } | null = null;
    for (;;) {
      const page = await rows(
        client,
        `SELECT hex(call_id) AS id, toUnixTimestamp64Milli(min(time)) AS first, toUnixTimestamp64Milli(max(sip_time)) AS last
         FROM (
           SELECT call_id, time, time AS sip_time FROM ${sip}
           WHERE stored_at >= toDateTime({since:UInt32}) AND call_id != ''
           UNION ALL
           SELECT call_id, time, toDateTime64(0, 9) AS sip_time FROM ${media}
           WHERE stored_at >= toDateTime({since:UInt32}) AND call_id != '' AND kind = 'final'
         )
         GROUP BY call_id
         ${after === null ? '' : 'HAVING (first, id) > ({afterFirst:Int64}, {afterId:String})'}
         ORDER BY first, id LIMIT {limit:UInt32}`,
        { since, limit: this.chunkCalls * 10, afterFirst: after?.first ?? 0, afterId: after?.id ?? '' },
      );
      for (const r of page) {
        touched.set(fromHex(r.id), Number(r.first));
        this.clockMs = Math.max(this.clockMs, Number(r.last));
      }
      if (page.length < this.chunkCalls * 10) break;
      const last = page[page.length - 1]!;
      after = { first: Number(last.first), id: String(last.id) };
      // Compute what is paged so far, so that memory stays bounded by a page.
      if (touched.size >= this.chunkCalls * 10) await this.computeAll(touched);
    }
    // Open calls whose time is up by the store's clock change without a message: look at them too.
    for (const r of await rows(
      client,
      `SELECT hex(call_id) AS id, toUnixTimestamp64Milli(start) AS start_ms FROM ${this.computer.calls} FINAL
       WHERE open AND deadline <= fromUnixTimestamp64Milli({now:Int64}) LIMIT {limit:UInt32}`,
      { now: this.clockMs, limit: this.chunkCalls * 50 },
    ))
      if (!touched.has(fromHex(r.id))) touched.set(fromHex(r.id), Number(r.start_ms));
    await this.computeAll(touched);
    this.watermark = serverNow;
  }

  /** Where the previous process left off: the newest stored call version (0: everything). */
  private async initialWatermark(): Promise<number> {
    const [r] = await rows(
      this.options.client,
      `SELECT toUnixTimestamp(max(stored_at)) AS w, count() AS n FROM ${this.computer.calls}`,
      {},
    );
    const [c] = await rows(
      this.options.client,
      `SELECT toUnixTimestamp64Milli(max(time)) AS t FROM ${qualifiedName(this.options.database, 'sip_messages')}`,
      {},
    );
    this.clockMs = Math.max(this.clockMs, Number(c?.t ?? 0));
    return Number(r?.n ?? 0) > 0 ? Number(r?.w ?? 0) : 0;
  }

  private async computeAll(touched: Map<string, number>): Promise<void> {
    const ids = [...touched.keys()];
    for (let i = 0; i < ids.length; i += this.chunkCalls) {
      const chunk = new Map(ids.slice(i, i + this.chunkCalls).map((id) => [id, touched.get(id)!]));
      await this.computeChunk(chunk);
    }
    touched.clear();
  }

  /**
   * Computes a chunk's calls (grown by the stored legs linked to them) and commits what changed. The
   * legs are looked for again after the write: two jobs computing a call's two legs at once each find
   * the other's row missing, but whichever writes second finds the first's row when it looks again,
   * and computes them together (its write is the newer version).
   */
  private async computeChunk(chunk: Map<string, number>): Promise<void> {
    for (let commits = 0; commits < 3; commits++) {
      // What is committed is always computed over the chunk as last grown.
      let versions = await this.compute(chunk);
      for (let round = 0; round < 3; round++) {
        const more = await this.linkedLegs(versions, chunk);
        if (more.size === 0) break;
        for (const [id, start] of more) chunk.set(id, start);
        versions = await this.compute(chunk);
      }
      if (!(await this.computer.commit(versions))) return;
      const more = await this.linkedLegs(versions, chunk);
      if (more.size === 0) return;
      for (const [id, start] of more) chunk.set(id, start);
    }
  }

  /** The versions of a set of Call-IDs as of the store's clock. */
  private async compute(chunk: Map<string, number>): Promise<CallVersion[]> {
    const { client, database } = this.options;
    const from = Math.min(...chunk.values()) - this.maxDurationMs - TIMER_B_MS - this.linkWindowMs;
    const scope: StoredScope = {
      where: `call_id IN ${IDS} AND time >= fromUnixTimestamp64Milli({from:Int64})`,
      params: { ids: [...chunk.keys()].map(hexOf), from },
    };
    const versions: CallVersion[] = [];
    const sink = this.computer.newSink((record) =>
      versions.push({ record, open: false, deadline: record.end }),
    );
    for await (const item of mergeByTime(
      storedSipEvents(client, database, scope),
      storedStreams(client, database, scope),
    )) {
      if (item.kind === 'sip') sink.add(item.event);
      else sink.addMedia(item.callId, item.final, item.endReason, item.stream, item.timeMs);
    }
    sink.advance(this.clockMs);
    for (const { record, deadline } of sink.snapshot()) versions.push({ record, open: true, deadline });
    return versions.filter((v) => chunk.has(v.record.callId));
  }

  /** Stored calls outside the chunk that share a linking key with its calls (either direction). */
  private async linkedLegs(
    versions: CallVersion[],
    chunk: Map<string, number>,
  ): Promise<Map<string, number>> {
    if (versions.length === 0) return new Map();
    const link = this.options.link ?? {};
    const heuristicMs = link.heuristicWindowMs ?? DEFAULT_HEURISTIC_WINDOW_MS;
    const named = new Set<string>();
    const sessions = new Set<string>();
    const icids = new Set<string>();
    // Heuristic keys → starts of the chunk's legs holding them, to keep only candidates in the window.
    const earlier = new Map<string, number[]>();
    const later = new Map<string, number[]>();
    const add = (map: Map<string, number[]>, key: string, start: number) => {
      const list = map.get(key);
      if (list === undefined) map.set(key, [start]);
      else list.push(start);
    };
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const { record: r } of versions) {
      lo = Math.min(lo, r.start);
      hi = Math.max(hi, r.start);
      if (r.correlation.xCid) named.add(hexOf(r.correlation.xCid));
      if (r.correlation.sessionId) sessions.add(hexOf(r.correlation.sessionId));
      if (r.correlation.icid) icids.add(hexOf(r.correlation.icid));
      let base = r.callId;
      if (link.callIdPrefix && base.startsWith(link.callIdPrefix))
        base = base.slice(link.callIdPrefix.length);
      if (link.callIdSuffix && base.endsWith(link.callIdSuffix))
        base = base.slice(0, -link.callIdSuffix.length);
      if (base !== r.callId) named.add(hexOf(base));
      if (link.callIdPrefix || link.callIdSuffix)
        named.add(hexOf(`${link.callIdPrefix ?? ''}${r.callId}${link.callIdSuffix ?? ''}`));
      if (heuristicMs > 0 && r.to !== '') {
        const user = hexOf(r.to).toUpperCase();
        add(earlier, `${user}|${r.caller.ip}`, r.start);
        for (const ip of wentTo(r)) add(later, `${user}|${ip}`, r.start);
      }
    }
    const found = await rows(
      this.options.client,
      `SELECT hex(call_id) AS id, toUnixTimestamp64Milli(start) AS start_ms, by_key, as_earlier, as_later
       FROM (
         SELECT call_id, start,
           call_id IN (SELECT unhex(arrayJoin({named:Array(String)})))
             OR x_cid IN ${IDS} OR edge_call_id IN ${IDS}
             OR session_id IN (SELECT unhex(arrayJoin({sessions:Array(String)})))
             OR icid IN (SELECT unhex(arrayJoin({icids:Array(String)}))) AS by_key,
           arrayMap(a -> concat(hex(to_user), '|', a), arrayDistinct(arrayConcat([toString(callee_ip)],
             arrayMap(t -> if(startsWith(t, '['), substring(t, 2, position(t, ']') - 2),
               substring(t, 1, position(t, ':') - 1)), branch_to)))) AS as_earlier,
           concat(hex(to_user), '|', caller_ip) AS as_later
         FROM ${this.computer.calls} FINAL
         WHERE start >= fromUnixTimestamp64Milli({lo:Int64}) AND start <= fromUnixTimestamp64Milli({hi:Int64})
           AND call_id NOT IN ${IDS}
       )
       WHERE by_key OR hasAny(as_earlier, {earlier:Array(String)}) OR as_later IN {later:Array(String)}`,
      {
        lo: lo - this.linkWindowMs,
        hi: hi + this.linkWindowMs,
        ids: [...chunk.keys()].map(hexOf),
        named: [...named],
        sessions: [...sessions],
        icids: [...icids],
        earlier: [...earlier.keys()],
        later: [...later.keys()],
      },
    );
    // The heuristic links legs within its window only, and the engine decides among the candidates:
    // a leg's INVITE may have gone to any of its hops' destinations when the next leg started (a key alone would pull in every call to the
    // same user through the same address over the link window).
    const near = (starts: number[] | undefined, from: number, to: number) =>
      starts?.some((s) => s >= from && s <= to) === true;
    const out = new Map<string, number>();
    for (const r of found) {
      const start = Number(r.start_ms);
      if (
        r.by_key === true ||
        r.by_key === 1 ||
        (r.as_earlier as string[]).some((k) => near(earlier.get(k), start, start + heuristicMs)) ||
        near(later.get(String(r.as_later)), start - heuristicMs, start)
      )
        out.set(fromHex(r.id), start);
    }
    return out;
  }
}

export interface RebuildOptions extends Omit<CallsJobOptions, 'intervalMs' | 'chunkCalls' | 'overlapSec'> {
  /** The messages to compute calls from (sip_messages and media_reports columns). */
  scope: StoredScope;
  /** Calls still open at this capture time are closed ('end-of-capture'); without it they stay open. */
  closeAtMs?: number;
  /**
   * The run the writer stamps the calls with: a stored call of another run is written again even
   * when unchanged (the same capture run twice: its calls belong to the latest run, as its messages).
   */
  runId?: string;
  /** Versions committed together (default 5,000). */
  batch?: number;
}

/**
 * Computes and stores the calls of a whole scope in one pass (a finished capture run): the same engine
 * over the messages in capture order, memory bounded by the calls open at once.
 */
export async function rebuildCalls(
  options: RebuildOptions,
): Promise<{ callsComputed: number; versionsWritten: number; unchanged: number; tombstones: number }> {
  const computer = new CallsComputer(options);
  // One version for the whole rebuild, taken before it reads (a run's messages are all stored by then):
  // its calls replace what the store had for the run at once.
  const version = await computer.versionNow();
  const batch = Math.max(1, options.batch ?? 5000);
  let pending: CallVersion[] = [];
  let writing: Promise<unknown> = Promise.resolve();
  const flush = async () => {
    const now = pending;
    pending = [];
    await writing;
    writing = computer.commit(now, version, options.runId);
    // Awaited at the next flush; marked handled so that a failure meanwhile is not an unhandled one.
    writing.catch(() => undefined);
  };
  const sink = computer.newSink((record) => pending.push({ record, open: false, deadline: record.end }));
  for await (const item of mergeByTime(
    storedSipEvents(options.client, options.database, options.scope),
    storedStreams(options.client, options.database, options.scope),
  )) {
    if (item.kind === 'sip') sink.add(item.event);
    else sink.addMedia(item.callId, item.final, item.endReason, item.stream, item.timeMs);
    if (pending.length >= batch) await flush();
  }
  if (options.closeAtMs !== undefined) await sink.close(options.closeAtMs);
  else for (const { record, deadline } of sink.snapshot()) pending.push({ record, open: true, deadline });
  await flush();
  await writing;
  return { ...computer.stats };
}
