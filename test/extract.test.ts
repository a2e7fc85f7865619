/**
 * `callscope extract` against tshark: a call taken out of a capture has, in tshark's eyes, the same
 * RTP streams with the same figures as in the original (`-z rtp,streams`), and the same SIP messages
 * in the same order. On generated calls with loss and jitter (a B2BUA call with both legs, a proxy
 * failover, a plain call) and on every Call-ID of the shared captures.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CallAnalysis } from '../analyze/calls/analysis.js';
import { EVERY_OUTCOME, generateCapture } from '../capture/generator/generate.js';
import { FileSource } from '../capture/sources.js';
import type { CallRecord } from '../core/call.js';
import { drive } from '../core/drive.js';
import { runSippCalls } from './oracle/sipp.js';
import {
  needs,
  REPO_ROOT,
  ROOT,
  removeTmpDir,
  SHARED_CAPTURES,
  SHARED_PCAPS,
  tmpDir,
} from './oracle/tools.js';
import { tsharkSipMessages } from './oracle/tshark.js';
import { streamFigures, streamKey, type TsharkRtpStream, tsharkRtpStreams } from './oracle/tshark-rtp.js';

const cli = join(REPO_ROOT, 'dist/bin/callscope.js');
const dir = tmpDir('callscope-extract-');
afterAll(() => removeTmpDir(dir));

function extract(pcap: string, callId: string, out: string, legs = false) {
  const r = spawnSync(
    process.execPath,
    [cli, 'extract', '--pcap', pcap, '--call-id', callId, '-o', out, '--json', ...(legs ? ['--legs'] : [])],
    { encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as {
    packetsWritten: number;
    sipMessages: number;
    streams: number;
    reads: number;
  };
}

const byKey = (list: TsharkRtpStream[]) =>
  new Map(list.map((s) => [streamKey(s), streamFigures(s)] as const));

describe('extract against tshark on generated calls with loss and jitter', () => {
  const pcap = join(dir, 'calls.pcap');
  const records: CallRecord[] = [];
  const prepared = (async () => {
    generateCapture({
      output: pcap,
      seed: 9,
      vms: 6,
      calls: 80,
      callsPerSecond: 20,
      callDurationSec: 3,
      outcomes: EVERY_OUTCOME,
      rtp: { lossRate: 0.02, jitterMs: 4, reorderRate: 0.01 },
    });
    const analysis = new CallAnalysis({ keepRecords: true });
    await drive(new FileSource(pcap), [analysis.sink]);
    await analysis.finish();
    records.push(...analysis.records);
    return byKey(await tsharkRtpStreams(pcap));
  })();

  needs('tshark').it(
    'a B2BUA call with both legs, a proxy failover and a plain call: the same streams and figures, the same SIP in order',
    async () => {
      const original = await prepared;
      const originalSip = await tsharkSipMessages(pcap);
      const b2bua = records.find((r) => r.linkedBy !== null && r.outcome === 'answered')!;
      const failover = records.find(
        (r) => r.outcome === 'answered' && r.hops.some((h) => h.branches.length > 1),
      )!;
      const plain = records.find(
        (r) =>
          r.outcome === 'answered' &&
          r.linkedBy === null &&
          r.linkedCallIds.length === 0 &&
          r.hops.length === 1,
      )!;
      for (const [name, record, legs] of [
        ['b2bua', b2bua, true],
        ['failover', failover, false],
        ['plain', plain, false],
      ] as const) {
        expect(record, name).toBeDefined();
        const out = join(dir, `${name}.pcap`);
        const done = extract(pcap, legs ? record.edgeCallId : record.callId, out, legs);
        const streams = byKey(await tsharkRtpStreams(out));
        const ids = new Set(
          legs ? [record.edgeCallId, ...record.linkedCallIds, record.callId] : [record.callId],
        );
        expect(streams.size, name).toBe(done.streams);
        expect(streams.size, name).toBeGreaterThanOrEqual(legs ? 4 : 2);
        for (const [key, value] of streams) expect(value, `${name} ${key}`).toEqual(original.get(key));
        const back = (await tsharkSipMessages(out)).filter(([id]) => ids.has(id));
        expect(back, name).toEqual(originalSip.filter(([id]) => ids.has(id)));
        expect(back.length, name).toBe(done.sipMessages);
        // A leg alone over UDP with SDP-bound media takes one read; with --legs (which for a call
        // without legs asks for the same packets) two: both write the same file, byte for byte.
        expect(done.reads, name).toBe(legs ? 2 : 1);
        if (!legs) {
          const twice = join(dir, `${name}-two-reads.pcap`);
          expect(extract(pcap, record.callId, twice, true).reads).toBe(2);
          expect(readFileSync(twice).equals(readFileSync(out)), name).toBe(true);
        }
      }
    },
    180_000,
  );
});

const sharedFiles = SHARED_PCAPS ? readdirSync(SHARED_PCAPS).filter((f) => /\.pcap(ng)?$/.test(f)) : [];

describe('extract on the shared captures', () => {
  needs(SHARED_CAPTURES, 'tshark').it.each(sharedFiles)(
    '%s: each Call-ID extracted has its SIP in order, and the RTP streams tshark sees with the same figures',
    async (name) => {
      const file = join(SHARED_PCAPS!, name);
      const original = await tsharkSipMessages(file);
      const originalStreams = byKey(await tsharkRtpStreams(file));
      for (const callId of new Set(original.map(([id]) => id))) {
        const out = join(dir, `${name}-${callId.replace(/[^\w.-]/g, '_').slice(0, 40)}.pcap`);
        extract(file, callId, out);
        const back = (await tsharkSipMessages(out)).filter(([id]) => id === callId);
        expect(back, `${name} ${callId}`).toEqual(original.filter(([id]) => id === callId));
        const streams = byKey(await tsharkRtpStreams(out));
        for (const [key, value] of streams)
          expect(value, `${name} ${callId} ${key}`).toEqual(originalStreams.get(key));
        // A capture of one call: every stream tshark finds in it is that call's.
        if (new Set(original.map(([id]) => id)).size === 1)
          expect(streams.size, name).toBe(originalStreams.size);
      }
    },
    120_000,
  );
});

needs('tshark', 'sipp', 'tcpdump', ROOT).describe('extract and export of a SIPp call with RTP', () => {
  it("SIPp's call: extract and the spool's export both give tshark the streams and figures of the capture, and SIPp's SIP", async () => {
    // A port of its own: test files run side by side.
    const run = await runSippCalls({
      dir,
      calls: 1,
      rate: 1,
      port: 5094,
      uacScenario: 'rtp',
      uasScenario: 'answer-rtp-echo',
    });
    expect(run.uac.successfulCalls).toBe(1);
    const decodeAs = ['udp.port==5094,sip'];
    const original = byKey(await tsharkRtpStreams(run.pcap, { decodeAs }));
    expect(original.size).toBe(2);
    const callId = [...new Set((await tsharkSipMessages(run.pcap, { decodeAs })).map(([id]) => id))][0]!;
    const out = join(dir, 'sipp-extract.pcap');
    extract(run.pcap, callId, out);
    expect(byKey(await tsharkRtpStreams(out, { decodeAs }))).toEqual(original);
    expect(await tsharkSipMessages(out, { decodeAs })).toEqual(
      await tsharkSipMessages(run.pcap, { decodeAs }),
    );

    const store = join(dir, 'sipp-store');
    const spool = join(dir, 'sipp-spool');
    const stored = spawnSync(
      process.execPath,
      [cli, 'run', '--pcap', run.pcap, '--data-dir', store, '--save-rtp', spool],
      {
        encoding: 'utf8',
      },
    );
    expect(stored.status, stored.stderr).toBe(0);
    const exported = join(dir, 'sipp-export.pcap');
    const r = spawnSync(
      process.execPath,
      [cli, 'export', callId, '--data-dir', store, '--rtp-dir', spool, '-o', exported],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(byKey(await tsharkRtpStreams(exported, { decodeAs }))).toEqual(original);
    expect(await tsharkSipMessages(exported, { decodeAs })).toEqual(
      await tsharkSipMessages(run.pcap, { decodeAs }),
    );
  }, 120_000);
});
