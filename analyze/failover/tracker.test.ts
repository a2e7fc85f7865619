import { describe, expect, it } from 'vitest';
import { StaticVmMap, VmAttribution } from '../../capture/attribution.js';
import { arpExchange, gratuitousArp } from '../../capture/generator/arp.js';
import {
  type Host,
  makeHost,
  RtpFrameTemplate,
  TOS_SIP,
  UdpFrameBuilder,
} from '../../capture/generator/frames.js';
import { CapturePipeline } from '../../capture/pipeline.js';
import { type CaptureEvent, HEP_PROTO_FAILOVER_JSON } from '../../core/event.js';
import { type FailoverRecord, failoverFromJson, failoverJson } from '../../core/failover.js';
import { decodeHep3, encodeHep3 } from '../../core/hep3.js';
import { eventRows } from '../../ingest/rows.js';
import { behind, frameRecord, sipText, T0 } from '../../test/fixtures/failover.js';
import { SummarySink } from '../summary.js';
import { FailoverTracker } from './tracker.js';

/** Frames at capture times (ms from T0) through one pipeline, its failover events collected. */
class Scenario {
  readonly events: CaptureEvent[] = [];
  readonly pipeline: CapturePipeline;
  private readonly udp = new UdpFrameBuilder(null);
  private n = 0;
  private call = 0;

  constructor(options: { vms?: VmAttribution; answerTimeoutMs?: number; holdDownMs?: number } = {}) {
    this.pipeline = new CapturePipeline({
      sourceName: 'failover',
      isFile: true,
      nodeName: 'hv1',
      vms: options.vms,
      failover: { answerTimeoutMs: options.answerTimeoutMs, holdDownMs: options.holdDownMs },
      onEvent: (e) => {
        if (e.protoType === HEP_PROTO_FAILOVER_JSON) this.events.push(e);
      },
    });
  }

  get failovers(): FailoverRecord[] {
    return this.events.map((e) => e.failover!);
  }

  frame(atMs: number, frame: Uint8Array): void {
    this.pipeline.handle(frameRecord(atMs, frame, ++this.n));
  }

  /** An INVITE from `caller` at `atMs` and its 200 OK from `callee` 10 ms later. */
  call200(atMs: number, caller: Host, callee: Host): void {
    const dialog = { callId: `c${++this.call}`, cseq: '1 INVITE', from: caller, to: callee, fromTag: 'f' };
    this.sip(atMs, caller, callee, sipText(`INVITE sip:b@${callee.ipText} SIP/2.0`, dialog));
    this.sip(atMs + 10, callee, caller, sipText('SIP/2.0 200 OK', { ...dialog, toTag: 't' }));
  }

  sip(atMs: number, src: Host, dst: Host, text: string): void {
    this.frame(atMs, this.udp.build(src, dst, 5060, 5060, Buffer.from(text, 'latin1'), TOS_SIP, 3));
  }
}

const caller = makeHost(1, 0);
const vipOnA = makeHost(50, 0);
const vipOnB = behind(vipOnA, 0xbb);
const vipOnC = behind(vipOnA, 0xcc);

