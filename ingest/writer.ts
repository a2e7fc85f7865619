/**
 * Batched, retry-safe inserts of CaptureEvents into the store.
 *
 * Events are encoded into per-table TabSeparated buffers (the current batch). A batch is sent when it
 * reaches maxRows or maxBytes, or maxDelayMs after its first row. One batch is in flight at a time:
 * `write()` resolves once its events are in the current batch, and waits only when the current batch
 * is full while the previous one is still in flight (backpressure).
 *
 * Every table insert of a batch carries an `insert_deduplication_token` derived from the batch's event
 * ids, so a retried insert (after a timeout whose insert did land, say) is stored once; the tables'
 * ReplacingMergeTree key (ending in event_id) also collapses events re-sent in other batches.
 *
 * A permanent failure is sticky: the batch is lost, and every later write/flush/close rejects with the
 * same StoreWriteError. The caller (a Kafka consumer) stops committing offsets, replays from its last
 * commit with a new writer, and deduplication makes the replay safe.
 */
import { createHash } from 'node:crypto';
import { type ClickHouseClient, ClickHouseError, type ClickHouseSettings } from '@clickhouse/client';
import type { AlertTransition } from '../core/alert.js';
import type { CaptureEvent } from '../core/event.js';
import { type Logger, ProblemLog, silentLogger } from '../core/log.js';
import { alertRow } from './alert-rows.js';
import { type CallVersion, callRow, callTombstoneRow } from './call-rows.js';
import { type EventIdScheme, EventIds } from './event-id.js';
import { type HealthRecord, healthRow } from './health.js';
import { clientInserter, type RowInserter } from './inserter.js';
import { NativeBlock } from './native-block.js';
import {
  type CaptureRun,
  captureRunRow,
  type EventRowSinks,
  emptyRowSinks,
  encodeEvent,
  type RowContext,
  type VmInventoryEntry,
  vmInventoryRow,
} from './rows.js';
import { insertTarget } from './schema/ddl.js';
import { readEventIdScheme } from './schema/migrate.js';
import {
  ALERTS,
  CALLS,
  CAPTURE_HEALTH,
  CAPTURE_RUNS,
  columnNames,
  EVENT_TABLE_SPECS,
  type EventTableName,
  insertColumns,
  QUARANTINE,
  SIP_MESSAGES,
  type TableSpec,
  VM_INVENTORY,
} from './schema/tables.js';

export type { HealthRecord } from './health.js';
export type { CaptureRun, VmInventoryEntry } from './rows.js';

export interface RetryOptions {
  /** Attempts per insert, the first included (default 6). */
  attempts?: number;
  /** Delay before the first retry; doubles each time, with ±25 % jitter (default 200 ms). */
  initialDelayMs?: number;
  /** Longest delay between attempts (default 10 s). */
  maxDelayMs?: number;
}

export interface StoreWriterOptions {
  database: string;
  /** Rows (all tables together) that make a batch full (default DEFAULT_MAX_ROWS). */
  maxRows?: number;
  /** Row bytes (Native) that make a batch full (default DEFAULT_MAX_BYTES). */
  maxBytes?: number;
  /** A batch is sent at most this long after its first row (default 1000 ms). */
  maxDelayMs?: number;
  logger?: Logger;
  /** Capture run stamped on every row (capture_runs.run_id); '' for live streams. */
  runId?: string;
  retry?: RetryOptions;
  /**
   * Extra settings for every insert. On a cluster, `distributed_foreground_insert: 1` makes a
   * Distributed insert return only once the shards have the rows (and deduplicated them).
   */
  insertSettings?: ClickHouseSettings;
  /**
   * How blocks reach the store (ingest/inserter.ts): `Store.inserter` goes straight into an embedded
   * store this process owns. Default: over HTTP through the client.
   */
  inserter?: RowInserter;
  /**
   * How event ids are computed: the store's scheme (`migrate()` returns it). Default: read from the
   * store before the first event is encoded.
   */
  eventIds?: EventIdScheme;
}

