/**
 * HEP interoperability with sngrep (Debian package `sngrep` 1.6, built with EEP/HEP support), a HEP
 * implementation we did not write, in both directions:
 *   1. sngrep reads a capture and sends every SIP message as HEP3 (`-H`) to our HepListener;
 *   2. our HepSender sends the SIP events of a capture to sngrep listening for HEP (`-L`), which
 *      saves what it accepted to a pcap (`-O`).
 * Each time the SIP messages must be those analyzeFile finds in the capture. Everything stays on
 * 127.0.0.1. sngrep's own quirks (docs/HEP.md) are handled explicitly below, each with its reason.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import type { AnalyzeSummary } from '../analyze/summary.js';
import type { CaptureEvent } from '../core/event.js';
import { HepListener } from '../ingest/hep/listener.js';
import { HepSender } from '../ingest/hep/sender.js';
import { needs, removeTmpDir, SHARED_CAPTURES, SHARED_PCAPS, SNGREP_HEP, tmpDir } from './oracle/tools.js';

const sngrepHep = needs(SNGREP_HEP);

const sample = new URL('../capture/sample/calls.pcap', import.meta.url).pathname;
const captures = [
  sample,
  ...(SHARED_PCAPS
    ? readdirSync(SHARED_PCAPS)
        .filter((f) => /\.pcap(ng)?$/.test(f))
        .sort()
        .map((f) => join(SHARED_PCAPS!, f))
    : []),
];

const dir = tmpDir('callscope-hep-interop-');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  removeTmpDir(dir);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sngrep(args: string[]): ChildProcess {
  // -F: no /etc/sngreprc, so the machine's settings cannot change what is tested.
  const child = spawn('sngrep', ['-F', ...args], { stdio: 'ignore' });
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => child.once('exit', () => done()));
}

/** What local capture finds: SIP events and the summary, once per file. */
const localCache = new Map<string, Promise<{ events: CaptureEvent[]; summary: AnalyzeSummary }>>();
function local(file: string) {
  let p = localCache.get(file);
  if (!p) {
    p = (async () => {
      const events: CaptureEvent[] = [];
      const summary = await analyzeFile(file, { onEvent: (e) => e.protoType === 1 && events.push(e) });
      return { events, summary };
    })();
    localCache.set(file, p);
  }
  return p;
}

/** Messages per request method / response status, as `analyze --json` counts them. */
function countSip(events: CaptureEvent[]): {
  requests: Record<string, number>;
  responses: Record<string, number>;
} {
  const requests: Record<string, number> = {};
  const responses: Record<string, number> = {};
  for (const e of events) {
    expect(e.sip, `no sip on ${e.source?.interface} frame ${e.source?.packetNumber}`).toBeDefined();
    if (e.sip!.isRequest) requests[e.sip!.method!] = (requests[e.sip!.method!] ?? 0) + 1;
    else responses[String(e.sip!.statusCode)] = (responses[String(e.sip!.statusCode)] ?? 0) + 1;
  }
  return { requests, responses };
}

function stripNuls(b: Buffer): Buffer {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}

const tuple = (e: CaptureEvent) => [e.srcIp, e.srcPort, e.dstIp, e.dstPort, e.ipProtocol].join(' ');

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Waits until some process has a UDP socket bound on 127.0.0.1:port (Linux /proc/net/udp). */
async function waitUdpBound(port: number, ms: number): Promise<boolean> {
  const needle = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const until = Date.now() + ms; Date.now() < until; await sleep(50)) {
    if (readFileSync('/proc/net/udp', 'utf8').includes(needle)) return true;
  }
  return false;
}

/** The /proc/net/udp line of the socket bound to 127.0.0.1:port, split into fields (Linux). */
function udpSocketLine(port: number): string[] | null {
  const needle = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const line = readFileSync('/proc/net/udp', 'utf8')
    .split('\n')
    .find((l) => l.includes(needle));
  return line ? line.trim().split(/\s+/) : null;
}

/** Datagrams the kernel dropped on that socket (the last column). */
function udpDrops(port: number): number {
  return Number(udpSocketLine(port)?.at(-1) ?? 0);
}

/** Bytes waiting in that socket's receive queue (the hex "tx_queue:rx_queue" column). */
function udpRxQueue(port: number): number {
  return Number.parseInt(udpSocketLine(port)?.[4]?.split(':')[1] ?? '0', 16);
}

