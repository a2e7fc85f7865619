/**
 * The calls table from the store (job.ts) against the calls `analyze` makes from the same capture:
 * a finished run rebuilt at its end, and the incremental job fed in pieces, out of order, twice over,
 * and restarted, each ending with exactly one row per call and the same records.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVERY_OUTCOME, generateCapture, OUTCOMES } from '../../capture/generator/generate.js';
import type { CallRecord } from '../../core/call.js';
import type { CaptureEvent } from '../../core/event.js';
import { callFromRow, callSelectList } from '../../ingest/call-rows.js';
import { migrate } from '../../ingest/schema/migrate.js';
import { openTestStore, type TestStore } from '../../ingest/schema/test-store.js';
import { StoreWriter } from '../../ingest/writer.js';
import { generatedSource } from '../../test/pipeline/source.js';
import { analyzeFile } from '../analyze.js';
import { CallAnalysis } from './analysis.js';
import { CallsJob, rebuildCalls } from './job.js';
import { storedCallsSummary, storedDestinations } from './stored-kpis.js';

const SAMPLE = fileURLToPath(new URL('../../capture/sample/calls.pcap', import.meta.url));

let store: TestStore;
let events: CaptureEvent[];
/** The sample's calls as `analyze` makes them (closed at the capture's end). */
let analyzed: CallRecord[];
let lastMs: number;

beforeAll(async () => {
  store = await openTestStore();
  events = [];
  const analysis = new CallAnalysis({ keepRecords: true });
  const summary = await analyzeFile(SAMPLE, {
    onEvent: (e) => events.push(e),
    sinks: [analysis.sink],
  });
  lastMs = Math.trunc(Date.parse(summary.lastPacketTime!));
  await analysis.finish(lastMs);
  analyzed = analysis.records;
}, 60_000);

afterAll(async () => {
  await store?.close();
});

async function storedCalls(database: string): Promise<Array<ReturnType<typeof callFromRow>>> {
  const rs = await store.client.query({
    query: `SELECT ${callSelectList()} FROM {db:Identifier}.calls FINAL ORDER BY start, call_id`,
    query_params: { db: database },
    format: 'JSONEachRow',
  });
  return (await rs.json<Record<string, unknown>>()).map(callFromRow);
}

async function fresh(database: string): Promise<StoreWriter> {
  await migrate(store.client, { database, ttlDays: 0 });
  return new StoreWriter(store.client, { database, runId: 'r1', maxRows: 100 });
}

const byId = (records: CallRecord[]) => new Map(records.map((r) => [r.callId, r]));