export interface StoreWriterStats {
  /** Events accepted by write(). */
  events: number;
  /** Events that made no row (unparsable SIP, protocol types the store has no table for). */
  skipped: number;
  skippedByReason: Record<string, number>;
  /** Rows the store acknowledged, all tables. */
  rows: number;
  rowsByTable: Record<EventTableName, number>;
  /** Events whose rows the store acknowledged. */
  delivered: number;
  bytes: number;
  /** Batches the store acknowledged. */
  batches: number;
  /** Insert attempts repeated after a transient error. */
  retries: number;
  /** Batches given up on (permanent error or attempts exhausted). */
  failures: number;
  /** Rows the store refused for good, kept in the quarantine table instead. */
  quarantinedRows: number;
  /** Events with a capture time before 2000 or more than a day ahead of this host's clock (stored all the same). */
  implausibleTimes: number;
  /**
   * Capture time (ms) of the newest event whose rows the store acknowledged, 0 before any; a capture
   * time later than the event's arrival counts as its arrival (a clock ahead must not hide a lag).
   */
  newestStoredMs: number;
}

/** A batch (or run / inventory row) the store did not take; `cause` is the last error. */
export class StoreWriteError extends Error {
  constructor(
    message: string,
    readonly table: string,
    readonly rows: number,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreWriteError';
  }
}

const EVENT_TABLES = Object.entries(EVENT_TABLE_SPECS) as ReadonlyArray<[EventTableName, TableSpec]>;

/** ClickHouse error codes worth another attempt: overload, timeouts, replicas and Keeper. */
const RETRYABLE_CODES = new Set([
  3, // UNEXPECTED_END_OF_FILE (connection cut mid-body)
  159, // TIMEOUT_EXCEEDED
  164, // READONLY (replica lost Keeper, or a read-only moment)
  202, // TOO_MANY_SIMULTANEOUS_QUERIES
  203, // NO_FREE_CONNECTION
  209, // SOCKET_TIMEOUT
  210, // NETWORK_ERROR
  225, // NO_ZOOKEEPER
  236, // ABORTED
  241, // MEMORY_LIMIT_EXCEEDED
  242, // TABLE_IS_READ_ONLY
  252, // TOO_MANY_PARTS
  279, // ALL_CONNECTION_TRIES_FAILED
  319, // UNKNOWN_STATUS_OF_INSERT
  425, // SYSTEM_ERROR
  999, // KEEPER_EXCEPTION
]);

const TOO_MANY_PARTITIONS = /too many partitions for (a )?single insert block/i;

/**
 * ClickHouse error codes that mean "this data", not "this store": a row the engine cannot parse, a
 * value no column takes. Such a batch is split until the refused rows are alone, and they are
 * quarantined; everything else stays a batch failure (a missing table would refuse every row).
 */
const ROW_ERROR_CODES = new Set([
  6, // CANNOT_PARSE_TEXT
  26, // CANNOT_PARSE_QUOTED_STRING
  27, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  33, // CANNOT_READ_ALL_DATA
  38, // CANNOT_PARSE_DATE
  41, // CANNOT_PARSE_DATETIME
  53, // TYPE_MISMATCH
  69, // ARGUMENT_OUT_OF_BOUND
  70, // CANNOT_CONVERT_TYPE
  72, // CANNOT_PARSE_NUMBER
  117, // INCORRECT_DATA
  131, // TOO_LARGE_STRING_SIZE
  321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
]);

/** The store refused this data, not the insert as such: worth finding the rows it refuses. */
export function isRowError(error: unknown): boolean {
  if (!(error instanceof ClickHouseError)) return false;
  return ROW_ERROR_CODES.has(Number(error.code)) || TOO_MANY_PARTITIONS.test(error.message);
}

const RETRYABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
]);

/**
 * Network failures and server overload are transient; anything else (bad SQL, a value the table
 * refuses, a missing table) would fail again. HTTP errors without a ClickHouse exception (a proxy's
 * 502/503/504) arrive as plain errors carrying the response text.
 */
export function isRetryable(error: unknown): boolean {
  if (error instanceof ClickHouseError) {
    // TOO_MANY_PARTS (252) also says "Too many partitions for single INSERT block": that one never passes.
    if (TOO_MANY_PARTITIONS.test(error.message)) return false;
    return RETRYABLE_CODES.has(Number(error.code));
  }
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && RETRYABLE_NODE_CODES.has(code)) return true;
  return /timeout|socket hang up|ECONNRESET|ECONNREFUSED|bad gateway|service unavailable|gateway time-?out|\b50[234]\b/i.test(
    error.message,
  );
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Days (partitions of the event tables) one batch may span: ClickHouse refuses an insert into more
 * than 100 partitions (max_partitions_per_insert_block). A capture spanning months, a HEP agent with a
 * broken clock or forged timestamps make batches cut at this many days instead.
 */