/** sngrep's `eep.send.id`; sngrep 1.6 puts it into the u32 chunk 12 as a byte-swapped u16. */
const SNGREP_SEND_ID = 0x1234;

sngrepHep.describe('sngrep -H → our HepListener', () => {
  const conf = join(dir, 'send.conf');
  writeFileSync(conf, `set eep.send.pass interop-key\nset eep.send.id ${SNGREP_SEND_ID}\n`);

  for (const file of captures) {
    it(`${basename(file)}: the SIP sngrep sends is the SIP analyzeFile finds`, async () => {
      const { events: want, summary } = await local(file);
      const got: CaptureEvent[] = [];
      // The listener demands the key sngrep was configured with: sngrep's chunk 14 must match ours.
      const listener = await HepListener.start({
        host: '127.0.0.1',
        port: 0,
        tcp: false,
        authKey: 'interop-key',
        onEvents: (batch) => {
          got.push(...batch);
        },
      });
      try {
        const child = sngrep(['-f', conf, '-N', '-q', '-I', file, '-H', `udp:127.0.0.1:${listener.udpPort}`]);
        await exited(child);
        expect(child.exitCode).toBe(0);
        // sngrep has sent everything when it exits; let the last datagrams through the loop.
        for (let last = -1; listener.stats.frames !== last; await sleep(150)) last = listener.stats.frames;
        expect(udpDrops(listener.udpPort), 'datagrams the kernel dropped at our listener').toBe(0);
      } finally {
        await listener.close();
      }
      expect(listener.stats).toMatchObject({
        malformed: 0,
        authFailures: 0,
        dropped: 0,
        sipUnparsed: 0,
        deliveryErrors: 0,
      });

      // Quirk: sngrep 1.6 does not decode SIP over SCTP, so it sends none of it.
      expect(got.filter((e) => e.ipProtocol === 132)).toEqual([]);
      const expected = want.filter((e) => e.transport !== 'sctp');

      // Quirk: sngrep sends the SIP of a retransmitted TCP segment again. A byte-identical message on
      // the same TCP connection is such a copy (TCP itself never needs SIP to resend); only captures
      // with TCP retransmissions may have them.
      const seen = new Set<string>();
      const unique = got.filter((e) => {
        const key = `${tuple(e)} ${e.payload.toString('latin1')}`;
        if (e.ipProtocol !== 6) return true;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
      if (unique.length < got.length) expect(summary.decode.tcpStreams.retransmissions).toBeGreaterThan(0);

      // The check the brief asks for: messages per method and status.
      expect(countSip(unique)).toEqual(countSip(expected));

      // And one to one: same addresses, ports, IP protocol and SIP bytes, time within 1 ms (for a
      // message in several fragments or segments sngrep stamps the first, we stamp the last).
      const pool = [...expected];
      let padded = 0;
      for (const e of unique) {
        const payload = stripNuls(e.payload);
        // Quirk: sngrep appends 16 NUL bytes to a message it reassembled from IPv6 fragments.
        if (payload.length !== e.payload.length) padded++;
        const i = pool.findIndex((w) => {
          const dt = w.timestampNs - e.timestampNs;
          return (
            tuple(w) === tuple(e) &&
            (dt < 0n ? -dt : dt) <= 1_000_000n &&
            stripNuls(w.payload).equals(payload)
          );
        });
        expect(
          i,
          `${tuple(e)} ${e.sip?.callId} ${e.sip?.cseq?.seq} at ${e.timestampNs}`,
        ).toBeGreaterThanOrEqual(0);
        pool.splice(i, 1);
        // Quirk: the u16 id is written big-endian into the first half of the u32 chunk 12.
        expect(e.captureId).toBe(SNGREP_SEND_ID * 0x10000);
        expect(e.source?.interface).toMatch(/^hep:udp:127\.0\.0\.1:\d+$/);
        expect(e.correlationId).toBe(e.sip?.callId);
      }
      expect(pool.length).toBe(0);
      if (padded > 0) expect(summary.decode.fragments.reassembled).toBeGreaterThan(0);
      console.log(
        `${basename(file)}: ${got.length} HEP frames from sngrep, ${expected.length} SIP messages matched` +
          (want.length > expected.length
            ? `, ${want.length - expected.length} over SCTP not sent by sngrep`
            : '') +
          (got.length > unique.length ? `, ${got.length - unique.length} TCP retransmission copies` : '') +
          (padded ? `, ${padded} NUL-padded IPv6 reassemblies` : ''),
      );
    });
  }
});

/** Shared captures that carry no SIP (sip-counts.test.ts checks that we find none): nothing to send. */
const NO_SIP = new Set([
  'g711a.pcap',
  'dtmf_2833_1.pcap',
  'dtmf_2833_pound.pcap',
  'ipv6_udp_fragmented.pcap',
]);

sngrepHep.describe('our HepSender → sngrep -L', () => {
  const conf = join(dir, 'listen.conf');
  writeFileSync(conf, 'set eep.listen.pass interop-key\n');

  for (const file of captures.filter((f) => !NO_SIP.has(basename(f)))) {
    it(`${basename(file)}: sngrep accepts our frames and saves the same SIP messages`, async () => {
      const { events } = await local(file);
      expect(events.length, 'SIP messages analyzeFile finds in the capture').toBeGreaterThan(0);
      const port = await freeUdpPort();
      const out = join(dir, `${basename(file)}.from-hep.pcap`);
      // -L alone opens no capture device: only what arrives as HEP is saved.
      const child = sngrep(['-f', conf, '-N', '-q', '-L', `udp:127.0.0.1:${port}`, '-O', out]);
      try {
        expect(await waitUdpBound(port, 5000)).toBe(true);
        const good = new HepSender({ target: `udp:127.0.0.1:${port}`, authKey: 'interop-key' });
        // The same events with the wrong key: sngrep must drop all of them, or the counts double.
        const wrong = new HepSender({ target: `udp:127.0.0.1:${port}`, authKey: 'not-the-key' });
        // Paced by sngrep's own receive queue: sngrep reads slower than we send, and its socket has
        // the default 208 KiB buffer, which a burst of 500 datagrams overflows (UDP has no flow
        // control; the kernel counts the drops, checked below).
        for (const [i, e] of events.entries()) {
          expect(wrong.send(e)).toBe(true);
          expect(good.send(e)).toBe(true);
          if (i % 16 === 15) {
            await Promise.all([good.flush(), wrong.flush()]);
            for (const until = Date.now() + 5000; udpRxQueue(port) > 32_768 && Date.now() < until; ) {
              await sleep(2);
            }
          }
        }
        await Promise.all([good.close(), wrong.close()]);
        expect(good.stats).toEqual({
          sent: events.length,
          dropped: 0,
          errors: 0,
          unsendable: 0,
          failed: 0,
          reconnects: 0,
        });
        // sngrep writes each message to the pcap as it stores it; wait until all are there.
        for (const until = Date.now() + 10_000; Date.now() < until; await sleep(100)) {
          if (!existsSync(out) || statSync(out).size <= 24) continue;
          if ((await analyzeFile(out)).sip.messages >= events.length) break;
        }
        await sleep(200); // anything beyond the expected count would show now
        expect(udpDrops(port), 'datagrams the kernel dropped at sngrep').toBe(0);
      } finally {
        child.kill('SIGTERM');
        await exited(child);
      }
      const back: CaptureEvent[] = [];
      const summary = await analyzeFile(out, { onEvent: (e) => e.protoType === 1 && back.push(e) });
      expect(summary.malformedPackets).toBe(0);
      expect(countSip(back)).toEqual(countSip(events));
      // Byte for byte, with ports and microsecond time. Quirks: sngrep writes every message as UDP
      // over IPv4 (an IPv6 one gets a made-up 0.0.0.0 header), so transport and v6 addresses are lost.
      const key = (e: CaptureEvent) =>
        `${e.timestampNs / 1000n} ${e.srcPort} ${e.dstPort} ${e.ipFamily === 4 ? `${e.srcIp} ${e.dstIp}` : ''} ${e.payload.toString('latin1')}`;
      const fromSngrep = back.map((e) =>
        key(e.srcIp === '0.0.0.0' && e.dstIp === '0.0.0.0' ? { ...e, ipFamily: 6 } : e),
      );
      expect(fromSngrep.sort()).toEqual(events.map(key).sort());
      console.log(
        `${basename(file)}: ${events.length} SIP messages sent as HEP, ${back.length} saved by sngrep`,
      );
    });
  }
});

needs(SHARED_CAPTURES).markMissing();
