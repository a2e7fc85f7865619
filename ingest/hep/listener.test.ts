import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { analyzeFile } from '../../analyze/analyze.js';
import type { CaptureEvent } from '../../core/event.js';
import { encodeHep3, HEP3_MAX_FRAME } from '../../core/hep3.js';
import { createLogger } from '../../core/log.js';
import { HepListener, type HepListenerOptions } from './listener.js';
import { HepSender } from './sender.js';
import { HepTcpFramer } from './tcp-framer.js';

const sample = new URL('../../capture/sample/calls.pcap', import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await sleep(5)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

// Everything a test opens is closed here, even when an assertion failed half-way.
const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** A listener on loopback that collects what it delivers; the log lines are kept for assertions. */
async function listen(over: Partial<HepListenerOptions> = {}) {
  const events: CaptureEvent[] = [];
  const logs: string[] = [];
  const listener = await HepListener.start({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger({ level: 'debug', write: (l) => logs.push(l) }),
    onEvents: (batch) => {
      events.push(...batch);
    },
    ...over,
  });
  closers.push(() => listener.close());
  return { listener, events, logs };
}

function sender(target: string, over: Partial<ConstructorParameters<typeof HepSender>[0]> = {}): HepSender {
  const s = new HepSender({ target, reconnectMinMs: 20, reconnectMaxMs: 200, ...over });
  closers.push(() => s.close());
  return s;
}

async function rawTcp(port: number, localAddress?: string): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port, localAddress });
  await new Promise<void>((ok, fail) => s.once('connect', ok).once('error', fail));
  s.on('error', () => {});
  closers.push(() => s.destroy());
  return s;
}

async function rawUdp(port: number, datagrams: Buffer[]): Promise<void> {
  const s = createSocket('udp4');
  for (const d of datagrams) {
    await new Promise<void>((ok, fail) => s.send(d, port, '127.0.0.1', (e) => (e ? fail(e) : ok())));
  }
  s.close();
}