describe('failover tracker, through the capture pipeline', () => {
  it('a gratuitous ARP from a new MAC for an address that answered SIP: one failover, its gap', () => {
    const s = new Scenario();
    for (let t = 0; t < 1000; t += 100) s.call200(t, caller, vipOnA);
    s.frame(1500, gratuitousArp(vipOnB));
    s.frame(2500, gratuitousArp(vipOnB)); // arping -c 2: the second one changes nothing
    expect(s.events).toEqual([]); // waiting for the first answer behind the new MAC
    s.call200(3000, caller, vipOnB);
    s.call200(3100, caller, vipOnB);
    s.pipeline.finish();
    expect(s.failovers).toEqual([
      {
        time: T0 + 1500,
        address: vipOnA.ipText,
        vlan: null,
        oldMac: vipOnA.macText,
        newMac: vipOnB.macText,
        oldVm: vipOnA.macText,
        newVm: vipOnB.macText,
        signal: 'gratuitous-arp',
        lastAnswerBefore: T0 + 910,
        firstAnswerAfter: T0 + 3010,
        gapMs: 2100,
      },
    ]);
    expect(s.events[0]!.timestampNs).toBe(BigInt(T0 + 1500) * 1_000_000n);
    expect(s.pipeline.failover.stats).toMatchObject({ failovers: 1, gratuitousArps: 2, withoutAnswer: 0 });
  });

  it('an ordinary ARP reply from a new MAC is no failover; the SIP behind it is', () => {
    const s = new Scenario();
    for (let t = 0; t < 500; t += 100) s.call200(t, caller, vipOnA);
    const [ask, answer] = arpExchange(caller, vipOnB);
    s.frame(1000, ask);
    s.frame(1001, answer);
    s.pipeline.finish();
    expect(s.events).toEqual([]);
    expect(s.pipeline.failover.stats.arpFromNewMac).toBe(1);

    const t = new Scenario();
    for (let at = 0; at < 500; at += 100) t.call200(at, caller, vipOnA);
    t.frame(1000, ask);
    t.frame(1001, answer);
    t.call200(1200, caller, vipOnB);
    t.pipeline.finish();
    // The move is the first packet behind the new MAC: here the answer itself.
    expect(t.failovers).toMatchObject([
      {
        time: T0 + 1210,
        signal: 'sip-from-new-mac',
        lastAnswerBefore: T0 + 410,
        firstAnswerAfter: T0 + 1210,
        gapMs: 800,
      },
    ]);
  });

  it('SIP from the same address behind another MAC, with no ARP seen: a failover', () => {
    const s = new Scenario();
    s.call200(0, caller, vipOnA);
    // A request from the address first (a BYE it sends), then its next answer.
    s.sip(
      700,
      vipOnB,
      caller,
      'BYE sip:a@x SIP/2.0\r\nCall-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n',
    );
    s.call200(900, caller, vipOnB);
    s.pipeline.finish();
    expect(s.failovers).toMatchObject([
      {
        time: T0 + 700,
        signal: 'sip-from-new-mac',
        lastAnswerBefore: T0 + 10,
        firstAnswerAfter: T0 + 910,
        gapMs: 900,
      },
    ]);
  });

  it('no failover for an address that never served SIP or RTP', () => {
    const s = new Scenario();
    const quiet = makeHost(60, 0);
    s.call200(0, caller, vipOnA);
    s.frame(100, gratuitousArp(quiet));
    s.frame(200, gratuitousArp(behind(quiet, 0xbb)));
    // The caller only sent requests: it served SIP too, but announces nothing new.
    s.frame(300, gratuitousArp(caller));
    s.pipeline.finish();
    expect(s.events).toEqual([]);
    expect(s.pipeline.failover.stats).toMatchObject({
      gratuitousArps: 3,
      gratuitousUnserved: 2,
      failovers: 0,
    });
  });

  it('an address that served only RTP fails over without a gap', () => {
    const s = new Scenario();
    const media = makeHost(70, 0);
    const stream = new RtpFrameTemplate(null, media, caller, 40_000, 30_000, 8, 0x1234, new Uint8Array(160));
    for (let i = 0; i < 200; i++) s.frame(i * 20, stream.fill(i, i * 160, i === 0));
    s.frame(5000, gratuitousArp(behind(media, 0xbb)));
    s.pipeline.finish();
    expect(s.failovers).toMatchObject([
      {
        address: media.ipText,
        signal: 'gratuitous-arp',
        lastAnswerBefore: null,
        firstAnswerAfter: null,
        gapMs: null,
      },
    ]);
  });

  it('names the VMs from the inventory, and a second NIC of the same VM is no failover', () => {
    const vms = new VmAttribution(
      new StaticVmMap([
        { mac: vipOnA.macText, id: '101', name: 'pbx-a' },
        { mac: vipOnB.macText, id: '102', name: 'pbx-b' },
        { mac: vipOnC.macText, id: '102' },
      ]),
    );
    const s = new Scenario({ vms });
    s.call200(0, caller, vipOnA);
    s.frame(100, gratuitousArp(vipOnB));
    s.call200(200, caller, vipOnB);
    s.call200(40_000, caller, vipOnC); // VM 102's other NIC, after the hold-down
    s.pipeline.finish();
    expect(s.failovers).toMatchObject([{ oldVm: '101', newVm: '102', gapMs: 200 }]);
    expect(s.pipeline.failover.stats.macChangesWithinVm).toBe(1);
  });

  it('ignores the old MAC during the hold-down, and reports a failback after it', () => {
    const s = new Scenario({ holdDownMs: 10_000 });
    s.call200(0, caller, vipOnA);
    s.frame(100, gratuitousArp(vipOnB));
    s.call200(200, caller, vipOnA); // the old node's last answer: not a move back
    s.call200(300, caller, vipOnB);
    s.frame(20_000, gratuitousArp(vipOnA));
    s.call200(20_100, caller, vipOnA);
    s.pipeline.finish();
    expect(s.failovers.map((f) => [f.oldMac, f.newMac, f.gapMs])).toEqual([
      [vipOnA.macText, vipOnB.macText, 300],
      [vipOnB.macText, vipOnA.macText, 19_800],
    ]);
    expect(s.pipeline.failover.stats.oldMacAfterMove).toBe(1);
  });

  it('a move nobody answers is reported after the wait, or at the end of the capture', () => {
    const s = new Scenario({ answerTimeoutMs: 5000 });
    s.call200(0, caller, vipOnA);
    s.frame(1000, gratuitousArp(vipOnB));
    s.frame(5999, gratuitousArp(caller));
    expect(s.events).toEqual([]);
    s.frame(6000, gratuitousArp(caller)); // any packet moves the clock
    expect(s.failovers).toMatchObject([{ time: T0 + 1000, firstAnswerAfter: null, gapMs: null }]);

    const t = new Scenario();
    t.call200(0, caller, vipOnA);
    t.frame(1000, gratuitousArp(vipOnB));
    t.pipeline.finish();
    expect(t.failovers).toMatchObject([{ time: T0 + 1000, gapMs: null }]);
    expect(t.pipeline.failover.stats.withoutAnswer).toBe(1);
  });
});

