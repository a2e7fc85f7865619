/**
 * `callscope export` against tshark: every Call-ID of the shared captures (UDP, TCP with
 * retransmissions, IPv6, fragmented IPv6, SCTP, WebSocket, IP-in-IP) stored, exported as a pcap, and
 * read back by tshark: its SIP message count equals the call's stored messages, and its frame order
 * (CSeq by CSeq) equals the ladder's order and the original capture's.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { generateCapture } from '../capture/generator/generate.js';
import { needs, REPO_ROOT, removeTmpDir, SHARED_CAPTURES, SHARED_PCAPS, tmpDir } from './oracle/tools.js';
import { tsharkSipMessages, tsharkSipStat } from './oracle/tshark.js';
import { streamFigures, streamKey, tsharkRtpStreams } from './oracle/tshark-rtp.js';

const cli = join(REPO_ROOT, 'dist/bin/callscope.js');
const dir = tmpDir('callscope-export-');
const data = join(dir, 'store');
afterAll(() => removeTmpDir(dir));

const sharedFiles = SHARED_PCAPS ? readdirSync(SHARED_PCAPS).filter((f) => /\.pcap(ng)?$/.test(f)) : [];
const gate = needs(SHARED_CAPTURES, 'tshark');

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

beforeAll(() => {
  if (SHARED_PCAPS === null) return;
  for (const name of sharedFiles) {
    const r = run(['run', '--pcap', join(SHARED_PCAPS, name), '--data-dir', data, '--json']);
    expect(r.status, `${name}: ${r.stderr}`).toBe(0);
  }
}, 300_000);

gate.it.each(sharedFiles)(
  '%s: each call exported from the store reads back in tshark as its stored messages, in order',
  async (name) => {
    const original = await tsharkSipMessages(join(SHARED_PCAPS!, name));
    for (const callId of new Set(original.map(([id]) => id))) {
      const out = join(dir, `${name}-export.pcap`);
      const exported = run(['export', callId, '--data-dir', data, '-o', out, '--json']);
      expect(exported.status, exported.stderr).toBe(0);
      const ladder = JSON.parse(
        run(['ladder', callId, '--data-dir', data, '--leg-only', '--json']).stdout,
      ) as {
        messages: Array<{ cseq: string }>;
      };
      const stat = await tsharkSipStat(out);
      expect(stat.messages, `${name} ${callId}`).toBe(ladder.messages.length);
      const back = (await tsharkSipMessages(out)).filter(([id]) => id === callId).map(([, cseq]) => cseq);
      expect(back, `${name} ${callId}`).toEqual(ladder.messages.map((m) => m.cseq));
      expect(back, `${name} ${callId}`).toEqual(original.filter(([id]) => id === callId).map(([, c]) => c));

      const text = run(['export', callId, '--data-dir', data, '--text']);
      expect(text.status, text.stderr).toBe(0);
      expect(text.stdout.match(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6} \S+ -> \S+ [A-Z]+/gm)).toHaveLength(
        back.length,
      );
      const csv = join(dir, `${name}.csv`);
      expect(run(['export', callId, '--data-dir', data, '--csv', '-o', csv]).status).toBe(0);
      expect(readFileSync(csv, 'utf8').trimEnd().split('\r\n')).toHaveLength(back.length + 1);
    }
  },
  120_000,
);

gate.it('an unknown Call-ID exits 1 in one line; a pcap needs -o', () => {
  const unknown = run(['export', 'nobody@nowhere', '--data-dir', data, '-o', join(dir, 'x.pcap')]);
  expect(unknown.status).toBe(1);
  expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
  expect(run(['export', 'nobody@nowhere', '--data-dir', data]).status).toBe(64);
});

describe('export with the RTP spool (run --save-rtp)', () => {
  needs('tshark').it(
    "a call's export with --rtp-dir has its RTP streams with the original capture's figures; a small spool drops, counts, and the run stores everything",
    async () => {
      const pcap = join(dir, 'rtp-calls.pcap');
      generateCapture({
        output: pcap,
        seed: 12,
        vms: 4,
        calls: 30,
        callsPerSecond: 10,
        callDurationSec: 3,
        rtp: { lossRate: 0.02, jitterMs: 4, reorderRate: 0.01 },
      });
      const store = join(dir, 'rtp-store');
      const rtpDir = join(dir, 'rtp-spool');
      const stored = run(['run', '--pcap', pcap, '--data-dir', store, '--save-rtp', rtpDir, '--json']);
      expect(stored.status, stored.stderr).toBe(0);
      const report = JSON.parse(stored.stdout);
      expect(report.rtpSpool.packets).toBeGreaterThan(0);
      expect(Object.values(report.rtpSpool.dropped)).toEqual([0, 0, 0, 0]);
      const calls = JSON.parse(
        run(['calls', '--data-dir', store, '--json', '--limit', '0']).stdout,
      ) as Array<{
        callId: string;
        outcome: string;
        streams: unknown[];
      }>;
      const answered = calls.find((c) => c.outcome === 'answered' && c.streams.length >= 2)!;
      const out = join(dir, 'with-rtp.pcap');
      const exported = run([
        'export',
        answered.callId,
        '--data-dir',
        store,
        '--rtp-dir',
        rtpDir,
        '-o',
        out,
        '--json',
      ]);
      expect(exported.status, exported.stderr).toBe(0);
      expect(JSON.parse(exported.stdout).mediaPackets).toBeGreaterThan(0);
      const original = new Map((await tsharkRtpStreams(pcap)).map((s) => [streamKey(s), streamFigures(s)]));
      const back = await tsharkRtpStreams(out);
      expect(back.length).toBe(answered.streams.length);
      for (const s of back) expect(streamFigures(s), streamKey(s)).toEqual(original.get(streamKey(s)));

      // A spool far too small for the capture: drops counted by reason, the SIP all stored.
      const small = run([
        'run',
        '--pcap',
        pcap,
        '--data-dir',
        join(dir, 'rtp-store-small'),
        '--save-rtp',
        join(dir, 'rtp-spool-small'),
        '--save-rtp-max-mb',
        '0.05',
        '--json',
      ]);
      expect(small.status, small.stderr).toBe(0);
      const smallReport = JSON.parse(small.stdout);
      expect(smallReport.rtpSpool.dropped['disk-full']).toBeGreaterThan(0);
      expect(smallReport.sipMessages).toBe(report.sipMessages);
      expect(smallReport.rows).toEqual(report.rows);
      expect(small.stderr).toMatch(/rtp spool dropped packets/);
    },
    180_000,
  );
});