function sipText(callId: string, body = ''): string {
  return (
    'INVITE sip:bob@example.com SIP/2.0\r\n' +
    `Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-${callId}\r\n` +
    'From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n' +
    `Call-ID: ${callId}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n` +
    `Content-Type: application/sdp\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

function event(over: Partial<CaptureEvent> = {}): CaptureEvent {
  return {
    timestampNs: 1_700_000_000_123_456_789n,
    ipFamily: 4,
    ipProtocol: 17,
    transport: 'udp',
    srcIp: '10.0.0.1',
    dstIp: '10.0.0.2',
    srcPort: 5060,
    dstPort: 5060,
    vlan: null,
    protoType: 1,
    captureId: 7,
    nodeName: '',
    correlationId: '',
    payload: Buffer.from(sipText('c1')),
    retransmission: false,
    ...over,
  };
}

/** A hand-made frame: chunks as [type, value] (vendor 0), length fields filled in. */
function rawFrame(chunks: [number, Buffer][]): Buffer {
  const parts = chunks.map(([type, value]) => {
    const h = Buffer.alloc(6);
    h.writeUInt16BE(type, 2);
    h.writeUInt16BE(6 + value.length, 4);
    return Buffer.concat([h, value]);
  });
  const head = Buffer.from('HEP3\0\0', 'latin1');
  const out = Buffer.concat([head, ...parts]);
  out.writeUInt16BE(out.length, 4);
  return out;
}

function sipKey(e: CaptureEvent): string {
  return e.sip ? (e.sip.isRequest ? e.sip.method! : String(e.sip.statusCode)) : 'no-sip';
}

function countBy(events: CaptureEvent[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const e of events) c[sipKey(e)] = (c[sipKey(e)] ?? 0) + 1;
  return c;
}

/** The sample's SIP events as local capture decodes them: the reference for what HEP must carry. */
async function sampleEvents(): Promise<CaptureEvent[]> {
  const events: CaptureEvent[] = [];
  await analyzeFile(sample, { onEvent: (e) => e.protoType === 1 && events.push(e) });
  expect(events.length).toBe(268);
  return events;
}

/** Same SIP fields as local capture, from the parse of the received payload. */
function expectSameSip(got: CaptureEvent, want: CaptureEvent): void {
  expect(got.sip, `frame ${got.source?.packetNumber}`).toBeDefined();
  const pick = (e: CaptureEvent) => ({
    isRequest: e.sip!.isRequest,
    method: e.sip!.method,
    status: e.sip!.statusCode,
    callId: e.sip!.callId,
    cseq: e.sip!.cseq,
    fromTag: e.sip!.from?.tag,
    toTag: e.sip!.to?.tag,
    via: e.sip!.via.map((v) => v.branch),
    sdp: e.sip!.sdp?.media.map((m) => m.port),
  });
  expect(pick(got)).toEqual(pick(want));
  expect(got.payload.equals(want.payload)).toBe(true);
  expect(got.correlationId).toBe(want.sip!.callId);
  expect(got.timestampNs).toBe((want.timestampNs / 1000n) * 1000n);
  const where = (e: CaptureEvent) => [e.srcIp, e.srcPort, e.dstIp, e.dstPort, e.transport, e.vlan];
  expect(where(got)).toEqual(where(want));
}

describe('HepSender → HepListener on loopback', () => {
  for (const transport of ['udp', 'tcp'] as const) {
    it(`${transport}: the sample's 268 SIP messages arrive parsed as local capture parses them`, async () => {
      const want = await sampleEvents();
      const { listener, events } = await listen();
      const port = transport === 'udp' ? listener.udpPort : listener.tcpPort;
      const s = sender(`${transport}:127.0.0.1:${port}`, { captureId: 4242 });
      for (const e of want) expect(s.send(e)).toBe(true);
      await s.flush();
      await until('all events', () => events.length >= want.length);
      expect(events.length).toBe(want.length);
      // UDP datagrams on loopback keep their order in practice; match by content to be safe.
      const byPayload = new Map<string, CaptureEvent[]>();
      for (const e of want) {
        const k = e.payload.toString('latin1');
        byPayload.set(k, [...(byPayload.get(k) ?? []), e]);
      }
      for (const got of events) {
        const w = byPayload.get(got.payload.toString('latin1'))?.shift();
        expect(w).toBeDefined();
        expectSameSip(got, w!);
        expect(got.captureId).toBe(4242);
        expect(got.source?.interface).toMatch(new RegExp(`^hep:${transport}:127\\.0\\.0\\.1:\\d+$`));
      }
      expect(countBy(events)).toEqual(countBy(want));
      expect(new Set(events.map((e) => e.source!.packetNumber)).size).toBe(want.length);
      expect(listener.stats).toMatchObject({
        frames: 268,
        events: 268,
        malformed: 0,
        dropped: 0,
        sipUnparsed: 0,
        tcpConnections: transport === 'tcp' ? 1 : 0,
      });
      expect(s.stats).toEqual({ sent: 268, dropped: 0, errors: 0, unsendable: 0, failed: 0, reconnects: 0 });
    });
  }

  it('tcp: 65,535-byte frames (the HEP3 maximum) arrive whole, SIP and other types', async () => {
    const { listener, events } = await listen({ udp: false });
    const s = sender(`tcp:127.0.0.1:${listener.tcpPort}`);
    // Size the payloads so the frames are exactly 65,535 bytes.
    const overhead = encodeHep3(event({ payload: Buffer.alloc(0) })).length;
    const room = HEP3_MAX_FRAME - overhead;
    const head = sipText('big', '');
    const body = 'v=0\r\n'.padEnd(room - head.length - String(room).length + 1, 'x');
    const sip = Buffer.from(sipText('big', body));
    expect(sip.length).toBe(room);
    const log = Buffer.alloc(room, 0x61);
    const big = [event({ payload: sip }), event({ protoType: 100, payload: log })];
    for (const e of big) expect(encodeHep3(e).length).toBe(HEP3_MAX_FRAME);
    for (const e of big) expect(s.send(e)).toBe(true);
    // One byte more does not fit: refused by the codec, counted as an error, nothing thrown.
    expect(s.send(event({ payload: Buffer.alloc(room + 1) }))).toBe(false);
    await until('big frames', () => events.length === 2);
    expect(events[0].payload.equals(sip)).toBe(true);
    expect(events[0].sip?.callId).toBe('big');
    expect(events[0].sip?.body.length).toBe(body.length);
    expect(events[1].payload.equals(log)).toBe(true);
    expect(events[1].sip).toBeUndefined();
    expect(s.stats).toMatchObject({ sent: 2, errors: 1 });
    expect(listener.stats.malformed).toBe(0);
  });
});

