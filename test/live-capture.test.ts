/**
 * Live capture (libpcap through the optional `pcap` package) over a veth pair whose other end is in a
 * network namespace of its own (test/bench/veth.ts): our generator's SIP+RTP capture replayed by
 * tcpreplay on one end, captured on the other. Checks the live summary against analyzeFile and tshark
 * on the replayed file, kernel drops, BPF filters, an interface going down and up and being deleted
 * and recreated, the CLI stopped by SIGINT (store) and SIGTERM (HEP) flushing everything, and the
 * errors for a missing interface and a missing package. Needs root, network namespaces, ip, tcpreplay,
 * tshark and the pcap package (test/oracle/tools.ts: skipped without them, failing under CI).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { analyzeFile, analyzeInterface } from '../analyze/analyze.js';
import type { AnalyzeSummary } from '../analyze/summary.js';
import { generateCapture } from '../capture/generator/generate.js';
import { LiveCaptureError } from '../capture/live/binding.js';
import type { LiveCapture } from '../capture/live/source.js';
import type { InterfaceSourceOptions as AnalyzeInterfaceOptions } from '../capture/sources.js';
import type { SipCounts } from '../core/sip-counts.js';
import { openStore } from '../ingest/store/client.js';
import { VethPair } from './bench/veth.js';
import { built, NETNS, needs, PCAP_PACKAGE, REPO_ROOT, ROOT, removeTmpDir, tmpDir } from './oracle/tools.js';
import {
  foldToTsharkStatusCodes,
  tsharkCount,
  tsharkKnownStatusCodes,
  tsharkSipStat,
} from './oracle/tshark.js';

// CALLSCOPE_LIVE_TEST_CLI: another build of the CLI (e.g. while dist/ is someone else's).
const cli = process.env.CALLSCOPE_LIVE_TEST_CLI ?? join(REPO_ROOT, 'dist', 'bin', 'callscope.js');
const dir = tmpDir('callscope-live-');
const file = join(dir, 'calls.pcap');
let veth: VethPair;
let fileSummary: AnalyzeSummary;
/** Events analyzeFile makes of the file (SIP messages and media reports). */
let fileEvents = 0;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function sipCounts(s: AnalyzeSummary): SipCounts {
  const { messages, retransmissions, requests, responses } = s.sip;
  return { messages, retransmissions, requests, responses };
}

/**
 * Captures on the veth's capture end while `during` runs (it gets the LiveCapture), then stops after
 * libpcap's buffer timeout has passed and returns the summary.
 */
async function capture(
  during: (capture: LiveCapture) => Promise<void>,
  options: AnalyzeInterfaceOptions = {},
): Promise<AnalyzeSummary> {
  const stop = new AbortController();
  let started: (c: LiveCapture) => void = () => {};
  const ready = new Promise<LiveCapture>((resolve) => {
    started = resolve;
  });
  const summary = analyzeInterface(veth.capture, {
    ...options,
    capture: {
      linkCheckMs: 100,
      healthIntervalMs: 0,
      reopenDelayMs: { initial: 100, max: 400 },
      ...options.capture,
    },
    signal: stop.signal,
    onStart: started,
  });
  const failed = summary.then(() => null);
  const c = await Promise.race([ready, failed]);
  if (c !== null) {
    try {
      await during(c);
      await sleep(150);
    } finally {
      stop.abort();
    }
  }
  return summary;
}

