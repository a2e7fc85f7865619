/**
 * Single-process mode against outside truth: `callscope run --pcap` then `callscope stats --json` give
 * the summary `callscope analyze --json` gives, with SIP counts equal to tshark's sip,stat — for the
 * sample, every shared capture and SIPp captures; plus split mode (`capture --kafka` → `ingest`) on the
 * Kafka-protocol mock cluster.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import { storeSummary } from '../analyze/store-summary.js';
import type { AnalyzeSummary } from '../analyze/summary.js';
import type { SipCounts } from '../core/sip-counts.js';
import { ingestFile } from '../ingest/run.js';
import { openStore, type Store } from '../ingest/store/client.js';
import { EmbeddedStore } from '../ingest/store/embedded.js';
import { type MockKafka, startMockKafka } from './oracle/kafka-mock.js';
import { runSippCalls } from './oracle/sipp.js';
import {
  KAFKA_MOCK,
  needs,
  REPO_ROOT,
  ROOT,
  removeTmpDir,
  SHARED_CAPTURES,
  SHARED_PCAPS,
  tmpDir,
} from './oracle/tools.js';
import { tsharkSipStat } from './oracle/tshark.js';

const tshark = needs('tshark');
const dir = tmpDir('callscope-store-run-');
const cli = join(REPO_ROOT, 'dist', 'bin', 'callscope.js');
const sample = join(REPO_ROOT, 'capture', 'sample', 'calls.pcap');
afterAll(() => removeTmpDir(dir));

function sipCounts(s: AnalyzeSummary): SipCounts {
  const { messages, retransmissions, requests, responses } = s.sip;
  return { messages, retransmissions, requests, responses };
}

function callscope(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Like callscope() but without blocking this process's event loop (needed when it serves a store). */
function callscopeAsync(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** What the store cannot know identically (wall-clock figures) is left out of the comparison. */
function comparable(s: AnalyzeSummary): Omit<AnalyzeSummary, 'elapsedMs' | 'packetsPerSecond'> {
  const { elapsedMs: _e, packetsPerSecond: _p, ...rest } = s;
  return rest;
}

describe('callscope run, then callscope stats (embedded store)', () => {
  tshark.it('the sample: stats --json equals analyze --json, and its SIP counts equal tshark', async () => {
    const data = join(dir, 'sample-data');
    const run = callscope(['run', '--pcap', sample, '--data-dir', data, '--json']);
    expect(run.status, run.stderr).toBe(0);
    const stored = JSON.parse(run.stdout);
    expect(stored.rows).toEqual({
      sip_messages: 268,
      media_reports: 48,
      rtcp_reports: 0,
      hep_logs: 0,
      failovers: 0,
    });
    const stats = callscope(['stats', '--json', '--data-dir', data]);
    expect(stats.status, stats.stderr).toBe(0);
    const fromStore = JSON.parse(stats.stdout) as AnalyzeSummary;
    const analyze = callscope(['analyze', sample, '--json']);
    const direct = JSON.parse(analyze.stdout) as AnalyzeSummary;
    expect(comparable(fromStore)).toEqual(comparable(direct));
    expect(sipCounts(fromStore)).toEqual(await tsharkSipStat(sample));
    // A second run of the same file is a second run: stats shows the latest, --run all both.
    expect(callscope(['run', '--pcap', sample, '--data-dir', data]).status).toBe(0);
    const latest = JSON.parse(callscope(['stats', '--json', '--data-dir', data]).stdout) as AnalyzeSummary;
    expect(latest.sip).toEqual(direct.sip);
  });

  it('server mode by URL: the same summary, and the password never reaches the logs', async () => {
    // Our embedded store stands in for a ClickHouse server: the CLI only sees a URL with credentials.
    const server = await EmbeddedStore.start({ dataDir: join(dir, 'server-data') });
    try {
      const url = server.url.replace('http://', 'http://callscope:s3cr3t-pw@');
      const run = await callscopeAsync([
        'run',
        '--pcap',
        sample,
        '--clickhouse',
        url,
        '--log-level',
        'debug',
        '--json',
      ]);
      expect(run.status, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout).store.mode).toBe('server');
      const env = {
        ...process.env,
        CALLSCOPE_CLICKHOUSE: server.url,
        CALLSCOPE_CLICKHOUSE_PASSWORD: 's3cr3t-pw',
      };
      const stats = await callscopeAsync(['stats', '--json', '--log-level', 'debug'], env);
      expect(stats.status, stats.stderr).toBe(0);
      expect(JSON.parse(stats.stdout).sip).toEqual((await analyzeFile(sample)).sip);
      for (const text of [run.stdout, run.stderr, stats.stdout, stats.stderr])
        expect(text).not.toContain('s3cr3t');
    } finally {
      await server.close();
    }
  });

  it('exits 2 for an unusable capture file and 64 without --pcap', () => {
    const data = join(dir, 'bad-data');
    expect(callscope(['run', '--pcap', join(dir, 'missing.pcap'), '--data-dir', data]).status).toBe(2);
    expect(callscope(['run', '--data-dir', data]).status).toBe(64);
  });
});

