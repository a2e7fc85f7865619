import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../core/event.js';
import { decodeHep3, encodeHep3, HEP3_MAX_FRAME, hep3FrameLength } from '../../core/hep3.js';
import { createLogger } from '../../core/log.js';
import { HepSender, type HepSenderOptions, parseHepTarget } from './sender.js';

// The receivers here are plain sockets and the codec, not ingest/hep's listener: the sender is
// checked against the frame format itself (the listener tests run the two together).

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await sleep(5)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

function sender(o: HepSenderOptions, logs?: string[]): HepSender {
  const s = new HepSender({
    reconnectMinMs: 20,
    reconnectMaxMs: 100,
    logger: logs ? createLogger({ level: 'debug', write: (l) => logs.push(l) }) : undefined,
    ...o,
  });
  closers.push(() => s.close());
  return s;
}

function sip(callId: string, extra = 0): Buffer {
  return Buffer.from(
    `OPTIONS sip:bob@example.com SIP/2.0\r\nCall-ID: ${callId}\r\nCSeq: 1 OPTIONS\r\nContent-Length: ${extra}\r\n\r\n${'b'.repeat(extra)}`,
  );
}

function event(callId: string, over: Partial<CaptureEvent> = {}): CaptureEvent {
  return {
    timestampNs: 1_700_000_000_000_001_000n,
    ipFamily: 4,
    ipProtocol: 17,
    transport: 'udp',
    srcIp: '192.0.2.1',
    dstIp: '192.0.2.2',
    srcPort: 5060,
    dstPort: 5062,
    vlan: null,
    protoType: 1,
    captureId: 11,
    nodeName: '',
    correlationId: callId,
    payload: sip(callId),
    retransmission: false,
    ...over,
  };
}

async function udpReceiver(): Promise<{ port: number; frames: Buffer[] }> {
  // Sender and receiver share one event loop here: a bigger buffer keeps the kernel from dropping
  // datagrams while the loop is busy sending (rmem_max caps it).
  const sock: UdpSocket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  const frames: Buffer[] = [];
  sock.on('message', (m) => frames.push(m));
  await new Promise<void>((ok) => sock.bind(0, '127.0.0.1', ok));
  closers.push(() => new Promise<void>((done) => sock.close(() => done())));
  return { port: sock.address().port, frames };
}

/** A TCP receiver that splits each connection's stream into frames with the codec's framing. */
async function tcpReceiver(port = 0) {
  const frames: Buffer[] = [];
  const conns: Socket[] = [];
  const server: Server = createServer((c) => {
    conns.push(c);
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const n = hep3FrameLength(buf, 0, buf.length);
        if (n < 0) break;
        frames.push(buf.subarray(0, n));
        buf = buf.subarray(n);
      }
    });
    c.on('error', () => {});
  });
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
  const address = server.address();
  const close = () =>
    new Promise<void>((done) => {
      for (const c of conns) c.destroy();
      server.close(() => done());
    });
  closers.push(close);
  return { port: typeof address === 'object' && address ? address.port : 0, frames, conns, close };
}

function callIds(frames: Buffer[]): string[] {
  return frames.map((f) => {
    const r = decodeHep3(f);
    if (!r.ok) throw new Error(r.error);
    return r.event.correlationId;
  });
}

/** A TCP port with nothing listening on it (the kernel answers RST). */
async function deadPort(): Promise<number> {
  const r = await tcpReceiver();
  await r.close();
  return r.port;
}

describe('parseHepTarget', () => {
  it('reads udp:/tcp: targets, IPv6 with or without brackets', () => {
    expect(parseHepTarget('udp:10.0.0.1:9060')).toEqual({ transport: 'udp', host: '10.0.0.1', port: 9060 });
    expect(parseHepTarget('TCP:homer.example:9061')).toEqual({
      transport: 'tcp',
      host: 'homer.example',
      port: 9061,
    });
    expect(parseHepTarget('udp:[::1]:9060')).toEqual({ transport: 'udp', host: '::1', port: 9060 });
    expect(parseHepTarget('udp:2001:db8::1:9060')).toEqual({
      transport: 'udp',
      host: '2001:db8::1',
      port: 9060,
    });
    for (const bad of ['', 'udp:host', 'tls:h:9060', 'udp:h:0', 'udp:h:65536', 'udp::9060', 'h:9060']) {
      expect(() => parseHepTarget(bad), bad).toThrow(TypeError);
    }
  });
});