describe('auth key', () => {
  it('frames with the key are delivered; a wrong or missing key is dropped and counted', async () => {
    const { listener, events, logs } = await listen({ authKey: 's3cret' });
    const good = sender(`udp:127.0.0.1:${listener.udpPort}`, { authKey: 's3cret' });
    const wrong = sender(`udp:127.0.0.1:${listener.udpPort}`, { authKey: 's3cret!' });
    const none = sender(`udp:127.0.0.1:${listener.udpPort}`);
    wrong.send(event({ payload: Buffer.from(sipText('wrong')) }));
    none.send(event({ payload: Buffer.from(sipText('none')) }));
    good.send(event({ payload: Buffer.from(sipText('good')) }));
    await Promise.all([good.flush(), wrong.flush(), none.flush()]);
    await until('3 frames', () => listener.stats.frames === 3);
    await until('delivery', () => events.length === 1);
    expect(events.map((e) => e.sip?.callId)).toEqual(['good']);
    expect(listener.stats.authFailures).toBe(2);
    expect(logs.filter((l) => l.includes('auth key')).length).toBe(2);
    expect(logs.join('')).toContain('"peer":"127.0.0.1:');
  });

  it('tcp: a connection that sends a wrong key is closed', async () => {
    const { listener, events } = await listen({ authKey: 'k' });
    const sock = await rawTcp(listener.tcpPort);
    const closed = new Promise((done) => sock.on('close', done));
    sock.write(Buffer.concat([encodeHep3(event(), { authKey: 'x' }), encodeHep3(event(), { authKey: 'k' })]));
    await closed;
    expect(listener.stats.authFailures).toBe(1);
    // The frame behind the refused one came from the same unauthenticated peer: not delivered.
    await sleep(20);
    expect(events.length).toBe(0);
  });
});