export const MAX_DAYS_PER_BATCH = 64;

/**
 * A batch is full at this many rows or bytes. Each INSERT costs the engine ~20 ms whatever its size
 * (a new part per table), against ~5 µs a row: at 50,000 rows that is under a tenth of the time.
 * Two batches live at once (one filling, one being stored), so the bytes bound the writer's memory.
 */
export const DEFAULT_MAX_ROWS = 50_000;
export const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;
const NS_PER_DAY = 86_400_000_000_000n;
/** Capture times before this are implausible (2000-01-01). */
const EARLIEST_PLAUSIBLE_NS = 946_684_800_000_000_000n;

/** Rows of one batch, per table, and each table's event ids (its deduplication token). */
class Batch {
  /** Blocks of an earlier batch are reused (emptied): their grown buffers are not allocated again. */
  constructor(readonly sinks: EventRowSinks = emptyRowSinks()) {}

  private readonly ids: Record<EventTableName, bigint[]> = {
    sip_messages: [],
    media_reports: [],
    rtcp_reports: [],
    hep_logs: [],
    failovers: [],
  };
  rows = 0;
  events = 0;
  /** Events of the batch that made rows (the others were skipped). */
  eventsWithRows = 0;
  /** UTC days of the rows' capture times: each is a partition of the event tables. */
  readonly days = new Set<number>();
  /** When the first row arrived (the batch's deadline counts from it); 0 while empty. */
  firstRowAt = 0;
  /** Newest capture time of its events with rows, ns, capped at their arrival. */
  newestNs = 0n;

  get bytes(): number {
    const s = this.sinks;
    return (
      s.sip_messages.length +
      s.media_reports.length +
      s.rtcp_reports.length +
      s.hep_logs.length +
      s.failovers.length
    );
  }

  noteId(table: EventTableName, id: bigint): void {
    this.ids[table].push(id);
  }

  /** Event ids of a table's rows, in row order. */
  idsOf(table: EventTableName): readonly bigint[] {
    return this.ids[table];
  }

  /** Same events in the same order, run and table → same token, so a re-sent insert is dropped. */
  token(table: EventTableName, runId: string): string {
    const ids = this.ids[table];
    const bytes = Buffer.allocUnsafe(8 * ids.length);
    ids.forEach((id, i) => {
      bytes.writeBigUInt64BE(id, 8 * i);
    });
    const hash = createHash('sha256').update(bytes).update(`\0${table}\0${runId}`);
    return `callscope-1-${hash.digest('hex').slice(0, 32)}`;
  }
}

export function emptyWriterStats(): StoreWriterStats {
  return {
    events: 0,
    skipped: 0,
    skippedByReason: {},
    rows: 0,
    rowsByTable: { sip_messages: 0, media_reports: 0, rtcp_reports: 0, hep_logs: 0, failovers: 0 },
    delivered: 0,
    bytes: 0,
    batches: 0,
    retries: 0,
    failures: 0,
    quarantinedRows: 0,
    implausibleTimes: 0,
    newestStoredMs: 0,
  };
}

/** Adds one writer's figures to a total (writers replaced after a failure, over a whole run). */
export function addWriterStats(into: StoreWriterStats, s: StoreWriterStats): void {
  into.events += s.events;
  into.skipped += s.skipped;
  for (const [k, v] of Object.entries(s.skippedByReason))
    into.skippedByReason[k] = (into.skippedByReason[k] ?? 0) + v;
  into.rows += s.rows;
  into.delivered += s.delivered;
  for (const table of Object.keys(into.rowsByTable) as Array<keyof StoreWriterStats['rowsByTable']>)
    into.rowsByTable[table] += s.rowsByTable[table];
  into.bytes += s.bytes;
  into.batches += s.batches;
  into.retries += s.retries;
  into.failures += s.failures;
  into.quarantinedRows += s.quarantinedRows;
  into.implausibleTimes += s.implausibleTimes;
  into.newestStoredMs = Math.max(into.newestStoredMs, s.newestStoredMs);
}