describe('UDP', () => {
  it('one decodable frame per datagram, in order, with the auth key and capture id', async () => {
    const rx = await udpReceiver();
    const s = sender({ target: `udp:127.0.0.1:${rx.port}`, authKey: 'k1', captureId: 99 });
    const ids = Array.from({ length: 200 }, (_, i) => `u${i}`);
    for (const id of ids) expect(s.send(event(id))).toBe(true);
    await s.flush();
    await until('200 datagrams', () => rx.frames.length === 200);
    expect(callIds(rx.frames)).toEqual(ids);
    const first = decodeHep3(rx.frames[0]);
    expect(first.ok && [first.authKey, first.event.captureId, first.event.payload.toString()]).toEqual([
      'k1',
      99,
      sip('u0').toString(),
    ]);
    expect(s.stats).toEqual({ sent: 200, dropped: 0, errors: 0, unsendable: 0, failed: 0, reconnects: 0 });
  });

  it('events too large for HEP, or for a UDP datagram, are errors: counted, logged, not thrown', async () => {
    const rx = await udpReceiver();
    const logs: string[] = [];
    const s = sender({ target: `udp:127.0.0.1:${rx.port}` }, logs);
    expect(s.send(event('huge', { payload: sip('huge', HEP3_MAX_FRAME) }))).toBe(false);
    // A valid HEP frame (65,520 ≤ 65,535 bytes) bigger than the 65,507 bytes an IPv4 datagram holds.
    const overhead = encodeHep3(event('udp-big', { payload: Buffer.alloc(0) })).length;
    const head = sip('udp-big');
    const payload = Buffer.concat([head, Buffer.alloc(65_520 - overhead - head.length, 0x62)]);
    expect(encodeHep3(event('udp-big', { payload })).length).toBe(65_520);
    expect(s.send(event('udp-big', { payload }))).toBe(false);
    expect(s.send(event('bad-port', { srcPort: 70_000 }))).toBe(false);
    expect(s.send(event('fine', { payload: sip('fine', 65_000) }))).toBe(true);
    await s.flush();
    await until('the one that fits', () => rx.frames.length === 1);
    expect(callIds(rx.frames)).toEqual(['fine']);
    expect(s.stats).toMatchObject({ sent: 1, errors: 3, dropped: 0 });
    const text = logs.join('');
    expect(text).toContain('huge');
    expect(text).toContain('exceeds a UDP datagram');
  });
});

describe('TCP', () => {
  it('frames concatenated on one connection decode back in order; flush waits for them', async () => {
    const rx = await tcpReceiver();
    const s = sender({ target: `tcp:127.0.0.1:${rx.port}` });
    const ids = Array.from({ length: 2000 }, (_, i) => `t${i}`);
    for (const id of ids) s.send(event(id, { payload: sip(id, 1000) }));
    await s.flush();
    expect(s.stats.sent).toBe(2000);
    await until('2000 frames', () => rx.frames.length === 2000);
    expect(callIds(rx.frames)).toEqual(ids);
    expect(rx.conns.length).toBe(1);
  });

  it('queues while the collector is down, drops beyond maxQueue, reconnects with backoff, then delivers', async () => {
    const port = await deadPort();
    const logs: string[] = [];
    const s = sender({ target: `tcp:127.0.0.1:${port}`, maxQueue: 5 }, logs);
    const sent = Array.from({ length: 8 }, (_, i) => s.send(event(`q${i}`)));
    expect(sent).toEqual([true, true, true, true, true, false, false, false]);
    expect(s.stats.dropped).toBe(3);
    await until('a few attempts', () => s.stats.reconnects >= 2);
    expect(s.stats.errors).toBeGreaterThanOrEqual(2); // each refused connection
    expect(logs.join('')).toContain('queue full');
    const rx = await tcpReceiver(port);
    await until('the queued five', () => rx.frames.length === 5, 5000);
    expect(callIds(rx.frames)).toEqual(['q0', 'q1', 'q2', 'q3', 'q4']);
    await s.flush();
    expect(s.stats.sent).toBe(5);
  });

  it('maxQueueBytes bounds the queue by size as well', async () => {
    const s = sender({
      target: `tcp:127.0.0.1:${await deadPort()}`,
      maxQueueBytes: 5000,
      closeTimeoutMs: 50,
    });
    const accepted = Array.from({ length: 5 }, (_, i) =>
      s.send(event(`b${i}`, { payload: sip(`b${i}`, 1900) })),
    );
    // Each frame is about 2 KB: the third takes the queue past 5,000 bytes, so the fourth is refused.
    expect(accepted).toEqual([true, true, true, false, false]);
    expect(s.stats.dropped).toBe(2);
  });

  it('a connection lost mid-stream is re-opened and sending goes on', async () => {
    const rx = await tcpReceiver();
    const s = sender({ target: `tcp:127.0.0.1:${rx.port}` });
    s.send(event('first'));
    await until('first', () => rx.frames.length === 1);
    rx.conns[0].destroy();
    await until('reconnected', () => rx.conns.length === 2);
    s.send(event('second'));
    await until('second', () => rx.frames.length === 2);
    expect(callIds(rx.frames)).toEqual(['first', 'second']);
    expect(s.stats.reconnects).toBe(1);
  });

  it('close() gives up on an unreachable collector after closeTimeoutMs, counting what it drops', async () => {
    const s = sender({ target: `tcp:127.0.0.1:${await deadPort()}`, closeTimeoutMs: 100 });
    for (let i = 0; i < 4; i++) s.send(event(`c${i}`));
    const t = performance.now();
    await s.close();
    expect(performance.now() - t).toBeLessThan(1000);
    expect(s.stats.dropped).toBe(4);
    expect(s.send(event('late'))).toBe(false);
    expect(s.stats.dropped).toBe(5);
    await s.flush(); // resolves at once on a closed sender
  });
});