describe('hostile input', () => {
  it('udp: garbage and truncated frames are counted and logged, never thrown; good frames still pass', async () => {
    const { listener, events, logs } = await listen();
    const good = encodeHep3(event());
    const lengthTooBig = Buffer.from(good);
    lengthTooBig.writeUInt16BE(good.length + 10, 4);
    const badChunk = Buffer.from(good);
    badChunk.writeUInt16BE(3, 10); // first chunk length below 6
    const bad = [
      Buffer.from('hello, world'),
      Buffer.from('HEP3'),
      good.subarray(0, 40), // cut: its length field promises more
      lengthTooBig,
      badChunk,
      rawFrame([[1, Buffer.from([99])]]), // unknown IP family
      Buffer.from('HEP2\x00\x10aaaaaaaaaa'),
      Buffer.alloc(0),
    ];
    await rawUdp(listener.udpPort, [...bad, good]);
    await until('all frames', () => listener.stats.frames === bad.length + 1);
    await until('the good one', () => events.length === 1);
    expect(listener.stats.malformed).toBe(bad.length);
    const warned = logs.filter((l) => l.includes('malformed HEP frame'));
    expect(warned.length).toBe(bad.length);
    expect(warned[0]).toContain('"peer":"127.0.0.1:');

    // Random mutations of a good frame: whatever they decode to, nothing escapes as an exception.
    let seed = 1;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const fuzz = Array.from({ length: 400 }, () => {
      const b = Buffer.from(good.subarray(0, 1 + rnd(good.length)));
      for (let i = rnd(6); i > 0; i--) b[rnd(b.length)] = rnd(256);
      return b;
    });
    const before = listener.stats.frames;
    await rawUdp(listener.udpPort, fuzz);
    await until('fuzz frames', () => listener.stats.frames === before + fuzz.length);
    expect(listener.stats.malformed + events.length).toBeGreaterThan(bad.length);
  });

  it('tcp: garbage closes the connection and is counted; frames before it are kept', async () => {
    const { listener, events, logs } = await listen();
    const sock = await rawTcp(listener.tcpPort);
    const closed = new Promise((done) => sock.on('close', done));
    sock.write(Buffer.concat([encodeHep3(event()), Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]));
    await closed;
    await until('the frame before the garbage', () => events.length === 1);
    expect(listener.stats).toMatchObject({ tcpDesyncs: 1, malformed: 1, tcpConnections: 1 });
    expect(logs.join('')).toContain('not HEP3; closing the connection');
    // A HEP3 header with a length below 6 cannot be skipped either.
    const again = await rawTcp(listener.tcpPort);
    const closedAgain = new Promise((done) => again.on('close', done));
    again.write(Buffer.from('HEP3\x00\x02', 'latin1'));
    await closedAgain;
    expect(listener.stats.tcpDesyncs).toBe(2);
    await until('sockets released', () => listener.stats.tcpOpen === 0);
  });

  it('tcp: frames cut at every byte boundary are reassembled; a connection ending mid-frame is counted', async () => {
    const { listener, events } = await listen();
    const frames = [1, 2, 3].map((i) => encodeHep3(event({ payload: Buffer.from(sipText(`cut${i}`)) })));
    const stream = Buffer.concat(frames);
    const sock = await rawTcp(listener.tcpPort);
    sock.setNoDelay(true);
    for (let i = 0; i < stream.length; i += 1 + (i % 7)) {
      sock.write(stream.subarray(i, i + 1 + (i % 7)));
      if (i % 50 === 0) await sleep(1);
    }
    sock.end(frames[0].subarray(0, 30));
    await until('3 events', () => events.length === 3);
    await until('end of stream', () => listener.stats.malformed === 1);
    expect(events.map((e) => e.sip?.callId)).toEqual(['cut1', 'cut2', 'cut3']);
  });

  it('the framer holds at most one frame whatever the reads look like', () => {
    const framer = new HepTcpFramer();
    const frame = encodeHep3(event({ payload: Buffer.alloc(60_000, 0x41), protoType: 100 }));
    const got: number[] = [];
    // Header split inside the magic, then inside the length field, then the rest in odd pieces.
    for (const [a, b] of [
      [0, 2],
      [2, 5],
      [5, 7],
      [7, 30_000],
      [30_000, frame.length],
    ]) {
      expect(framer.push(frame.subarray(a, b), (_buf, off, end) => got.push(end - off) > 0)).toBeNull();
    }
    expect(got).toEqual([frame.length]);
    expect(framer.pendingBytes).toBe(0);
    expect(framer.push(Buffer.from('HE'), () => true)).toBeNull();
    expect(framer.push(Buffer.from('LLO'), () => true)).toBe('not-hep3');
  });

  it('the framer stops when the sink says so and resumes where it stopped', () => {
    const framer = new HepTcpFramer();
    const frames = [1, 2, 3, 4].map((i) => encodeHep3(event({ payload: Buffer.from(sipText(`s${i}`)) })));
    const stream = Buffer.concat(frames);
    const got: number[] = [];
    const stopAfterOne = (_b: Buffer, off: number, end: number) => {
      got.push(end - off);
      return false;
    };
    // The read ends inside frame 3: frame 1 is decoded, frame 2 and the start of 3 wait.
    const cut = frames[0].length + frames[1].length + 10;
    expect(framer.push(stream.subarray(0, cut), stopAfterOne)).toBeNull();
    expect(got.length).toBe(1);
    expect(framer.holding).toBe(true);
    expect(framer.resume(stopAfterOne)).toBeNull();
    expect(got.length).toBe(2);
    expect(framer.pendingBytes).toBe(10); // the start of frame 3, kept until more arrives
    expect(framer.push(stream.subarray(cut), () => got.push(0) > 0)).toBeNull();
    expect(got).toEqual([frames[0].length, frames[1].length, 0, 0]);
    expect(framer.pendingBytes).toBe(0);
  });

  it('connections beyond maxTcpConnections are closed at once and counted', async () => {
    const { listener } = await listen({ maxTcpConnections: 2 });
    await rawTcp(listener.tcpPort);
    await rawTcp(listener.tcpPort);
    await until('2 open', () => listener.stats.tcpOpen === 2);
    const third = await rawTcp(listener.tcpPort);
    await new Promise((done) => third.on('close', done));
    expect(listener.stats).toMatchObject({ tcpRefused: 1, tcpConnections: 2, tcpOpen: 2 });
    expect(listener.stats.tcpClosedBy['too-many-connections']).toBe(1);
  });
});

