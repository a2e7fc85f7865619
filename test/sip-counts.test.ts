import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import { PacketDecoder } from '../capture/decoder.js';
import { readCaptureFile } from '../capture/file/reader.js';
import { LINKTYPE_ETHERNET, type PacketRecord } from '../capture/file/record.js';
import { generateCapture } from '../capture/generator/generate.js';
import type { SipCounts } from '../core/sip-counts.js';
import { runSippCalls } from './oracle/sipp.js';
import { needs, ROOT, SHARED_CAPTURES, SHARED_PCAPS, tmpDir } from './oracle/tools.js';
import { tsharkSipStat } from './oracle/tshark.js';

const tshark = needs('tshark');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function ours(summary: Awaited<ReturnType<typeof analyzeFile>>): SipCounts {
  const { messages, retransmissions, requests, responses } = summary.sip;
  return { messages, retransmissions, requests, responses };
}

const sharedFiles = SHARED_PCAPS ? readdirSync(SHARED_PCAPS).filter((f) => /\.pcap(ng)?$/.test(f)) : [];

const shared = needs(SHARED_CAPTURES);

describe('shared captures against tshark sip,stat', () => {
  needs(SHARED_CAPTURES, 'tshark').it.each(sharedFiles)(
    '%s: same counts per method, per status and resent',
    async (name) => {
      const file = join(SHARED_PCAPS!, name);
      const [summary, reference] = await Promise.all([analyzeFile(file), tsharkSipStat(file)]);
      expect(ours(summary)).toEqual(reference);
    },
  );

  shared.it(
    'finds SIP through IP-in-IP, IPv6 fragments, TCP with retransmissions, WebSocket and SCTP',
    async () => {
      const at = (n: string) => analyzeFile(join(SHARED_PCAPS!, n));
      const ipip = await at('ipip.pcap');
      expect(ipip.decode.tunnelled.ipip).toBeGreaterThan(0);
      expect(ipip.sip.messages).toBe(4);
      const frag = await at('ipv6frag.pcap');
      expect(frag.decode.fragments.reassembled).toBeGreaterThan(0);
      expect(frag.sip.messages).toBeGreaterThan(0);
      const retrans = await at('sip_ipv4_tcp_retrans.pcap');
      expect(retrans.sip.transports.tcp).toBe(4);
      expect(retrans.sip.messages).toBe(8);
      expect(retrans.decode.tcpStreams.retransmissions).toBeGreaterThan(0);
      const ws = await at('sip_tcp_websocket.pcap');
      expect(ws.sip.transports.ws).toBeGreaterThan(0);
      const sctp = await at('sip_sctp.pcap');
      expect(sctp.sip.transports.sctp).toBe(4);
    },
  );

  shared.it(
    'reassembles the datagram of ipv6_udp_fragmented.pcap (5,379 bytes of UDP data, as tshark) and finds no SIP',
    async () => {
      const lengths: number[] = [];
      const decoder = new PacketDecoder({
        udp: (p) => lengths.push(p.payloadEnd - p.payloadOffset),
        tcp: () => {},
        sctp: () => {},
      });
      await readCaptureFile(join(SHARED_PCAPS!, 'ipv6_udp_fragmented.pcap'), (r: PacketRecord) =>
        decoder.decode(r),
      );
      expect(lengths).toContain(5379);
      expect(decoder.fragments.stats.reassembled).toBe(1);
      const summary = await analyzeFile(join(SHARED_PCAPS!, 'ipv6_udp_fragmented.pcap'));
      expect(summary.sip.messages).toBe(0);
    },
  );

  shared.it('finds no SIP in the captures that carry none (no false positives)', async () => {
    for (const name of [
      'g711a.pcap',
      'dtmf_2833_1.pcap',
      'dtmf_2833_pound.pcap',
      'ipv6_udp_fragmented.pcap',
    ]) {
      const s = await analyzeFile(join(SHARED_PCAPS!, name));
      expect(s.sip.messages, name).toBe(0);
      expect(s.malformedPackets, name).toBe(0);
    }
  });
});

