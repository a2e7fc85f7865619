/**
 * Capture times that span many days (a capture file of a year, a HEP agent with a broken clock,
 * forged timestamps) must not cost any event: ClickHouse refuses one INSERT into more than 100
 * partitions, and the event tables are partitioned by day.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PcapWriter } from '../capture/file/pcap-writer.js';
import { LINKTYPE_RAW } from '../capture/file/record.js';
import { drive } from '../core/drive.js';
import type { CaptureEvent } from '../core/event.js';
import { HepSender } from '../ingest/hep/sender.js';
import { HepSource } from '../ingest/hep/source.js';
import { migrate } from '../ingest/schema/migrate.js';
import { openTestStore, type TestStore } from '../ingest/schema/test-store.js';
import { StoreSink } from '../ingest/store-sink.js';
import { ipv4Udp } from './fixtures/packets.js';
import { REPO_ROOT, removeTmpDir, tmpDir } from './oracle/tools.js';

const DAY_S = 86_400;
const START_S = Date.UTC(2025, 0, 1) / 1000;

function invite(callId: string): Buffer {
  return Buffer.from(
    `INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-${callId}\r\n` +
      `From: <sip:alice@10.0.0.1>;tag=${callId}\r\nTo: <sip:bob@10.0.0.2>\r\nCall-ID: ${callId}\r\n` +
      'CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n',
  );
}

let dir: string;
let store: TestStore;

beforeAll(async () => {
  dir = tmpDir('callscope-hostile-time-');
  store = await openTestStore();
});

afterAll(async () => {
  await store?.close();
  removeTmpDir(dir);
});

async function count(database: string): Promise<number> {
  const rs = await store.client.query({
    query: `SELECT count() AS n FROM ${database}.sip_messages FINAL`,
    format: 'JSONEachRow',
  });
  return Number((await rs.json<{ n: string }>())[0]?.n);
}

describe('capture times across many days', () => {
  it('run --pcap of one INVITE a day for 300 days: exit 0, 300 rows', () => {
    const file = join(dir, 'year.pcap');
    const w = new PcapWriter(file, { linkType: LINKTYPE_RAW });
    for (let d = 0; d < 300; d++) w.write(START_S + d * DAY_S, 0, ipv4Udp(invite(`day-${d}`)));
    w.close();
    const data = join(dir, 'store-year');
    const cli = join(REPO_ROOT, 'dist/bin/callscope.js');
    const run = spawnSync(process.execPath, [cli, 'run', '--pcap', file, '--data-dir', data, '--json'], {
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.rows.sip_messages).toBe(300);
    expect(out.lost).toEqual({});
    const stats = spawnSync(process.execPath, [cli, 'stats', '--data-dir', data, '--json'], {
      encoding: 'utf8',
    });
    expect(stats.status, stats.stderr).toBe(0);
    expect(JSON.parse(stats.stdout).sip.requests.INVITE).toBe(300);
  });

  it('HEP with 300 forged days among 300 valid frames: all 600 stored, the listener never held back', async () => {
    const database = 'hostile_hep';
    await migrate(store.client, { database, ttlDays: 0 });
    const sink = new StoreSink(store.client, { database });
    const stop = new AbortController();
    let port = 0;
    let started: () => void = () => {};
    const ready = new Promise<void>((resolve) => {
      started = resolve;
    });
    const source = new HepSource({
      host: '127.0.0.1',
      port: 0,
      onStart: (listener) => {
        port = listener.tcpPort;
        started();
      },
    });
    const driven = drive(source, [sink], { signal: stop.signal });
    await ready;
    const sender = new HepSender({ target: `tcp:127.0.0.1:${port}` });
    const now = BigInt(Date.now()) * 1_000_000n;
    const event = (callId: string, timestampNs: bigint): CaptureEvent => ({
      timestampNs,
      ipFamily: 4,
      ipProtocol: 17,
      transport: 'udp',
      srcIp: '10.0.0.1',
      dstIp: '10.0.0.2',
      srcPort: 5060,
      dstPort: 5060,
      vlan: null,
      protoType: 1,
      captureId: 0,
      nodeName: 'agent',
      correlationId: callId,
      payload: invite(callId),
      retransmission: false,
    });
    for (let i = 0; i < 300; i++) {
      sender.send(event(`valid-${i}`, now + BigInt(i) * 1_000_000n));
      sender.send(event(`forged-${i}`, BigInt(START_S + i * DAY_S) * 1_000_000_000n));
    }
    await sender.flush();
    await sender.close();
    for (let t = Date.now(); sink.stats().accepted < 600 && Date.now() - t < 20_000; )
      await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    const result = await driven;
    await sink.close();
    expect(result.source.events).toBe(600);
    expect(result.source.deliveryErrors).toBe(0);
    const stats = sink.stats();
    expect(stats.lost).toEqual({});
    expect(stats.writer).toMatchObject({ failures: 0, retries: 0, delivered: 600 });
    expect(stats.writer.implausibleTimes).toBe(0);
    expect(await count(database)).toBe(600);
  });
});
