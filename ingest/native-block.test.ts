/**
 * The writer's Native blocks against the engine's own reading of the same rows as TabSeparated (the
 * text encoding callscope wrote before, checked byte for byte in rows.test.ts): every table's rows,
 * hostile values and figures out of range included, must come back identical from both.
 */
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import type { AlertTransition } from '../core/alert.js';
import type { CaptureEvent } from '../core/event.js';
import { alertRow } from './alert-rows.js';
import { EventIds } from './event-id.js';
import { NativeBlock, nativeBlockShape } from './native-block.js';
import type { RowWriter } from './row-writer.js';
import { type EventRowSinks, encodeEvent, vmInventoryRow } from './rows.js';
import { migrate } from './schema/migrate.js';
import {
  ALERTS,
  columnNames,
  EVENT_TABLE_SPECS,
  type EventTableName,
  FAILOVERS,
  insertColumns,
  type TableSpec,
  VM_INVENTORY,
} from './schema/tables.js';
import { openTestStore, type TestStore } from './schema/test-store.js';
import { TsvBuffer } from './tsv.js';

const SAMPLE = fileURLToPath(new URL('../capture/sample/calls.pcap', import.meta.url));

let store: TestStore;
const events: CaptureEvent[] = [];

beforeAll(async () => {
  store = await openTestStore();
  for (const database of ['native_tsv', 'native_bin']) await migrate(store.client, { database, ttlDays: 0 });
  await analyzeFile(SAMPLE, { onEvent: (e) => events.push(e) });
  const sip = events.find((e) => e.sip !== undefined)!;
  const report = events.find((e) => e.media?.kind === 'final')!;
  // Figures out of every column's range, times outside DateTime64, NULL-able values that are not.
  events.push(
    {
      ...sip,
      timestampNs: 99_999_999_999_999_999_999n,
      srcPort: 70_000,
      dstPort: -3,
      vlan: 5000,
      captureId: Number.NaN,
      nodeName: "n'\t\\\n\0ü€😀",
      retransmission: true,
    },
    { ...sip, timestampNs: -5n, vlan: 0, srcIp: '::ffff:10.0.0.1' },
    {
      ...report,
      media: {
        ...report.media!,
        packets: -1,
        expected: 2 ** 60,
        lost: -(2 ** 40),
        lossPercent: Number.NaN,
        meanJitterMs: Number.POSITIVE_INFINITY,
        maxJitterMs: Number.NEGATIVE_INFINITY,
        mos: null,
        payloadTypes: [0, 8, 300, -1],
        payloadNames: ["PCMU'", '\\x', 'ü'],
        lossBursts: [1, 2 ** 33],
        delayOver: { "50'": 1.5, '\t': Number.NaN },
        rtcp: {
          senderReports: 3,
          receiverReports: 2 ** 40,
          fractionLost: 0.25,
          cumulativeLost: -7,
          jitterMs: null,
          roundTripMs: 12.5,
          xrRFactor: null,
          xrMosLq: null,
          xrMosCq: null,
          cname: 'a\tb😀',
        },
      },
    },
  );
}, 120_000);

afterAll(async () => {
  await store?.close();
});

/**
 * The rows of `table` in `database`, as the engine prints them, sorted. FINAL: the altered copies of
 * sample events share their event ids, and an insert collapses them when they share a block.
 */
async function rowsOf(database: string, spec: TableSpec): Promise<string[]> {
  const result = await store.client.query({
    query: `SELECT ${columnNames(spec).join(', ')} FROM ${database}.${spec.name} FINAL`,
    format: 'TabSeparated',
  });
  return (await result.text()).split('\n').filter(Boolean).sort();
}

async function insertText(spec: TableSpec, rows: Buffer): Promise<void> {
  await store.client.insert({
    table: `native_tsv.${spec.name}`,
    columns: columnNames(spec) as [string, ...string[]],
    values: Readable.from([rows], { objectMode: false }),
    format: 'TabSeparated',
  });
}

async function insertNative(spec: TableSpec, parts: readonly Buffer[]): Promise<void> {
  await store.inserter.insert({
    table: `native_bin.${spec.name}`,
    columns: columnNames(spec),
    data: parts,
    settings: { insert_deduplicate: 0 },
  });
}

