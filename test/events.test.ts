import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import { generateCapture } from '../capture/generator/generate.js';
import { type CaptureEvent, HEP_PROTO_SIP } from '../core/event.js';
import { decodeHep3, encodeHep3 } from '../core/hep3.js';
import { needs, removeTmpDir, SHARED_CAPTURES, SHARED_PCAPS, tmpDir } from './oracle/tools.js';
import { runTshark } from './oracle/tshark.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeTmpDir));

/** The SIP events of a capture (media reports, protocol type 34, are tested in capture/rtp/*.test.ts). */
async function eventsOf(file: string): Promise<CaptureEvent[]> {
  const events: CaptureEvent[] = [];
  await analyzeFile(file, {
    onEvent: (e) => {
      if (e.protoType === HEP_PROTO_SIP) events.push(e);
    },
    nodeName: 'mon-1',
    captureId: 2001,
  });
  return events;
}

/** One row per SIP message as tshark dissects it (UDP captures: one message per frame). */
async function tsharkRows(file: string) {
  const fields = [
    'frame.number',
    'frame.time_epoch',
    'ip.src',
    'ip.dst',
    'ipv6.src',
    'ipv6.dst',
    'udp.srcport',
    'udp.dstport',
    'vlan.id',
    'sip.Call-ID',
    'sip.CSeq.method',
  ];
  const run = await runTshark([
    '-n',
    '-r',
    file,
    '-Y',
    'sip',
    '-T',
    'fields',
    '-E',
    'separator=\t',
    ...fields.flatMap((f) => ['-e', f]),
  ]);
  return run.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const v = line.split('\t');
      return {
        packet: Number(v[0]),
        timeNs: BigInt(v[1].replace('.', '')),
        src: v[2] || v[4],
        dst: v[3] || v[5],
        srcPort: Number(v[6]),
        dstPort: Number(v[7]),
        vlan: v[8] ? Number(v[8].split(',')[0]) : null,
        callId: v[9],
        method: v[10],
      };
    });
}

function expectSameAsTshark(events: CaptureEvent[], rows: Awaited<ReturnType<typeof tsharkRows>>): void {
  expect(events).toHaveLength(rows.length);
  events.forEach((e, i) => {
    const r = rows[i];
    expect(e.source?.packetNumber).toBe(r.packet);
    expect(e.timestampNs).toBe(r.timeNs);
    expect([e.srcIp, e.dstIp, e.srcPort, e.dstPort]).toEqual([r.src, r.dst, r.srcPort, r.dstPort]);
    expect(e.vlan).toBe(r.vlan);
    expect(e.correlationId).toBe(r.callId);
    expect(e.sip?.cseq?.method).toBe(r.method);
  });
}

needs('tshark').describe('SIP events carry what tshark sees in each packet', () => {
  needs(SHARED_CAPTURES).it('IPv6 UDP capture', async () => {
    const file = join(SHARED_PCAPS!, 'sip_ipv6_udp.pcap');
    const events = await eventsOf(file);
    expectSameAsTshark(events, await tsharkRows(file));
    expect(events.every((e) => e.ipFamily === 6 && e.transport === 'udp' && e.protoType === 1)).toBe(true);
  });

  it('generator capture with VLAN 42 and nanosecond timestamps', async () => {
    const dir = tmpDir('callscope-events-');
    dirs.push(dir);
    const output = join(dir, 'vlan.pcap');
    generateCapture({
      output,
      seed: 3,
      calls: 12,
      callsPerSecond: 6,
      callDurationSec: 1,
      vlan: 42,
      nanosecond: true,
    });
    const events = await eventsOf(output);
    expectSameAsTshark(events, await tsharkRows(output));
    expect(events.every((e) => e.vlan === 42 && e.nodeName === 'mon-1' && e.captureId === 2001)).toBe(true);
  });
});

describe('events survive HEP3 encoding', () => {
  it('every event of the sample capture round-trips (µs precision, as HEP carries)', async () => {
    const events = await eventsOf(new URL('../capture/sample/calls.pcap', import.meta.url).pathname);
    expect(events.length).toBeGreaterThan(100);
    for (const e of events) {
      const decoded = decodeHep3(encodeHep3(e, { authKey: 'secret' }));
      expect(decoded.ok).toBe(true);
      if (!decoded.ok) continue;
      const d = decoded.event;
      expect(decoded.authKey).toBe('secret');
      expect(d.payload.equals(e.payload)).toBe(true);
      expect(d.timestampNs).toBe((e.timestampNs / 1000n) * 1000n);
      expect([d.srcIp, d.dstIp, d.srcPort, d.dstPort, d.ipFamily, d.ipProtocol]).toEqual([
        e.srcIp,
        e.dstIp,
        e.srcPort,
        e.dstPort,
        e.ipFamily,
        e.ipProtocol,
      ]);
      expect([d.correlationId, d.nodeName, d.captureId, d.protoType, d.vlan]).toEqual([
        e.correlationId,
        e.nodeName,
        e.captureId,
        e.protoType,
        e.vlan,
      ]);
    }
  });
});