describe('a listener that cannot be starved', () => {
  /** A HEP header announcing a 200-byte frame that never comes: a connection that holds a slot. */
  const stall = Buffer.from([0x48, 0x45, 0x50, 0x33, 0x00, 0xc8]);

  it('256 connections that send 6 bytes and stall are closed by the partial-frame timeout: an agent 40 s later is served', async () => {
    const { listener, events } = await listen();
    // 8 sources × 32 (the per-source limit): every one of the 256 slots taken.
    const stalled: Socket[] = [];
    for (let source = 2; source < 10; source++)
      for (let i = 0; i < 32; i++) stalled.push(await rawTcp(listener.tcpPort, `127.0.0.${source}`));
    for (const s of stalled) s.write(stall);
    await until('256 open', () => listener.stats.tcpOpen === 256);
    const early = await rawTcp(listener.tcpPort, '127.0.0.10');
    await new Promise((done) => early.on('close', done));
    expect(listener.stats.tcpClosedBy['too-many-connections']).toBe(1);
    await sleep(40_000);
    const agent = sender(`tcp:127.0.0.1:${listener.tcpPort}`);
    const frames = [0, 1, 2].map((i) => event({ payload: Buffer.from(sipText(`late-${i}`)) }));
    for (const e of frames) agent.send(e);
    await agent.flush();
    await until('the late agent heard', () => events.length === 3, 10_000);
    expect(events.map((e) => e.sip?.callId)).toEqual(['late-0', 'late-1', 'late-2']);
    expect(listener.stats.tcpClosedBy['partial-frame-timeout']).toBe(256);
  }, 60_000);

  it('one address gets at most 32 connections; others still get theirs', async () => {
    const { listener } = await listen();
    const mine: Socket[] = [];
    for (let i = 0; i < 40; i++) mine.push(await rawTcp(listener.tcpPort, '127.0.0.20'));
    await until('refusals', () => listener.stats.tcpClosedBy['too-many-from-source'] === 8);
    expect(listener.stats.tcpOpen).toBe(32);
    await rawTcp(listener.tcpPort, '127.0.0.21');
    await until('33 open', () => listener.stats.tcpOpen === 33);
  });

  it('closes a connection that goes silent, and an unauthenticated one that does not finish its first frame', async () => {
    const { listener } = await listen({ tcpIdleTimeoutMs: 300, partialFrameTimeoutMs: 300, authKey: 'k' });
    const idle = await rawTcp(listener.tcpPort);
    idle.write(encodeHep3(event({ payload: Buffer.from(sipText('auth-ok')) }), { authKey: 'k' }));
    const half = await rawTcp(listener.tcpPort);
    half.write(stall);
    const silent = await rawTcp(listener.tcpPort);
    const wrong = await rawTcp(listener.tcpPort);
    wrong.write(encodeHep3(event({ payload: Buffer.from(sipText('auth-bad')) }), { authKey: 'nope' }));
    await Promise.all([idle, half, silent, wrong].map((s) => new Promise((done) => s.on('close', done))));
    expect(listener.stats.tcpClosedBy).toMatchObject({
      'idle-timeout': 1,
      'partial-frame-timeout': 2,
      auth: 1,
    });
  });
});

