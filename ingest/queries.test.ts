/**
 * The example queries of docs/STORE.md, run against the sample capture in the store and checked
 * against the sample's ground truth (capture/sample/calls.truth.json).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import type { AnalyzeSummary } from '../analyze/summary.js';
import type { CaptureEvent } from '../core/event.js';
import { migrate } from './schema/migrate.js';
import { openTestStore, type TestStore } from './schema/test-store.js';
import { StoreWriter } from './writer.js';

const SAMPLE = fileURLToPath(new URL('../capture/sample/calls.pcap', import.meta.url));
const TRUTH = fileURLToPath(new URL('../capture/sample/calls.truth.json', import.meta.url));
const DOC = fileURLToPath(new URL('../docs/STORE.md', import.meta.url));

interface TruthCall {
  callId: string;
  outcome: string;
  finalStatus: number | null;
  start: number;
  messages: number;
}

/** The ```sql blocks of the doc's "Example queries" section, in order. */
function exampleQueries(): string[] {
  const doc = readFileSync(DOC, 'utf8');
  const section = doc.slice(doc.indexOf('## Example queries'));
  return [...section.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

let store: TestStore;
let analyzed: AnalyzeSummary;
const truth = JSON.parse(readFileSync(TRUTH, 'utf8')) as { calls: TruthCall[]; firstPacket: number };
const [ladder, failedPerMinute, badStreams] = exampleQueries();
/** The sample's time span, with a margin (Date parameters travel as Unix times: no time zone involved). */
const window = {
  from: new Date((truth.firstPacket - 60) * 1000),
  to: new Date((truth.firstPacket + 3600) * 1000),
};

async function run(query: string, params: Record<string, unknown>): Promise<Record<string, unknown>[]> {
  const result = await store.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json();
}

beforeAll(async () => {
  store = await openTestStore();
  await migrate(store.client, { database: 'callscope', ttlDays: 0 });
  const events: CaptureEvent[] = [];
  analyzed = await analyzeFile(SAMPLE, { onEvent: (e) => events.push(e) });
  // One stream the sample lacks: 5 % loss (the sample's streams lose about 0.5 %).
  const final = events.find((e) => e.media?.kind === 'final')!;
  const lossy = { ...final.media!, ssrc: 4242, lost: 25, lossPercent: 5 };
  events.push({ ...final, media: lossy, payload: Buffer.from('lossy stream') });
  analyzed.rtp.streams.push({ ...analyzed.rtp.streams[0]!, ssrc: 4242, lossPercent: 5 });
  const writer = new StoreWriter(store.client, { database: 'callscope' });
  await writer.write(events);
  await writer.close();
});

afterAll(async () => {
  await store?.close();
});

describe('docs/STORE.md example queries', () => {
  it('has the three queries', () => {
    expect([ladder, failedPerMinute, badStreams].every((q) => q?.includes('callscope.'))).toBe(true);
  });

  it('draws the ladder of each call with all its messages in time order', async () => {
    for (const call of truth.calls) {
      const rows = await run(ladder!, { call_id: call.callId, ...window });
      expect(rows.length, call.callId).toBe(call.messages);
      expect(rows[0]!.message).toBe('INVITE');
      const times = rows.map((r) => String(r.time));
      expect(times).toEqual([...times].sort());
    }
  });

  it('counts failed calls per minute once per attempt', async () => {
    const expected = new Map<string, { attempts: number; failed: number }>();
    for (const call of truth.calls) {
      const minute = new Date(Math.floor(call.start / 60) * 60_000)
        .toISOString()
        .slice(0, 16)
        .replace('T', ' ');
      const m = expected.get(minute) ?? { attempts: 0, failed: 0 };
      m.attempts++;
      if (call.outcome === 'unavailable' || call.outcome === 'noAnswer') m.failed++;
      expected.set(minute, m);
    }
    const rows = await run(failedPerMinute!, window);
    expect(
      rows.map((r) => ({
        minute: String(r.minute).slice(0, 16),
        attempts: Number(r.attempts),
        failed: Number(r.failed),
      })),
    ).toEqual([...expected].map(([minute, m]) => ({ minute, ...m })));
    expect(rows.reduce((n, r) => n + Number(r.failed), 0)).toBe(8); // 4 × 503, 4 unanswered
  });

  it('lists the streams with jitter above 30 ms or loss above 1 %', async () => {
    const rows = await run(badStreams!, window);
    const expected = analyzed.rtp.streams.filter((s) => s.maxJitterMs > 30 || s.lossPercent > 1);
    expect(expected.map((s) => s.ssrc)).toContain(4242);
    expect(rows.map((r) => Number(r.ssrc)).sort()).toEqual(expected.map((s) => s.ssrc).sort());
  });
});