export class StoreWriter {
  private readonly database: string;
  private readonly maxRows: number;
  private readonly maxBytes: number;
  private readonly maxDelayMs: number;
  private readonly logger: Logger;
  private readonly problems: ProblemLog;
  private readonly context: RowContext;
  private readonly attempts: number;
  private readonly initialDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly insertSettings: ClickHouseSettings;
  private readonly inserter: RowInserter;
  private readonly client: ClickHouseClient;
  /** False until the store's event id scheme is known (see StoreWriterOptions.eventIds). */
  private eventIdsKnown: boolean;
  private current = new Batch();
  /** The blocks of the last batch sent, emptied: the next batch writes into them. */
  private spareSinks: EventRowSinks | null = null;
  private inflight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failure: StoreWriteError | null = null;
  /** Capture times after this are implausible: a day ahead of this host's clock (set per write). */
  private latestPlausibleNs = 0n;
  /** This host's clock at the current write, ns: the latest capture time the ingest lag believes. */
  private arrivalNs = 0n;
  private closed = false;
  readonly stats: StoreWriterStats = emptyWriterStats();

  constructor(client: ClickHouseClient, options: StoreWriterOptions) {
    insertTarget(options.database, SIP_MESSAGES.name); // validates the database name now, not at the first flush
    this.database = options.database;
    this.maxRows = positive(options.maxRows ?? DEFAULT_MAX_ROWS, 'maxRows');
    this.maxBytes = positive(options.maxBytes ?? DEFAULT_MAX_BYTES, 'maxBytes');
    this.maxDelayMs = positive(options.maxDelayMs ?? 1000, 'maxDelayMs');
    this.logger = options.logger ?? silentLogger;
    this.problems = new ProblemLog(this.logger);
    this.context = { runId: options.runId ?? '', ids: new EventIds(options.eventIds) };
    this.eventIdsKnown = options.eventIds !== undefined;
    this.client = client;
    this.attempts = positive(options.retry?.attempts ?? 6, 'retry.attempts');
    this.initialDelayMs = options.retry?.initialDelayMs ?? 200;
    this.maxRetryDelayMs = options.retry?.maxDelayMs ?? 10_000;
    this.insertSettings = options.insertSettings ?? {};
    this.inserter = options.inserter ?? clientInserter(client);
  }

  /** Resolves once every event is in the current batch (see the module comment for backpressure). */
  async write(events: Iterable<CaptureEvent>): Promise<void> {
    this.usable();
    if (!this.eventIdsKnown) await this.readEventIds();
    const now = Date.now();
    this.arrivalNs = BigInt(now) * 1_000_000n;
    this.latestPlausibleNs = BigInt(now + 86_400_000) * 1_000_000n;
    for (const event of events) {
      if (this.isFull(this.current)) await this.makeRoom();
      this.accept(event);
    }
    if (this.isFull(this.current) && this.inflight === null) this.dispatch();
    else this.arm();
  }

  /** The store's event id scheme once known (a replacement writer is given it: see StoreSink). */
  get eventIds(): EventIdScheme | null {
    return this.eventIdsKnown ? this.context.ids.scheme : null;
  }

  /**
   * Reads the store's event id scheme, retrying transient errors as an insert does. A failure is not
   * sticky (nothing was accepted, nothing lost): the caller may write again.
   */
  private async readEventIds(): Promise<void> {
    const scheme = await this.withRetries(
      () => readEventIdScheme(this.client, this.database),
      (error, attempt, retrying) =>
        retrying
          ? undefined
          : new StoreWriteError(
              `cannot read how ${this.database} computes event ids: ${describe(error)}`,
              '',
              0,
              attempt,
              { cause: error },
            ),
    );
    this.context.ids = new EventIds(scheme);
    this.eventIdsKnown = true;
  }

  /** Resolves when everything accepted so far is stored; rejects with a sticky StoreWriteError. */
  async flush(): Promise<void> {
    this.throwIfFailed();
    while (this.inflight !== null || this.current.rows > 0) {
      if (this.inflight !== null) {
        await this.inflight;
        this.throwIfFailed();
        continue;
      }
      this.dispatch();
    }
  }

