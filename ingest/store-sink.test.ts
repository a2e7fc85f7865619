/**
 * StoreSink's failure policy under the driver: a store that refuses inserts for good makes the writer
 * fail; the sink replaces it and counts the loss, and a redelivering source (Kafka) learns of it for
 * every chunk whose events the failed writer held, even when chunks of several partitions are written
 * and flushed at the same time, so that it offers them again and nothing is lost.
 */
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient, InsertParams } from '@clickhouse/client';
import { beforeAll, describe, expect, it } from 'vitest';
import { FileSource } from '../capture/sources.js';
import { drive } from '../core/drive.js';
import type { CaptureEvent } from '../core/event.js';
import { CallbackSink, SinkLossError } from '../core/sink.js';
import type { EventSource } from '../core/source.js';
import { eventRows } from './rows.js';
import { StoreSink } from './store-sink.js';

const SAMPLE = fileURLToPath(new URL('../capture/sample/calls.pcap', import.meta.url));
let sample: CaptureEvent[];

beforeAll(async () => {
  sample = [];
  await drive(new FileSource(SAMPLE), [new CallbackSink((e) => sample.push(e))]);
});

/** A client whose inserts fail (permanently) while `failing` is on; it keeps the event ids it stored. */
function fakeClient() {
  const stored = new Set<string>();
  const failing = { on: false, refused: 0 };
  const client = {
    insert: async (params: InsertParams) => {
      if (failing.on) {
        failing.refused++;
        throw new Error('refused by the test');
      }
      for await (const chunk of params.values as AsyncIterable<Buffer>)
        for (const line of chunk.toString('latin1').split('\n')) if (line) stored.add(line.split('\t')[0]);
    },
  } as unknown as ClickHouseClient;
  return { client, stored, failing };
}

describe('StoreSink under a redelivering source', () => {
  it('fails the delivery of every chunk the failed writer held; the chunks offered again are all stored', async () => {
    const { client, stored, failing } = fakeClient();
    const sink = new StoreSink(client, { database: 'db', retry: { attempts: 1 }, coalesceMs: 5 });
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