describe('failover tracker bounds', () => {
  it('follows at most maxAddresses addresses, forgets the least recently active, reports their pending moves', () => {
    const reported: FailoverRecord[] = [];
    const tracker = new FailoverTracker({ onFailover: (r) => reported.push(r) }, { maxAddresses: 1000 });
    // The first address answers and moves, then 200,000 others push it out before its answer comes.
    tracker.sip(T0, '10.1.0.1', null, '02:00:00:00:00:01', true);
    tracker.arp(T0 + 1, null, '10.1.0.1', '02:00:00:00:00:02', true);
    for (let i = 0; i < 200_000; i++) {
      const ip = `10.${2 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`;
      tracker.sip(T0 + 2 + i, ip, null, '02:00:00:00:01:01', i % 2 === 0);
      expect(tracker.stats.addresses).toBeLessThanOrEqual(1000);
    }
    const stats = tracker.stats;
    expect(stats.addressesForgotten).toBeGreaterThanOrEqual(200_001 - 1000);
    expect(stats.addresses + stats.addressesForgotten).toBe(200_001);
    expect(reported).toMatchObject([{ address: '10.1.0.1', firstAnswerAfter: null }]);
    expect(stats.awaitingAnswer).toBe(0);
  });
});

describe('failover events', () => {
  const record: FailoverRecord = {
    time: T0 + 1500,
    address: '10.77.0.50',
    vlan: 12,
    oldMac: '02:00:00:00:00:aa',
    newMac: '02:00:00:00:00:bb',
    oldVm: '9101',
    newVm: '9102',
    signal: 'gratuitous-arp',
    lastAnswerBefore: T0 + 910,
    firstAnswerAfter: T0 + 3010,
    gapMs: 2100,
  };

  it('travel as HEP type 0xca with their JSON, and become the same row after the trip', () => {
    const s = new Scenario();
    s.call200(0, caller, vipOnA);
    s.frame(100, gratuitousArp(vipOnB));
    s.call200(200, caller, vipOnB);
    s.pipeline.finish();
    const local = s.events[0]!;
    const decoded = decodeHep3(encodeHep3(local));
    if (!decoded.ok) throw new Error(decoded.error);
    const remote = decoded.event;
    expect(remote.protoType).toBe(0xca);
    expect(remote.failover).toBeUndefined();
    expect(failoverFromJson(remote.payload)).toEqual(local.failover);
    // Same event id and same row whether stored by `run` or after Kafka/HEP (`capture` → `ingest`).
    const a = eventRows(local, 'r');
    const b = eventRows(remote, 'r');
    expect(b.eventId).toBe(a.eventId);
    expect(b.rows.failovers?.toString()).toBe(a.rows.failovers?.toString());
    expect(a.rows.failovers?.toString()).toContain(`\t${vipOnA.ipText}\t\\N\t${vipOnA.macText}\t`);
  });

  it('round-trip their JSON, and anything else is refused', () => {
    expect(failoverFromJson(Buffer.from(failoverJson(record)))).toEqual(record);
    const broken = [
      '',
      'null',
      '[]',
      '{}',
      JSON.stringify({ ...record, time: 1.5 }),
      JSON.stringify({ ...record, address: 'not an address' }),
      JSON.stringify({ ...record, vlan: 5000 }),
      JSON.stringify({ ...record, signal: 'telepathy' }),
      JSON.stringify({ ...record, oldVm: 'a\u0000b' }),
      JSON.stringify({ ...record, newMac: 'x'.repeat(300) }),
      JSON.stringify({ ...record, gapMs: '2100' }),
    ];
    for (const text of broken) expect(failoverFromJson(Buffer.from(text)), text).toBeNull();
    const event = { ...eventOf(Buffer.from('{"something":"else"}')) };
    expect(eventRows(event).skipped).toBe('unrecognised failover JSON');
  });

  it('are counted by the summary, from this process or from elsewhere', () => {
    const sink = new SummarySink();
    sink.add(eventOf(Buffer.from(failoverJson(record))));
    sink.add(eventOf(Buffer.from('junk')));
    expect(sink.counts().failovers).toEqual({ count: 1, list: [record], omitted: 0 });
  });
});

function eventOf(payload: Buffer): CaptureEvent {
  return {
    timestampNs: BigInt(T0) * 1_000_000n,
    ipFamily: 4,
    ipProtocol: 0,
    transport: 'udp',
    srcIp: '10.77.0.50',
    dstIp: '0.0.0.0',
    srcPort: 0,
    dstPort: 0,
    vlan: null,
    protoType: HEP_PROTO_FAILOVER_JSON,
    captureId: 0,
    nodeName: '',
    correlationId: '',
    payload,
    retransmission: false,
  };
}