  /** Flushes and stops accepting events. The client stays open: it is the caller's. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      this.disarm();
    }
  }

  /** Stores (or replaces: the newest updated_at wins) the row of a capture run. */
  async writeCaptureRun(run: CaptureRun): Promise<void> {
    this.usable();
    const out = new NativeBlock(insertColumns(CAPTURE_RUNS));
    captureRunRow(run, Date.now(), out);
    const data = out.take();
    await this.insert(
      CAPTURE_RUNS,
      [data],
      1,
      `run-${createHash('sha256').update(data).digest('hex').slice(0, 32)}`,
    );
  }

  /**
   * Stores call versions (and tombstones of rows whose start moved), all stamped `version`. The token
   * is the content's hash: a retry, or another job writing the same versions, inserts nothing twice.
   */
  async writeCalls(
    versions: readonly CallVersion[],
    tombstones: ReadonlyArray<{ callId: string; start: number }>,
    version: bigint,
  ): Promise<void> {
    this.usable();
    const rows = versions.length + tombstones.length;
    if (rows === 0) return;
    const out = new NativeBlock(insertColumns(CALLS));
    for (const v of versions) callRow(v, version, this.context.runId, out);
    for (const t of tombstones) callTombstoneRow(t.callId, t.start, version, out);
    const data = out.take();
    await this.insert(
      CALLS,
      [data],
      rows,
      `calls-${createHash('sha256').update(data).digest('hex').slice(0, 32)}`,
    );
  }

  /**
   * Stores alert transitions (the alerts table). The token is the content's hash: a retry, or a
   * second evaluator judging the same instant the same way, inserts nothing twice.
   */
  async writeAlerts(transitions: readonly AlertTransition[], evaluator: string): Promise<void> {
    this.usable();
    if (transitions.length === 0) return;
    const out = new NativeBlock(insertColumns(ALERTS));
    for (const t of transitions) alertRow(t, evaluator, out);
    const data = out.take();
    await this.insert(
      ALERTS,
      [data],
      transitions.length,
      `alerts-${createHash('sha256').update(data).digest('hex').slice(0, 32)}`,
    );
  }

  /** Stores live capture-health rows (capture_health) at once, stamped with this writer's run. */
  async writeHealth(records: readonly HealthRecord[]): Promise<void> {
    this.usable();
    if (records.length === 0) return;
    const out = new NativeBlock(insertColumns(CAPTURE_HEALTH));
    for (const record of records) healthRow(record, this.context.runId, out);
    const data = out.take();
    await this.insert(
      CAPTURE_HEALTH,
      [data],
      records.length,
      `health-${createHash('sha256').update(data).digest('hex').slice(0, 32)}`,
    );
  }

  /** Stores VM inventory rows (the newest last_seen per hypervisor, VM and interface wins). */
  async writeVmInventory(entries: readonly VmInventoryEntry[]): Promise<void> {
    this.usable();
    if (entries.length === 0) return;
    const out = new NativeBlock(insertColumns(VM_INVENTORY));
    for (const entry of entries) vmInventoryRow(entry, out);
    const data = out.take();
    await this.insert(
      VM_INVENTORY,
      [data],
      entries.length,
      `vm-${createHash('sha256').update(data).digest('hex').slice(0, 32)}`,
    );
  }

  private usable(): void {
    if (this.closed) throw new Error(`store writer for ${this.database} is closed`);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }

  private isFull(batch: Batch): boolean {
    return (
      batch.rows >= this.maxRows || batch.bytes >= this.maxBytes || batch.days.size >= MAX_DAYS_PER_BATCH
    );
  }