describe.skipIf(needs(SHARED_CAPTURES, 'tshark').markMissing())(
  'every shared capture through the store (one embedded store, one run each)',
  () => {
    let store: Store;
    beforeAll(async () => {
      store = await openStore({ dataDir: join(dir, 'shared-data') });
    });
    afterAll(async () => {
      await store?.close();
    });
    const files = SHARED_PCAPS ? readdirSync(SHARED_PCAPS).filter((f) => /\.pcap(ng)?$/.test(f)) : [];
    it.each(files)('%s', async (name) => {
      const file = join(SHARED_PCAPS!, name);
      const result = await ingestFile(file, { store, database: 'shared', ttlDays: 0 });
      const [summary, direct] = await Promise.all([
        storeSummary(store.client, { database: 'shared', runId: result.runId }),
        analyzeFile(file),
      ]);
      expect(comparable(summary)).toEqual(comparable(direct));
      expect(sipCounts(summary)).toEqual(await tsharkSipStat(file));
    });
  },
);

describe.skipIf(needs('tshark', 'sipp', 'tcpdump', ROOT).markMissing())(
  'SIPp captures through the store',
  () => {
    it('UDP calls with RTP and failed calls on a non-standard port', async () => {
      const store = await openStore({ dataDir: join(dir, 'sipp-data') });
      try {
        const runs = [
          {
            run: await runSippCalls({ dir, calls: 10, rate: 10, port: 5062 }),
            decodeAs: ['udp.port==5062,sip'],
          },
          {
            run: await runSippCalls({ dir, calls: 12, rate: 12, port: 5064, uasScenario: 'random-fail' }),
            decodeAs: ['udp.port==5064,sip'],
          },
        ];
        for (const { run, decodeAs } of runs) {
          const result = await ingestFile(run.pcap, { store, database: 'sipp', ttlDays: 0 });
          const summary = await storeSummary(store.client, { database: 'sipp', runId: result.runId });
          expect(sipCounts(summary)).toEqual(await tsharkSipStat(run.pcap, { decodeAs }));
          expect(summary.sip.callIds).toBe(run.uac.createdCalls);
        }
      } finally {
        await store.close();
      }
    });
  },
);

describe.skipIf(needs(KAFKA_MOCK).markMissing())(
  'split mode: capture --kafka → ingest, on the Kafka-protocol mock cluster',
  () => {
    let kafka: MockKafka;
    let ingest: ChildProcess | null = null;
    beforeAll(async () => {
      kafka = await startMockKafka({
        brokers: 3,
        topics: [
          { name: 'callscope.events', partitions: 3 },
          { name: 'callscope.events.dlq', partitions: 1 },
        ],
      });
    });
    afterAll(async () => {
      ingest?.kill('SIGKILL');
      await kafka?.stop();
    });

    it('the stored summary equals analyze (retransmissions re-marked on the ingest side)', async () => {
      const data = join(dir, 'split-data');
      const child = spawn(
        process.execPath,
        [cli, 'ingest', '--kafka', kafka.bootstrap, '--data-dir', data, '--json'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      ingest = child;
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      const ready = await new Promise<{ store: string }>((resolve, reject) => {
        child.stdout.once('data', (d) => resolve(JSON.parse(String(d).split('\n')[0])));
        child.once('exit', (code) => reject(new Error(`ingest exited ${code}: ${stderr}`)));
      });
      const capture = callscope([
        'capture',
        '--pcap',
        sample,
        '--kafka',
        kafka.bootstrap,
        '--spool-dir',
        join(dir, 'spool'),
        '--json',
      ]);
      expect(capture.status, capture.stderr).toBe(0);
      expect(JSON.parse(capture.stdout).kafka.sent).toBe(316);
      // The running ingest serves its embedded store: wait there until every row has arrived.
      const client = createClient({ url: ready.store });
      const deadline = Date.now() + 60_000;
      let rows = 0;
      while (Date.now() < deadline && rows < 316) {
        const rs = await client.query({
          query:
            'SELECT (SELECT count() FROM callscope.sip_messages FINAL) + (SELECT count() FROM callscope.media_reports FINAL) AS n',
          format: 'JSONEachRow',
        });
        rows = Number((await rs.json<{ n: number }>())[0].n);
        if (rows < 316) await new Promise((r) => setTimeout(r, 500));
      }
      await client.close();
      expect(rows).toBe(316);
      const direct = await analyzeFile(sample);
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      ingest = null;
      const stats = callscope(['stats', '--json', '--run', 'all', '--data-dir', data]);
      expect(stats.status, stats.stderr).toBe(0);
      const fromStore = JSON.parse(stats.stdout) as AnalyzeSummary;
      expect(fromStore.sip).toEqual(direct.sip);
      expect(fromStore.rtp.streams).toEqual(direct.rtp.streams);
    });
  },
);