describe('frame kinds', () => {
  it('keep-alives are counted, other protocol types pass through intact, unparsable SIP keeps its payload', async () => {
    const { listener, events } = await listen();
    const keepAlive = rawFrame([
      [1, Buffer.from([2])],
      [13, Buffer.from([0, 30])],
    ]);
    const json = Buffer.from('{"type":"rtcp","ssrc":1}');
    const noSip = Buffer.from('\x00\x01 not a SIP message at all');
    // No time chunks at all: the arrival time stands in for the capture time.
    const timeless = rawFrame([
      [11, Buffer.from([1])],
      [15, Buffer.from(sipText('timeless'))],
    ]);
    const t0 = BigInt(Date.now()) * 1_000_000n;
    await rawUdp(listener.udpPort, [
      keepAlive,
      encodeHep3(event({ protoType: 5, payload: json, correlationId: 'corr-1', vlan: 12, nodeName: 'hv7' })),
      encodeHep3(event({ payload: noSip })),
      timeless,
    ]);
    await until('3 events', () => events.length === 3);
    const [rtcp, bad, late] = events;
    expect(listener.stats).toMatchObject({
      frames: 4,
      keepAlives: 1,
      events: 3,
      sipUnparsed: 1,
      malformed: 0,
    });
    expect(rtcp.payload.equals(json)).toBe(true);
    expect(rtcp.sip).toBeUndefined();
    expect([rtcp.protoType, rtcp.correlationId, rtcp.vlan, rtcp.nodeName]).toEqual([5, 'corr-1', 12, 'hv7']);
    expect(bad.sip).toBeUndefined();
    expect(bad.payload.equals(noSip)).toBe(true);
    expect(late.sip?.callId).toBe('timeless');
    expect(late.timestampNs).toBeGreaterThanOrEqual(t0);
  });

  it('an onEvents that throws or rejects is counted; the listener goes on', async () => {
    let calls = 0;
    const delivered: string[] = [];
    const { listener } = await listen({
      onEvents: (batch) => {
        calls++;
        if (calls === 1) throw new Error('store down');
        if (calls === 2) return Promise.reject(new Error('store still down'));
        for (const e of batch) delivered.push(e.sip!.callId!);
      },
    });
    const send = (id: string) =>
      rawUdp(listener.udpPort, [encodeHep3(event({ payload: Buffer.from(sipText(id)) }))]);
    await send('a');
    await until('a', () => listener.stats.deliveryErrors === 1);
    await send('b');
    await until('b', () => listener.stats.deliveryErrors === 2);
    await send('c');
    await until('c', () => delivered.length === 1);
    expect(delivered).toEqual(['c']);
    expect(listener.stats.deliveryErrors).toBe(2);
  });
});