tshark.describe('generator captures against tshark and their ground truth', () => {
  it('every outcome, with a VLAN tag and retransmitted INVITEs', async () => {
    const dir = tmpDir('callscope-gen-');
    dirs.push(dir);
    const output = join(dir, 'mix.pcap');
    const truth = generateCapture({
      output,
      seed: 7,
      calls: 60,
      callsPerSecond: 10,
      callDurationSec: 1,
      vlan: 42,
      outcomes: { answered: 4, busy: 1, cancelled: 1, unavailable: 1, noAnswer: 1, challenged: 1 },
    });
    const [summary, reference] = await Promise.all([analyzeFile(output), tsharkSipStat(output)]);
    expect(ours(summary)).toEqual(reference);
    expect(ours(summary)).toEqual(truth.sip);
    expect(summary.sip.callIds).toBe(truth.calls.length);
    expect(summary.packets).toBe(truth.packets);
    expect(summary.malformedPackets).toBe(0);
    // Every VM that called or was called is a SIP endpoint, and every message has a sender and a receiver.
    const ips = new Set(summary.sip.endpoints.map((e) => e.ip));
    for (const call of truth.calls)
      expect(ips.has(truth.vms.find((v) => v.name === call.callerVm)!.ip)).toBe(true);
    const sent = summary.sip.endpoints.reduce((n, e) => n + e.sent, 0);
    const received = summary.sip.endpoints.reduce((n, e) => n + e.received, 0);
    expect([sent, received]).toEqual([summary.sip.messages, summary.sip.messages]);
  });
});

needs('tshark', 'sipp', 'tcpdump', ROOT).describe('SIPp calls against tshark and SIPp counters', () => {
  it('UDP calls with RTP: counts equal tshark; answered calls equal SIPp successes', async () => {
    const dir = tmpDir('callscope-sipp-');
    dirs.push(dir);
    const run = await runSippCalls({
      dir,
      calls: 30,
      rate: 30,
      uacScenario: 'rtp',
      uasScenario: 'answer-rtp-echo',
    });
    const [summary, reference] = await Promise.all([analyzeFile(run.pcap), tsharkSipStat(run.pcap)]);
    expect(ours(summary)).toEqual(reference);
    expect(run.uac.successfulCalls).toBe(30);
    // One attempt per SIPp call; any INVITE beyond 30 is a retransmission tshark also counts.
    expect(summary.sip.requests.INVITE).toBeGreaterThanOrEqual(30);
    expect(summary.sip.callIds).toBe(30);
  });

  it('TCP on a non-standard port (tshark told with -d, we find it by content)', async () => {
    const dir = tmpDir('callscope-sipp-tcp-');
    dirs.push(dir);
    const run = await runSippCalls({ dir, calls: 20, rate: 20, transport: 'tcp', port: 6060 });
    const [summary, reference] = await Promise.all([
      analyzeFile(run.pcap),
      tsharkSipStat(run.pcap, { decodeAs: ['tcp.port==6060,sip'] }),
    ]);
    expect(ours(summary)).toEqual(reference);
    expect(summary.sip.transports.tcp).toBe(run.uac.successfulCalls * 6);
  });

  it('failed calls on UDP port 5080: 486 and 503 counted as tshark counts them', async () => {
    const dir = tmpDir('callscope-sipp-fail-');
    dirs.push(dir);
    const run = await runSippCalls({ dir, calls: 20, rate: 20, port: 5080, uasScenario: 'random-fail' });
    const [summary, reference] = await Promise.all([
      analyzeFile(run.pcap),
      tsharkSipStat(run.pcap, { decodeAs: ['udp.port==5080,sip'] }),
    ]);
    expect(ours(summary)).toEqual(reference);
    const failures = Object.entries(summary.sip.responses)
      .filter(([code]) => Number(code) >= 400)
      .reduce((n, [, v]) => n + v, 0);
    expect(failures).toBeGreaterThanOrEqual(run.uac.failedCalls);
  });
});

it('a capture of only Ethernet frames without IP decodes to zero SIP', async () => {
  const decoder = new PacketDecoder({ udp: () => {}, tcp: () => {}, sctp: () => {} });
  const frame = Buffer.alloc(60);
  frame.writeUInt16BE(0x0806, 12); // ARP
  decoder.decode({
    data: frame,
    offset: 0,
    caplen: 60,
    origLen: 60,
    tsSec: 0,
    tsNsec: 0,
    linkType: LINKTYPE_ETHERNET,
    interfaceId: 0,
    number: 1,
    fileOffset: 0,
  });
  expect(decoder.stats.nonIp).toBe(1);
});