  private accept(event: CaptureEvent): void {
    const batch = this.current;
    const before = EVENT_TABLES.map(([table]) => batch.sinks[table].rows);
    const encoded = encodeEvent(event, batch.sinks, this.context);
    this.stats.events++;
    batch.events++;
    if (encoded.skipped !== undefined) {
      this.stats.skipped++;
      this.stats.skippedByReason[encoded.skipped] = (this.stats.skippedByReason[encoded.skipped] ?? 0) + 1;
      this.problems.report(`skipped:${encoded.skipped}`, 'event not stored: the store has no place for it', {
        database: this.database,
        reason: encoded.skipped,
        callId: event.correlationId.slice(0, 256),
        from: `${event.srcIp}:${event.srcPort}`,
        file: event.source?.file,
        interface: event.source?.interface,
        packet: event.source?.packetNumber,
      });
      return;
    }
    if (batch.rows === 0) batch.firstRowAt = Date.now();
    batch.rows += encoded.rows;
    batch.eventsWithRows++;
    const ns = event.timestampNs;
    batch.days.add(Number(ns / NS_PER_DAY));
    // bigints: Math.min does not take them. A capture time ahead of this clock counts as now.
    let arrived = ns;
    if (arrived > this.arrivalNs) arrived = this.arrivalNs;
    if (arrived > batch.newestNs) batch.newestNs = arrived;
    if (ns < EARLIEST_PLAUSIBLE_NS || ns > this.latestPlausibleNs) {
      this.stats.implausibleTimes++;
      this.problems.report(
        'implausible-time',
        'capture time implausible (before 2000, or a day ahead); stored as given',
        {
          database: this.database,
          time: isoOfNs(ns),
          callId: event.correlationId.slice(0, 256),
          from: `${event.srcIp}:${event.srcPort}`,
          file: event.source?.file,
          interface: event.source?.interface,
          packet: event.source?.packetNumber,
        },
      );
    }
    EVENT_TABLES.forEach(([table], i) => {
      if (batch.sinks[table].rows > before[i]!) batch.noteId(table, encoded.eventId);
    });
  }

  /** Waits until the full current batch can be sent, and sends it. */
  private async makeRoom(): Promise<void> {
    while (this.isFull(this.current)) {
      if (this.inflight !== null) {
        await this.inflight;
        this.throwIfFailed();
        continue;
      }
      this.dispatch();
    }
  }

  /** Sends the current batch (nothing may be in flight) and starts a new one. */
  private dispatch(): void {
    this.disarm();
    const batch = this.current;
    if (batch.rows === 0) return;
    this.current = new Batch(this.spareSinks ?? undefined);
    this.spareSinks = null;
    this.inflight = this.send(batch).finally(() => {
      this.inflight = null;
      for (const block of Object.values(batch.sinks)) block.reset();
      this.spareSinks = batch.sinks;
      // Rows that arrived meanwhile keep their deadline.
      if (this.current.rows > 0) this.arm();
    });
  }

