/**
 * StoreSink's failure policy under the driver: a store that refuses inserts for good makes the writer
 * fail; the sink replaces it and counts the loss, and a redelivering source (Kafka) learns of it for
 * every chunk whose events the failed writer held, even when chunks of several partitions are written
 * and flushed at the same time, so that it offers them again and nothing is lost.
 */
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { beforeAll, describe, expect, it } from 'vitest';
import { FileSource } from '../capture/sources.js';
import { drive } from '../core/drive.js';
import type { CaptureEvent } from '../core/event.js';
import { CallbackSink, SinkLossError } from '../core/sink.js';
import type { EventSource } from '../core/source.js';
import type { RowInserter } from './inserter.js';
import { nativeBlockShape } from './native-block.js';
import { eventRows } from './rows.js';
import { StoreSink } from './store-sink.js';

const SAMPLE = fileURLToPath(new URL('../capture/sample/calls.pcap', import.meta.url));
let sample: CaptureEvent[];

beforeAll(async () => {
  sample = [];
  await drive(new FileSource(SAMPLE), [new CallbackSink((e) => sample.push(e))]);
});

/** A store whose inserts fail (permanently) while `failing` is on; it keeps the event ids it stored. */
function fakeClient() {
  const stored = new Set<string>();
  const failing = { on: false, refused: 0 };
  const inserter: RowInserter = {
    name: 'fake',
    insert: async (request) => {
      if (failing.on) {
        failing.refused++;
        throw new Error('refused by the test');
      }
      for (const id of firstColumnUInt64(Buffer.concat(request.data))) stored.add(id.toString());
    },
  };
  return { client: {} as ClickHouseClient, inserter, stored, failing };
}

/** The values of a Native block's first column, a UInt64 (event_id in every event table). */
function firstColumnUInt64(block: Buffer): bigint[] {
  const { columns, rows } = nativeBlockShape(block);
  expect(columns).toBeGreaterThan(0);
  let at = 0;
  const varUint = () => {
    let n = 0;
    for (let shift = 1; ; shift *= 128) {
      const b = block[at++]!;
      n += (b & 0x7f) * shift;
      if (b < 0x80) return n;
    }
  };
  varUint();
  varUint();
  const nameLength = varUint();
  at += nameLength;
  const type = block.subarray(at + 1, at + 1 + block[at]!).toString();
  expect(type).toBe('UInt64');
  at += 1 + block[at]!;
  return Array.from({ length: rows }, (_, i) => block.readBigUInt64LE(at + 8 * i));
}

describe('StoreSink under a redelivering source', () => {
  it('fails the delivery of every chunk the failed writer held; the chunks offered again are all stored', async () => {
    const { client, inserter, stored, failing } = fakeClient();
    const sink = new StoreSink(client, {
      database: 'db',
      retry: { attempts: 1 },
      coalesceMs: 5,
      inserter,
      eventIds: 'xxh64',
    });
    const half = Math.floor(sample.length / 2);
    const chunks = [sample.slice(0, half), sample.slice(half)];
    let failures = 0;
    const source: EventSource<number> = {
      name: 'two partitions',
      pace: 'paced',
      redelivers: true,
      run: async (output) => {
        failing.on = true;
        // Two partitions at once, each retried until its delivery is durable (as the consumer does).
        await Promise.all(
          chunks.map(async (chunk) => {
            for (;;) {
              try {
                await output.events(chunk);
                return;
              } catch (error) {
                expect(error).toBeInstanceOf(SinkLossError);
                failures++;
                failing.on = false;
              }
            }
          }),
        );
        return failures;
      },
    };
    const result = await drive(source, [sink]);
    await sink.close();
    expect(result.source).toBeGreaterThanOrEqual(2);
    expect(failing.refused).toBeGreaterThan(0);
    const expected = new Set(sample.map((e) => eventRows(e).eventId.toString()));
    const missing = [...expected].filter((id) => !stored.has(id));
    expect(missing).toEqual([]);
    const stats = sink.stats();
    expect(stats.writersReplaced).toBeGreaterThan(0);
    expect(stats.lost['store failed']).toBeGreaterThan(0);
    expect(stats.pending).toBe(0);
  });
});