describe('backpressure', () => {
  /** An onEvents that holds every batch until opened. */
  function gate() {
    let open = false;
    const waiting: (() => void)[] = [];
    const events: CaptureEvent[] = [];
    let batches = 0;
    return {
      events,
      get batches() {
        return batches;
      },
      onEvents: (batch: CaptureEvent[]): Promise<void> | undefined => {
        batches++;
        events.push(...batch);
        return open ? undefined : new Promise<void>((done) => waiting.push(done));
      },
      open: () => {
        open = true;
        for (const w of waiting.splice(0)) w();
      },
    };
  }

  it('tcp: while onEvents is pending the sockets are paused, nothing is lost', async () => {
    const g = gate();
    const { listener } = await listen({ onEvents: g.onEvents, udp: false });
    const s = sender(`tcp:127.0.0.1:${listener.tcpPort}`, { maxQueue: 100_000 });
    // 3,000 frames of 8 KB: far more than loopback socket buffers hold.
    const n = 3000;
    const body = 'x'.repeat(8000);
    for (let i = 0; i < n; i++) s.send(event({ payload: Buffer.from(sipText(`bp${i}`, body)) }));
    await until('first batch', () => g.batches === 1);
    await sleep(300);
    const whilePaused = listener.stats.frames;
    expect(g.batches).toBe(1);
    expect(whilePaused).toBeLessThan(n / 2);
    await sleep(200);
    // Paused means paused: at most what was already read into the process moves.
    expect(listener.stats.frames - whilePaused).toBeLessThan(20);
    expect(s.stats.sent).toBeLessThan(n);
    g.open();
    await until('everything', () => g.events.length === n, 20_000);
    expect(listener.stats).toMatchObject({ frames: n, events: n, dropped: 0, malformed: 0 });
    expect(g.events.map((e) => e.sip?.callId)).toEqual(Array.from({ length: n }, (_, i) => `bp${i}`));
  });

  it('udp: beyond maxFrameQueue waiting events, frames are dropped and counted', async () => {
    const g = gate();
    const { listener, logs } = await listen({ onEvents: g.onEvents, tcp: false, maxFrameQueue: 10 });
    await rawUdp(listener.udpPort, [encodeHep3(event())]);
    await until('first batch', () => g.batches === 1);
    const n = 100;
    await rawUdp(
      listener.udpPort,
      Array.from({ length: n }, (_, i) => encodeHep3(event({ payload: Buffer.from(sipText(`u${i}`)) }))),
    );
    await until('all frames seen', () => listener.stats.frames === n + 1);
    expect(listener.stats.dropped).toBe(n - 10);
    expect(logs.some((l) => l.includes('event queue full'))).toBe(true);
    g.open();
    await until('the queued ten', () => g.events.length === 11);
    expect(g.events.slice(1).map((e) => e.sip?.callId)).toEqual(
      Array.from({ length: 10 }, (_, i) => `u${i}`),
    );
    expect(listener.stats.events + listener.stats.dropped).toBe(n + 1);
  });
});

describe('bounded queue', () => {
  it('tcp: decoding stops at maxFrameQueue, so a read full of tiny frames never grows a batch past it', async () => {
    const batches: number[] = [];
    const releases: (() => void)[] = [];
    const { listener } = await listen({
      udp: false,
      maxFrameQueue: 50,
      onEvents: (batch) => {
        batches.push(batch.length);
        return new Promise<void>((done) => releases.push(done));
      },
    });
    const tiny = rawFrame([
      [11, Buffer.from([100])],
      [15, Buffer.from('x')],
    ]);
    const sock = await rawTcp(listener.tcpPort);
    sock.write(Buffer.concat(Array.from({ length: 1000 }, () => tiny))); // ~20 KB: one or two reads
    for (let total = 0; total < 1000; total = batches.reduce((a, b) => a + b, 0)) {
      await until('a batch', () => releases.length > 0);
      releases.shift()!();
      await sleep(1);
    }
    expect(Math.max(...batches)).toBeLessThanOrEqual(50);
    expect(listener.stats).toMatchObject({ frames: 1000, events: 1000, dropped: 0, malformed: 0 });
    while (releases.length) releases.shift()!();
  });

  it('udp: maxQueueBytes bounds the queue by payload size too', async () => {
    const releases: (() => void)[] = [];
    const { listener } = await listen({
      tcp: false,
      maxQueueBytes: 1000,
      onEvents: () => new Promise<void>((done) => releases.push(done)),
    });
    const frame = encodeHep3(event({ protoType: 100, payload: Buffer.alloc(400, 0x6c) }));
    await rawUdp(listener.udpPort, [frame]);
    await until('first batch', () => releases.length === 1);
    await rawUdp(
      listener.udpPort,
      Array.from({ length: 10 }, () => frame),
    );
    await until('all frames', () => listener.stats.frames === 11);
    // 400 + 400 + 400 reaches 1,000 bytes: the other seven are dropped.
    expect(listener.stats.dropped).toBe(7);
    releases.shift()!();
    await until('second batch', () => releases.length === 1);
    releases.shift()!();
    expect(listener.stats.events).toBe(4);
  });
});