  /** Starts the batch's deadline timer if it has rows and none is running. */
  private arm(): void {
    if (this.timer !== null || this.current.rows === 0 || this.failure !== null || this.closed) return;
    const due = Math.max(0, this.current.firstRowAt + this.maxDelayMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.inflight === null) this.dispatch();
      // else: dispatch()'s completion re-arms, and the overdue batch goes at once.
    }, due);
    // An idle writer must not keep the process alive; owners flush or close before exit.
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private async send(batch: Batch): Promise<void> {
    /** Events with a row the store refused (quarantined): not delivered. */
    const quarantined = new Set<bigint>();
    try {
      for (const [table, spec] of EVENT_TABLES) {
        const block = batch.sinks[table];
        if (block.rows === 0) continue;
        const refused = new Set<bigint>();
        const stored = await this.insertRows(
          spec,
          block,
          0,
          batch.idsOf(table),
          batch.token(table, this.context.runId),
          refused,
        );
        this.stats.rows += stored;
        this.stats.rowsByTable[table] += stored;
        this.stats.bytes += block.length;
        for (const id of refused) quarantined.add(id);
      }
      this.stats.batches++;
      this.stats.delivered += batch.eventsWithRows - quarantined.size;
      const newestMs = Number(batch.newestNs / 1_000_000n);
      if (newestMs > this.stats.newestStoredMs) this.stats.newestStoredMs = newestMs;
      if (quarantined.size > 0) {
        this.stats.skipped += quarantined.size;
        this.stats.skippedByReason.quarantined =
          (this.stats.skippedByReason.quarantined ?? 0) + quarantined.size;
      }
    } catch (error) {
      this.stats.failures++;
      this.failure =
        error instanceof StoreWriteError
          ? error
          : new StoreWriteError(`batch failed: ${describe(error)}`, '', batch.rows, 0, { cause: error });
      this.logger.error('store batch lost', {
        database: this.database,
        table: this.failure.table,
        rows: this.failure.rows,
        events: batch.events,
        error: this.failure.message,
      });
    }
  }

  /**
   * Inserts rows [from, from + ids.length) of a table's block; when the store refuses the data
   * (isRowError), the rows are split in halves until the refused ones are alone, and those are
   * quarantined, so a row the engine never takes does not take its batch-mates with it. Resolves
   * with the rows stored; `refused` gets the quarantined rows' event ids. Halves get tokens of their
   * own (derived, so a retry is still deduplicated).
   */
  private async insertRows(
    spec: TableSpec,
    block: NativeBlock,
    from: number,
    ids: readonly bigint[],
    token: string,
    refused: Set<bigint>,
  ): Promise<number> {
    const data = block.sliceParts(from, from + ids.length);
    try {
      await this.insert(spec, data, ids.length, token);
      return ids.length;
    } catch (error) {
      const cause = error instanceof StoreWriteError ? error.cause : error;
      if (!isRowError(cause)) throw error;
      if (ids.length === 1) {
        await this.quarantine(spec, Buffer.concat(data), ids[0]!, cause);
        refused.add(ids[0]!);
        return 0;
      }
      const half = ids.length >> 1;
      return (
        (await this.insertRows(spec, block, from, ids.slice(0, half), `${token}-a`, refused)) +
        (await this.insertRows(spec, block, from + half, ids.slice(half), `${token}-b`, refused))
      );
    }
  }

  /**
   * Keeps one refused row, with the reason, in the quarantine table (a failure here fails the
   * batch). The row is kept as sent: a one-row Native block.
   */
  private async quarantine(spec: TableSpec, row: Buffer, eventId: bigint, cause: unknown): Promise<void> {
    const code = cause instanceof ClickHouseError ? Number(cause.code) : 0;
    const reason = describe(cause);
    const out = new NativeBlock(insertColumns(QUARANTINE));
    out
      .timeMs(Date.now())
      .utf8(spec.name)
      .bigUint(eventId)
      .int(Number.isFinite(code) ? code : 0)
      .utf8(reason.slice(0, 4096))
      .bytes(row)
      .utf8(this.context.runId)
      .endRow();
    await this.insert(QUARANTINE, [out.take()], 1, `quarantine-${spec.name}-${eventId}`);
    this.stats.quarantinedRows++;
    this.logger.error('row refused by the store: quarantined', {
      database: this.database,
      table: spec.name,
      eventId: eventId.toString(),
      error: reason,
    });
  }

  /** One insert with retries; the token makes a repeated attempt a no-op if an earlier one landed. */
  private async insert(spec: TableSpec, data: readonly Buffer[], rows: number, token: string): Promise<void> {
    const table = insertTarget(this.database, spec.name);
    await this.withRetries(
      () =>
        this.inserter.insert({
          table,
          columns: columnNames(spec),
          data,
          settings: {
            ...this.insertSettings,
            insert_deduplicate: 1,
            insert_deduplication_token: token,
            async_insert: 0,
          },
        }),
      (error, attempt, retrying) => {
        this.logger.warn(retrying ? 'store insert failed; retrying' : 'store insert failed', {
          table,
          rows,
          bytes: data.reduce((n, part) => n + part.length, 0),
          attempt,
          token,
          error: describe(error),
        });
        if (retrying) return undefined;
        return new StoreWriteError(
          `inserting ${rows} rows into ${table} failed after ${attempt} attempt${attempt === 1 ? '' : 's'}: ${describe(error)}`,
          table,
          rows,
          attempt,
          { cause: error },
        );
      },
    );
  }

  /**
   * Runs `call` until it succeeds, again after transient errors (backoff with jitter, up to the
   * writer's attempts). `onError` sees every failure and gives the error thrown when it gives up.
   */
  private async withRetries<T>(
    call: () => Promise<T>,
    onError: (error: unknown, attempt: number, retrying: boolean) => StoreWriteError | undefined,
  ): Promise<T> {
    let delay = this.initialDelayMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        const retrying = attempt < this.attempts && isRetryable(error);
        const failure = onError(error, attempt, retrying);
        if (!retrying) throw failure ?? error;
        this.stats.retries++;
        await sleep(delay * (0.75 + Math.random() * 0.5));
        delay = Math.min(delay * 2, this.maxRetryDelayMs);
      }
    }
  }
}

function isoOfNs(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : `${ns} ns`;
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`store writer: ${name} must be > 0, got ${value}`);
  return value;
}
