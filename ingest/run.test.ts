/**
 * storeCapture from a live source when the store loses a batch: the writer is replaced at once (not
 * only when the next event comes), the lost events are counted as dropped, events never tried go to
 * the new writer, and the health and run rows are still stored. The source is scripted (it replays
 * the sample's events and facts as a live capture would); the store is a fake client whose inserts
 * fail on demand, and the migration is stubbed.
 */
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { type CaptureFacts, FileSource } from '../capture/sources.js';
import { drive } from '../core/drive.js';
import type { CaptureEvent } from '../core/event.js';
import type { HealthRecord } from '../core/health.js';
import { CallbackSink } from '../core/sink.js';
import type { EventSource, SourceOutput } from '../core/source.js';
import type { RowInserter } from './inserter.js';
import { nativeBlockShape } from './native-block.js';
import type { Store } from './store/client.js';

vi.mock('./schema/migrate.js', () => ({ migrate: vi.fn(async () => ({ eventIds: 'xxh64' })) }));

const { storeCapture } = await import('./run.js');

/** A live source that runs a script against its output, then reports the sample's facts. */
function scripted(script: (output: SourceOutput) => Promise<void>): EventSource<CaptureFacts> {
  return {
    name: 'fake0',
    pace: 'live',
    redelivers: false,
    run: async (output) => {
      await script(output);
      return facts;
    },
  };
}

const SAMPLE = fileURLToPath(new URL('../capture/sample/calls.pcap', import.meta.url));
let facts: CaptureFacts;
let sample: CaptureEvent[];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Insert {
  table: string;
  rows: number;
  ok: boolean;
}

/** A store whose event inserts fail while `failing` is true (a permanent, non-retryable error). */
function fakeStore(): { store: Store; inserts: Insert[]; failing: { on: boolean } } {
  const inserts: Insert[] = [];
  const failing = { on: false };
  const inserter: RowInserter = {
    name: 'fake',
    insert: async (request) => {
      const { rows } = nativeBlockShape(Buffer.concat(request.data));
      const table = request.table.split('.').pop() ?? '';
      const fail = failing.on && ['sip_messages', 'media_reports', 'rtcp_reports'].includes(table);
      inserts.push({ table, rows, ok: !fail });
      if (fail) throw new Error('refused by the test');
    },
  };
  const store = {
    client: {} as ClickHouseClient,
    mode: 'server',
    displayUrl: 'fake',
    embedded: null,
    inserter,
    close: async () => {},
  } as Store;
  return { store, inserts, failing };
}

function health(): HealthRecord {
  return {
    timeNs: BigInt(Date.now()) * 1_000_000n,
    interface: 'fake0',
    received: 0,
    droppedKernel: 0,
    droppedInterface: 0,
    receivedDelta: 0,
    droppedKernelDelta: 0,
    droppedInterfaceDelta: 0,
    packets: 0,
    bytes: 0,
    packetsDelta: 0,
    bytesDelta: 0,
    droppedOverload: 0,
    droppedOverloadDelta: 0,
    reopenings: 0,
    linkDowns: 0,
    callbackErrors: 0,
    capturing: true,
    final: false,
    droppedEvents: 0,
    captureId: 0,
    nodeName: '',
  };
}

const stored = (inserts: Insert[], table: string) =>
  inserts.filter((i) => i.ok && i.table === table).reduce((n, i) => n + i.rows, 0);

beforeAll(async () => {
  sample = [];
  const result = await drive(new FileSource(SAMPLE), [new CallbackSink((e) => sample.push(e))]);
  facts = result.source;
  expect(sample.length).toBeGreaterThan(10);
});

describe('storeCapture from a live source with a lost batch', () => {
  it('replaces the failed writer without a further event, counts the loss and stores health and run', async () => {
    const { store, inserts, failing } = fakeStore();
    const record = health();
    const source = scripted(async (output) => {
      failing.on = true;
      await output.events(sample);
      await sleep(1500); // the writer's batch deadline (1 s) passes: the batch is sent and lost
      failing.on = false;
      expect(inserts.some((i) => !i.ok)).toBe(true);
      output.health(record);
    });
    const result = await storeCapture(source, { store, database: 'db', ttlDays: 0 });
    const expectedLost = result.writer.events - result.writer.skipped;
    expect(expectedLost).toBeGreaterThan(0);
    expect(result.droppedEvents).toBe(expectedLost);
    expect(result.store.lost).toEqual({ 'store failed': expectedLost });
    expect(result.healthRows).toBe(1);
    // The driver stamps the health record with what was lost by then.
    expect(record.droppedEvents).toBe(expectedLost);
    expect(stored(inserts, 'capture_health')).toBe(1);
    expect(stored(inserts, 'capture_runs')).toBe(1);
    expect(result.writer.failures).toBe(1);
  }, 20_000);

  it('gives events after a failure to a new writer and counts only the lost batch', async () => {
    const { store, inserts, failing } = fakeStore();
    const half = Math.floor(sample.length / 2);
    const source = scripted(async (output) => {
      failing.on = true;
      await output.events(sample.slice(0, half));
      await sleep(1500);
      failing.on = false;
      await output.events(sample.slice(half));
      await sleep(10);
    });
    const result = await storeCapture(source, { store, database: 'db', ttlDays: 0 });
    const tail = sample.slice(half);
    const sipTail = tail.filter((e) => e.sip !== undefined).length;
    const mediaTail = tail.length - sipTail;
    expect(stored(inserts, 'sip_messages')).toBe(sipTail);
    expect(stored(inserts, 'media_reports')).toBe(mediaTail);
    expect(result.writer.events).toBe(sample.length);
    // Every event of the first half that makes a row was lost; none of the second half.
    expect(result.droppedEvents).toBe(result.writer.events - result.writer.skipped - sipTail - mediaTail);
    expect(result.droppedEvents).toBeGreaterThan(0);
    expect(stored(inserts, 'capture_runs')).toBe(1);
  }, 20_000);
});