needs(ROOT, NETNS, 'ip', 'tcpreplay', 'tshark', PCAP_PACKAGE).describe('live capture over veth', () => {
  beforeAll(async () => {
    veth = new VethPair('lct');
    // 24 calls of 2 s with RTP, every outcome mixed in: a few thousand packets.
    generateCapture({ output: file, seed: 7, calls: 24, callsPerSecond: 12, callDurationSec: 2, vms: 4 });
    fileSummary = await analyzeFile(file, {
      onEvent: () => {
        fileEvents++;
      },
    });
  });

  afterAll(() => {
    veth?.destroy();
    removeTmpDir(dir);
  });

  it('counts what analyzeFile and tshark count on the replayed file, with no kernel drops', async () => {
    let sent = 0;
    const live = await capture(async () => {
      sent = (await veth.replay(file, ['--pps', '10000'])).sent;
    });
    expect(sent).toBe(fileSummary.packets);
    expect(live.format).toBe('live');
    expect(live.packets).toBe(fileSummary.packets);
    expect(live.capture).toMatchObject({
      interface: veth.capture,
      linkType: 1,
      received: fileSummary.packets,
      droppedKernel: 0,
      droppedOverload: 0,
      reopenings: 0,
    });
    expect(sipCounts(live)).toEqual(sipCounts(fileSummary));
    expect(live.sip.callIds).toBe(fileSummary.sip.callIds);
    expect(live.rtp.streams.length).toBe(fileSummary.rtp.streams.length);
    expect(live.rtp.stats.rtpPackets).toBe(fileSummary.rtp.stats.rtpPackets);
    const known = await tsharkKnownStatusCodes();
    expect(foldToTsharkStatusCodes(sipCounts(live), known)).toEqual(await tsharkSipStat(file));
  });

  it('applies a BPF filter in the kernel', async () => {
    const live = await capture(
      async () => {
        await veth.replay(file, ['--pps', '10000']);
      },
      { capture: { filter: 'udp port 5060' } },
    );
    const expected = await tsharkCount(file, 'udp.port == 5060');
    expect(live.packets).toBe(expected);
    expect(live.capture?.received).toBe(expected);
    expect(live.packets).toBeLessThan(fileSummary.packets);
    expect(sipCounts(live)).toEqual(sipCounts(fileSummary));
    expect(live.rtp.streams).toHaveLength(0);
  });

  it('keeps capturing when the interface goes down and up', async () => {
    const live = await capture(async (c) => {
      await veth.replay(file, ['--pps', '10000']);
      await sleep(200);
      veth.setCaptureEnd('down');
      await sleep(400);
      veth.setCaptureEnd('up');
      await sleep(400);
      expect(c.capturing).toBe(true);
      await veth.replay(file, ['--pps', '10000']);
    });
    expect(live.packets).toBe(2 * fileSummary.packets);
    expect(live.capture?.linkDowns).toBe(1);
    // The socket stays bound through down/up: nothing to reopen (reported, as 0).
    expect(live.capture?.reopenings).toBe(0);
    expect(live.capture?.droppedKernel).toBe(0);
  });

  it('reopens when the interface is deleted and recreated', async () => {
    const live = await capture(async (c) => {
      await veth.replay(file, ['--pps', '10000']);
      await sleep(200);
      veth.unlink();
      await sleep(500);
      expect(c.capturing).toBe(false);
      veth.link();
      for (let i = 0; i < 50 && c.reopenings === 0; i++) await sleep(100);
      expect(c.reopenings).toBe(1);
      await veth.replay(file, ['--pps', '10000']);
    });
    expect(live.packets).toBe(2 * fileSummary.packets);
    expect(live.capture?.reopenings).toBe(1);
    expect(live.sip.messages).toBe(2 * fileSummary.sip.messages);
  });

  it('refuses a missing interface with a clear error', async () => {
    await expect(analyzeInterface('csl-nosuch0')).rejects.toThrow(LiveCaptureError);
    await expect(analyzeInterface('csl-nosuch0')).rejects.toThrow(/cannot capture on csl-nosuch0/);
  });

  needs(built(cli)).describe('the CLI (dist)', () => {
    function start(args: string[]): {
      child: ChildProcess;
      done: Promise<{ code: number | null; stdout: string; stderr: string }>;
      ready: Promise<void>;
    } {
      const child = spawn(process.execPath, [cli, ...args, '--log-level', 'info', '--log-format', 'json'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let onReady: () => void = () => {};
      const ready = new Promise<void>((resolve) => {
        onReady = resolve;
      });
      child.stdout?.on('data', (d) => {
        stdout += d;
      });
      child.stderr?.on('data', (d) => {
        stderr += d;
        if (stderr.includes('"live capture started"')) onReady();
      });
      const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
        child.on('close', (code) => {
          onReady();
          resolve({ code, stdout, stderr });
        }),
      );
      return { child, done, ready };
    }

    /**
     * Runs the CLI on the capture end while the file is replayed, stops it with `signal`, and checks
     * what every live command prints: the file's packets and SIP messages, nothing dropped.
     */
    async function replayThenStop(args: string[], signal: NodeJS.Signals) {
      const run = start(args);
      await run.ready;
      await veth.replay(file, ['--pps', '10000']);
      await sleep(300);
      run.child.kill(signal);
      const { code, stdout, stderr } = await run.done;
      expect(code, stderr).toBe(0);
      const out = JSON.parse(stdout);
      expect(out.packets).toBe(fileSummary.packets);
      expect(out.sipMessages).toBe(fileSummary.sip.messages);
      expect(out.droppedEvents).toBe(0);
      return out;
    }

    it('run --interface: SIGINT stops, flushes every row to the store, exit 0', async () => {
      const dataDir = join(dir, 'store');
      const out = await replayThenStop(
        ['run', '--interface', veth.capture, '--data-dir', dataDir, '--json', '--health-interval', '1'],
        'SIGINT',
      );
      expect(out.events).toBe(fileEvents);
      expect(out.rows.sip_messages).toBe(fileSummary.sip.messages);
      expect(out.rows.media_reports).toBe(out.events - out.rows.sip_messages);
      const store = await openStore({ dataDir });
      try {
        const count = async (sql: string) =>
          Number(
            (await (await store.client.query({ query: sql, format: 'JSONEachRow' })).json<{ n: string }>())[0]
              ?.n,
          );
        expect(
          await count(`SELECT count() AS n FROM callscope.sip_messages WHERE run_id = '${out.runId}'`),
        ).toBe(fileSummary.sip.messages);
        expect(
          await count(`SELECT count() AS n FROM callscope.media_reports WHERE run_id = '${out.runId}'`),
        ).toBe(out.rows.media_reports);
        expect(
          await count(
            `SELECT count() AS n FROM callscope.capture_health WHERE run_id = '${out.runId}' AND final`,
          ),
        ).toBe(1);
        expect(
          await count(
            `SELECT max(received) AS n FROM callscope.capture_health WHERE run_id = '${out.runId}' AND interface = '${veth.capture}'`,
          ),
        ).toBe(fileSummary.packets);
        expect(
          await count(
            `SELECT count() AS n FROM callscope.capture_runs WHERE run_id = '${out.runId}' AND format = 'live'`,
          ),
        ).toBe(1);
      } finally {
        await store.close();
      }
    });

    it('capture --interface --hep-to: SIGTERM stops and sends every event, exit 0', async () => {
      const socket = createSocket('udp4');
      let datagrams = 0;
      socket.on('message', () => {
        datagrams++;
      });
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      const port = socket.address().port;
      try {
        const out = await replayThenStop(
          ['capture', '--interface', veth.capture, '--hep-to', `udp:127.0.0.1:${port}`, '--json'],
          'SIGTERM',
        );
        expect(out.hep.dropped).toBe(0);
        expect(out.hep.sent).toBe(fileEvents);
        await sleep(200);
        expect(datagrams).toBe(out.hep.sent);
      } finally {
        socket.close();
      }
    });

    it('exits 2 for a missing interface and 1 without the pcap package, saying what to do', () => {
      const missing = spawnSync(
        process.execPath,
        [cli, 'run', '--interface', 'csl-nosuch0', '--data-dir', join(dir, 'x')],
        {
          encoding: 'utf8',
        },
      );
      expect(missing.status).toBe(2);
      expect(missing.stderr).toContain('cannot capture on csl-nosuch0: no such interface');
      const noPcap = spawnSync(
        process.execPath,
        [cli, 'capture', '--interface', veth.capture, '--hep-to', 'udp:127.0.0.1:9'],
        {
          encoding: 'utf8',
          env: { ...process.env, CALLSCOPE_NO_PCAP: '1' },
        },
      );
      expect(noPcap.status).toBe(1);
      expect(noPcap.stderr).toContain(
        "live capture needs the optional 'pcap' package: apt-get install libpcap-dev python3 make g++ && npm install",
      );
      const both = spawnSync(process.execPath, [cli, 'run', '--interface', 'x', '--pcap', 'y'], {
        encoding: 'utf8',
      });
      expect(both.status).toBe(64);
    });
  });
});