describe('calls in the store', () => {
  it('a finished run, rebuilt at its end, holds exactly the records analyze makes', async () => {
    const writer = await fresh('calls_rebuild');
    await writer.write(events);
    await writer.flush();
    const result = await rebuildCalls({
      client: store.client,
      database: 'calls_rebuild',
      writer,
      scope: { where: 'run_id = {run:String}', params: { run: 'r1' } },
      closeAtMs: lastMs,
    });
    expect(result.callsComputed).toBe(analyzed.length);
    const stored = await storedCalls('calls_rebuild');
    expect(stored.map((s) => s.record).sort((a, b) => a.start - b.start)).toEqual(
      [...analyzed].sort((a, b) => a.start - b.start),
    );
    expect(stored.every((s) => !s.open)).toBe(true);
    // Again: nothing changed, nothing written.
    const again = await rebuildCalls({
      client: store.client,
      database: 'calls_rebuild',
      writer,
      scope: { where: 'run_id = {run:String}', params: { run: 'r1' } },
      closeAtMs: lastMs,
    });
    expect(again.versionsWritten).toBe(0);
    expect(again.unchanged).toBe(analyzed.length);
    await writer.close();
  });

  it('the job, fed in pieces, out of order, twice and across a restart, ends with one row per call', async () => {
    const database = 'calls_job';
    const writer = await fresh(database);
    const job = () => new CallsJob({ client: store.client, database, writer, overlapSec: 0 });
    // The first third stored: calls in progress are visible, as open versions.
    const third = Math.floor(events.length / 3);
    await writer.write(events.slice(0, third));
    await writer.flush();
    const first = job();
    await first.cycle();
    const early = await storedCalls(database);
    expect(early.length).toBeGreaterThan(0);
    expect(early.some((s) => s.open)).toBe(true);
    // The rest arrives last part first, and the whole capture is delivered again (a replay).
    await writer.write(events.slice(2 * third));
    await writer.flush();
    await first.cycle();
    await writer.write(events.slice(third, 2 * third));
    await writer.write(events);
    await writer.flush();
    // A new process (the old one killed) picks up from the calls table.
    await job().cycle();
    const stored = await storedCalls(database);
    const count = await store.client.query({
      query: 'SELECT count() AS n FROM {db:Identifier}.calls FINAL',
      query_params: { db: database },
      format: 'JSONEachRow',
    });
    expect(Number((await count.json<{ n: string }>())[0]!.n)).toBe(analyzed.length);
    const expected = byId(analyzed);
    for (const s of stored) {
      const a = expected.get(s.record.callId)!;
      // The store's clock stops at the last message: a call the capture's end cut short stays open
      // rather than being closed by 'end-of-capture'.
      if (a.closedBy === 'end-of-capture') {
        expect(s.open, a.callId).toBe(true);
        expect({ ...s.record, closedBy: 'end-of-capture' }, a.callId).toEqual(a);
      } else {
        expect(s.record, a.callId).toEqual(a);
        expect(s.open, a.callId).toBe(false);
      }
    }
    await writer.close();
  });

  it('legs and hops of every outcome, one Call-ID at a time, and a start that moves earlier', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'callscope-calls-job-'));
    try {
      const file = join(dir, 'every.pcap');
      const truth = generateCapture({
        output: file,
        seed: 9,
        vms: 5,
        calls: 2 * OUTCOMES.length,
        callsPerSecond: 2,
        callDurationSec: 1,
        outcomes: EVERY_OUTCOME,
      });
      const all: CaptureEvent[] = [];
      const analysis = new CallAnalysis({ keepRecords: true });
      const summary = await analyzeFile(file, { onEvent: (e) => all.push(e), sinks: [analysis.sink] });
      const kpis = await analysis.finish(Math.trunc(Date.parse(summary.lastPacketTime!)));
      const database = 'calls_every';
      const writer = await fresh(database);
      // A proxied call's caller INVITE arrives last: the call first starts at the proxy's forward.
      const proxied = truth.calls.find((t) => t.proxyVm !== null && t.hopPath.length === 2)!;
      const edgeInvite = all.findIndex((e) => e.sip?.callId === proxied.callId && e.sip.method === 'INVITE');
      const held = all[edgeInvite]!;
      await writer.write(all.filter((_, i) => i !== edgeInvite));
      await writer.flush();
      // One Call-ID per chunk: B2BUA legs meet only through the calls table.
      const job = new CallsJob({ client: store.client, database, writer, overlapSec: 0, chunkCalls: 1 });
      await job.cycle();
      const before = (await storedCalls(database)).find((s) => s.record.callId === proxied.callId)!;
      expect(before.record.start).toBeGreaterThan(proxied.startMs);
      await writer.write([held]);
      await writer.flush();
      await job.cycle();
      expect(job.stats().tombstones).toBe(1);
      const stored = await storedCalls(database);
      expect(stored).toHaveLength(analysis.records.length);
      const expected = byId(analysis.records);
      for (const s of stored) {
        const a = expected.get(s.record.callId)!;
        if (a.closedBy === 'end-of-capture') expect({ ...s.record, closedBy: 'end-of-capture' }).toEqual(a);
        else expect(s.record, a.callId).toEqual(a);
      }
      expect(stored.filter((s) => s.record.linkedBy === 'x-cid').length).toBe(
        truth.calls.filter((t) => t.linkedBy === 'x-cid').length,
      );
      // The KPIs by SQL over the table equal the in-memory counter's over the same calls.
      expect(await storedCallsSummary(store.client, database)).toEqual(kpis);
      const destinations = await storedDestinations(store.client, database, {});
      const failover = truth.calls.find((t) => t.outcome === 'proxiedFailover')!;
      const failed = failover.hopPath[1]!.branches[0]!;
      expect(destinations.find((d) => d.destination === failed.to)).toMatchObject({ failovers: 1 });
      await writer.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('legs linked by the heuristic meet across chunks, whichever hop of the first leg the next leaves', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'callscope-calls-heuristic-'));
    try {
      // The pipeline tests' capture: among its 800 calls, legs the heuristic links (same dialled user,
      // leaving an address an earlier leg went to within 2 s), one of them a proxied first leg.
      const source = await generatedSource(dir, { outcomes: EVERY_OUTCOME });
      const analysis = new CallAnalysis({ keepRecords: true });
      for (const e of source.events) analysis.sink.add(e);
      await analysis.finish(Math.trunc(Date.parse(source.summary.lastPacketTime!)));
      const heuristic = analysis.records.filter((r) => r.linkedBy === 'heuristic');
      expect(heuristic.length).toBeGreaterThan(0);
      const database = 'calls_heuristic';
      const writer = await fresh(database);
      await writer.write(source.events);
      await writer.flush();
      // 50 Call-IDs per chunk: most linked legs start in different chunks.
      await new CallsJob({ client: store.client, database, writer, chunkCalls: 50 }).cycle();
      const stored = byId((await storedCalls(database)).map((s) => s.record));
      expect(stored.size).toBe(analysis.records.length);
      for (const a of analysis.records) {
        const s = stored.get(a.callId)!;
        expect(a.closedBy === 'end-of-capture' ? { ...s, closedBy: 'end-of-capture' } : s, a.callId).toEqual(
          a,
        );
      }
      await writer.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