/** Writes the same rows both ways, then compares what the engine holds. */
async function sameBothWays(spec: TableSpec, write: (out: RowWriter) => void): Promise<number> {
  const text = new TsvBuffer();
  const block = new NativeBlock(insertColumns(spec));
  write(text);
  write(block);
  expect(block.rows).toBe(text.rows);
  await insertText(spec, text.take());
  await insertNative(spec, block.sliceParts(0, block.rows));
  const [a, b] = [await rowsOf('native_tsv', spec), await rowsOf('native_bin', spec)];
  expect(b).toEqual(a);
  return a.length;
}

describe('NativeBlock', () => {
  it('gives the engine the very rows it reads from TabSeparated, in every event table', async () => {
    const ids = new EventIds();
    const text: EventRowSinks<TsvBuffer> = {
      sip_messages: new TsvBuffer(),
      media_reports: new TsvBuffer(),
      rtcp_reports: new TsvBuffer(),
      hep_logs: new TsvBuffer(),
      failovers: new TsvBuffer(),
    };
    const native = Object.fromEntries(
      Object.entries(EVENT_TABLE_SPECS).map(([t, spec]) => [t, new NativeBlock(insertColumns(spec))]),
    ) as EventRowSinks;
    for (const e of events) {
      encodeEvent(e, text, { runId: "run'\t1", ids });
      encodeEvent(e, native, { runId: "run'\t1", ids });
    }
    for (const [table, spec] of Object.entries(EVENT_TABLE_SPECS) as Array<[EventTableName, TableSpec]>) {
      if (text[table].rows === 0) continue;
      expect(native[table].rows, table).toBe(text[table].rows);
      await insertText(spec, text[table].take());
      // Cut in three, as the writer cuts a refused batch: the slices must add up to the whole.
      const block = native[table];
      const n = block.rows;
      const cuts = [0, Math.floor(n / 3), Math.floor((2 * n) / 3), n];
      for (let i = 0; i < 3; i++) {
        if (cuts[i + 1]! > cuts[i]!) {
          const parts = block.sliceParts(cuts[i]!, cuts[i + 1]!);
          expect(nativeBlockShape(Buffer.concat(parts)).rows).toBe(cuts[i + 1]! - cuts[i]!);
          await insertNative(spec, parts);
        }
      }
      const [a, b] = [await rowsOf('native_tsv', spec), await rowsOf('native_bin', spec)];
      expect(b.length, table).toBeGreaterThan(0);
      expect(b, table).toEqual(a);
    }
    expect(native.sip_messages.rows).toBeGreaterThan(100);
    expect(native.media_reports.rows).toBeGreaterThan(10);
    expect(native.rtcp_reports.rows).toBeGreaterThan(0);
  }, 120_000);

  it('writes maps, string arrays and clamped times as the engine reads them from text', async () => {
    const transition = (n: number): AlertTransition => ({
      rule: `rule'${n}`,
      fingerprint: `f${n}`,
      from: 'pending',
      to: 'firing',
      at: 1_767_225_600_000 + n,
      activeSince: n === 1 ? -5 : 1e20,
      value: n === 1 ? null : 0.5,
      attempts: n,
      threshold: Number.NaN,
      labels: n === 1 ? {} : { alertname: 'x', "vm'": 'a\tb\\', '😀': 'ü' },
      annotations: { summary: 'x'.repeat(300), empty: '' },
      examples: n === 1 ? [] : ["call'1", 'call\n2'],
    });
    expect(
      await sameBothWays(ALERTS, (out) => {
        for (const n of [1, 2, 3]) alertRow(transition(n), "node'/run", out);
      }),
    ).toBe(3);
    expect(
      await sameBothWays(VM_INVENTORY, (out) =>
        vmInventoryRow(
          {
            vmId: '100',
            vmName: "pbx'1",
            hypervisor: 'hv1',
            bridge: 'vmbr0',
            port: 'tap100i0',
            interface: 'tap100i0',
            mac: 'AA:BB:CC:00:11:22',
            ips: ['10.0.0.1', 'fe80::1', "x'\t"],
            firstSeenMs: 0,
            lastSeenMs: 1_767_225_600_123,
          },
          out,
        ),
      ),
    ).toBe(1);
  });

  it('refuses a row that does not fit its table rather than sending a corrupt block', () => {
    const block = new NativeBlock(insertColumns(FAILOVERS));
    expect(() => block.endRow()).toThrow(/a row of 0 fields/);
    const other = new NativeBlock([{ name: 'a', type: 'UInt16' }]);
    expect(() => other.null()).toThrow(/NULL into the non-nullable/);
    expect(() => new NativeBlock([{ name: 'a', type: 'Decimal(10, 2)' }])).toThrow(/unsupported type/);
  });
});