describe('close', () => {
  it('closes while a sender is connected; the sender reconnects to the next listener on that port', async () => {
    const first = await listen({ udp: false });
    const port = first.listener.tcpPort;
    const s = sender(`tcp:127.0.0.1:${port}`);
    s.send(event({ payload: Buffer.from(sipText('before')) }));
    await until('first event', () => first.events.length === 1);
    expect(first.listener.stats.tcpOpen).toBe(1);
    const t = performance.now();
    await first.listener.close();
    expect(performance.now() - t).toBeLessThan(1000);
    expect(first.listener.stats.tcpOpen).toBe(0);
    await until('the sender noticed', () => s.stats.reconnects >= 1);

    const second = await listen({ udp: false, port });
    s.send(event({ payload: Buffer.from(sipText('after')) }));
    await until('event on the new listener', () => second.events.length === 1, 10_000);
    expect(second.events[0].sip?.callId).toBe('after');
  });

  it('close() delivers what was received and waits for a pending onEvents', async () => {
    const releases: (() => void)[] = [];
    const seen: string[] = [];
    const { listener } = await listen({
      onEvents: (batch) => {
        for (const e of batch) seen.push(e.sip!.callId!);
        return new Promise<void>((done) => releases.push(done));
      },
    });
    await rawTcp(listener.tcpPort); // an idle agent connection, destroyed by close()
    const send = (id: string) =>
      rawUdp(listener.udpPort, [encodeHep3(event({ payload: Buffer.from(sipText(id)) }))]);
    await send('one');
    await until('first batch', () => seen.length === 1);
    await send('two'); // queued behind the pending batch
    await until('second frame', () => listener.stats.frames === 2);
    let closed = false;
    const closing = listener.close().then(() => {
      closed = true;
    });
    await sleep(50);
    expect(closed).toBe(false); // 'one' is still being stored
    expect(listener.stats.tcpOpen).toBe(0);
    releases.shift()!();
    await until('second batch', () => seen.length === 2);
    expect(closed).toBe(false);
    releases.shift()!();
    await closing;
    expect(seen).toEqual(['one', 'two']);
    await listener.close(); // idempotent
  });

  it('start() rejects when a port is taken, leaving nothing open', async () => {
    const { listener } = await listen({ udp: false });
    await expect(
      HepListener.start({ host: '127.0.0.1', port: listener.tcpPort, udp: false, onEvents: () => {} }),
    ).rejects.toThrow(/EADDRINUSE/);
    const taken = createSocket('udp4');
    await new Promise<void>((ok) => taken.bind(0, '127.0.0.1', ok));
    closers.push(() => new Promise<void>((done) => taken.close(() => done())));
    await expect(
      HepListener.start({ host: '127.0.0.1', port: taken.address().port, onEvents: () => {} }),
    ).rejects.toThrow(/EADDRINUSE/);
    // Neither transport enabled is a configuration error, not a silent no-op.
    await expect(HepListener.start({ udp: false, tcp: false, onEvents: () => {} })).rejects.toThrow(
      /neither udp nor tcp/,
    );
  });
});
