import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { needs, SHARED_CAPTURES, SHARED_DIR } from '../../test/oracle/tools.js';
import { parseWebSocketUpgrade, WebSocketDeframer } from './websocket.js';

type Msg = { opcode: number; payload: Buffer };

function collect(out: Msg[]) {
  return (payload: Buffer, opcode: number) => out.push({ opcode, payload });
}

/** Feeds `stream` cut at the given offsets; returns the messages and the deframer. */
function feedSplit(stream: Buffer, cuts: number[], limits?: { maxMessageBytes?: number }) {
  const d = new WebSocketDeframer(limits);
  const out: Msg[] = [];
  let prev = 0;
  for (const c of [...cuts, stream.length]) {
    d.feed(stream, prev, c, collect(out));
    prev = c;
  }
  return { d, out };
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 6455 §5.7 examples, byte for byte.
const UNMASKED_HELLO = hex('81 05 48 65 6c 6c 6f');
const MASKED_HELLO = hex('81 85 37 fa 21 3d 7f 9f 4d 51 58');
const FRAG_HEL = hex('01 03 48 65 6c');
const FRAG_LO = hex('80 02 6c 6f');
const PING_HELLO = hex('89 05 48 65 6c 6c 6f');
const MASKED_PONG_HELLO = hex('8a 85 37 fa 21 3d 7f 9f 4d 51 58');
const BIN256_PAYLOAD = Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 7 + 3) & 0xff));
const BIN256 = Buffer.concat([hex('82 7e 01 00'), BIN256_PAYLOAD]);
const BIN64K_PAYLOAD = Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 31 + (i >> 8)) & 0xff));
const BIN64K = Buffer.concat([hex('82 7f 00 00 00 00 00 01 00 00'), BIN64K_PAYLOAD]);
const CLOSE_1000 = hex('88 02 03 e8');

function mask(payload: Buffer, key: Buffer): Buffer {
  return Buffer.from(payload.map((b, i) => b ^ key[i & 3]));
}

/** Builds a frame; lengths pick the shortest encoding unless `lenForm` forces one. */
function frame(
  fin: boolean,
  opcode: number,
  payload: Buffer,
  key?: Buffer,
  lenForm?: 7 | 16 | 64,
  rsv = 0,
): Buffer {
  const form = lenForm ?? (payload.length < 126 ? 7 : payload.length < 65536 ? 16 : 64);
  const h: number[] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  const m = key ? 0x80 : 0;
  if (form === 7) h.push(m | payload.length);
  else if (form === 16) h.push(m | 126, payload.length >> 8, payload.length & 0xff);
  else {
    h.push(m | 127, 0, 0, 0, 0);
    h.push((payload.length >>> 24) & 0xff, (payload.length >> 16) & 0xff, (payload.length >> 8) & 0xff);
    h.push(payload.length & 0xff);
  }
  return Buffer.concat([Buffer.from(h), ...(key ? [key, mask(payload, key)] : [payload])]);
}

describe('WebSocketDeframer: RFC 6455 §5.7 examples', () => {
  const cases: [string, Buffer, Msg[]][] = [
    ['unmasked "Hello"', UNMASKED_HELLO, [{ opcode: 1, payload: Buffer.from('Hello') }]],
    ['masked "Hello"', MASKED_HELLO, [{ opcode: 1, payload: Buffer.from('Hello') }]],
    [
      'fragmented "Hel" + "lo"',
      Buffer.concat([FRAG_HEL, FRAG_LO]),
      [{ opcode: 1, payload: Buffer.from('Hello') }],
    ],
    ['ping and masked pong (consumed)', Buffer.concat([PING_HELLO, MASKED_PONG_HELLO]), []],
    ['256-byte binary, 16-bit length', BIN256, [{ opcode: 2, payload: BIN256_PAYLOAD }]],
  ];
  for (const [name, stream, expected] of cases) {
    it(`${name}: in one piece, split at every byte boundary, and byte by byte`, () => {
      expect(feedSplit(stream, []).out).toEqual(expected);
      for (let cut = 1; cut < stream.length; cut++) {
        const { d, out } = feedSplit(stream, [cut]);
        expect(out, `cut at ${cut}`).toEqual(expected);
        expect(d.errors).toBe(0);
      }
      const bytes = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
      expect(feedSplit(stream, bytes).out).toEqual(expected);
    });
  }

  it('64 KiB binary, 64-bit length: split at every byte boundary', () => {
    const expected = [{ opcode: 2, payload: BIN64K_PAYLOAD }];
    for (let cut = 1; cut < BIN64K.length; cut++) {
      const { out } = feedSplit(BIN64K, [cut]);
      if (out.length !== 1 || !out[0].payload.equals(BIN64K_PAYLOAD)) {
        expect(out, `cut at ${cut}`).toEqual(expected);
      }
    }
  });

  it('64 KiB masked binary split into three pieces at many places', () => {
    const key = hex('a1 b2 c3 d4');
    const f = frame(true, 2, BIN64K_PAYLOAD, key);
    expect(f.subarray(0, 14)).toEqual(hex('82 ff 00 00 00 00 00 01 00 00 a1 b2 c3 d4'));
    for (let a = 1; a < f.length; a += a < 20 ? 1 : 4099) {
      for (const b of [a + 1, a + 3, a + 1021, f.length - 1]) {
        if (b <= a || b >= f.length) continue;
        const { out } = feedSplit(f, [a, b]);
        expect(out.length).toBe(1);
        expect(out[0].payload.equals(BIN64K_PAYLOAD), `cuts ${a},${b}`).toBe(true);
      }
    }
  });
});

describe('WebSocketDeframer: streams', () => {
  // Every example in one stream, with control frames inside a fragmented message and a close.
  const key = hex('01 02 03 04');
  const stream = Buffer.concat([
    MASKED_HELLO,
    FRAG_HEL,
    PING_HELLO,
    frame(false, 0, Buffer.from(', wor'), key), // continuation, masked
    MASKED_PONG_HELLO,
    FRAG_LO,
    BIN256,
    frame(true, 1, Buffer.alloc(0)), // empty text message
    frame(true, 1, Buffer.from('len7 as 16'), undefined, 16), // non-minimal lengths are legal
    frame(true, 2, Buffer.from('len7 as 64'), key, 64),
    CLOSE_1000,
    UNMASKED_HELLO, // after close: ignored
  ]);
  const expected: Msg[] = [
    { opcode: 1, payload: Buffer.from('Hello') },
    { opcode: 1, payload: Buffer.from('Hel, worlo') },
    { opcode: 2, payload: BIN256_PAYLOAD },
    { opcode: 1, payload: Buffer.alloc(0) },
    { opcode: 1, payload: Buffer.from('len7 as 16') },
    { opcode: 2, payload: Buffer.from('len7 as 64') },
  ];

  it('reassembles across interleaved control frames and stops at close; every byte boundary', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const { d, out } = feedSplit(stream, cut === 0 ? [] : [cut]);
      expect(out, `cut at ${cut}`).toEqual(expected);
      expect(d.closed).toBe(true);
      expect(d.errors).toBe(0);
      expect(d.failed).toBe(false);
    }
  });

  it('random multi-way splits give the same messages', () => {
    let seed = 99;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    for (let i = 0; i < 600; i++) {
      const cuts = Array.from({ length: rnd(12) }, () => rnd(stream.length)).sort((a, b) => a - b);
      expect(feedSplit(stream, cuts).out).toEqual(expected);
    }
  });

  it('emitted payloads are fresh buffers, not views of the fed buffer', () => {
    const buf = Buffer.from(UNMASKED_HELLO);
    const { out } = feedSplit(buf, []);
    buf.fill(0);
    expect(out[0].payload.toString()).toBe('Hello');
  });

  it('honours off/end within the fed buffer', () => {
    const d = new WebSocketDeframer();
    const out: Msg[] = [];
    const buf = Buffer.concat([Buffer.from('junk'), MASKED_HELLO, Buffer.from('more junk')]);
    d.feed(buf, 4, 4 + MASKED_HELLO.length, collect(out));
    expect(out).toEqual([{ opcode: 1, payload: Buffer.from('Hello') }]);
  });
});

describe('WebSocketDeframer: protocol errors never throw', () => {
  const after = UNMASKED_HELLO;
  const fatal: [string, Buffer][] = [
    ['RSV1 set (permessage-deflate not decoded)', frame(true, 1, Buffer.from('x'), undefined, 7, 4)],
    ['RSV3 set', frame(true, 1, Buffer.from('x'), undefined, 7, 1)],
    ['reserved data opcode 3', frame(true, 3, Buffer.from('x'))],
    ['reserved control opcode 0xB', frame(true, 11, Buffer.from('x'))],
    ['fragmented ping', frame(false, 9, Buffer.from('x'))],
    ['control frame over 125 bytes', frame(true, 9, Buffer.alloc(126))],
    ['continuation with nothing to continue', frame(true, 0, Buffer.from('x'))],
    ['new text frame inside a fragmented message', Buffer.concat([FRAG_HEL, UNMASKED_HELLO])],
    ['64-bit length with the top bit set', hex('82 ff 80 00 00 00 00 00 00 01 00 00 00 00 00')],
  ];
  for (const [name, bad] of fatal) {
    it(`${name}: counted, then nothing more is emitted`, () => {
      const { d, out } = feedSplit(Buffer.concat([UNMASKED_HELLO, bad, after]), []);
      expect(out.map((m) => m.payload.toString())).toEqual(['Hello']);
      expect(d.errors).toBe(1);
      expect(d.failed).toBe(true);
    });
  }

  it('an oversized message is dropped and the stream goes on (single frame and fragmented)', () => {
    const limits = { maxMessageBytes: 10 };
    const s1 = Buffer.concat([frame(true, 1, Buffer.alloc(11, 0x41)), UNMASKED_HELLO]);
    const r1 = feedSplit(s1, [3], limits);
    expect(r1.out.map((m) => m.payload.toString())).toEqual(['Hello']);
    expect(r1.d.errors).toBe(1);
    expect(r1.d.failed).toBe(false);

    const s2 = Buffer.concat([
      frame(false, 2, Buffer.alloc(6)),
      PING_HELLO,
      frame(false, 0, Buffer.alloc(6)), // 12 > 10: the message is discarded here
      frame(true, 0, Buffer.alloc(6)),
      frame(true, 1, Buffer.alloc(10, 0x42)), // exactly the limit: kept
    ]);
    const r2 = feedSplit(s2, [], limits);
    expect(r2.out.map((m) => m.payload.toString())).toEqual(['BBBBBBBBBB']);
    expect(r2.d.errors).toBe(1);
  });

  it('a huge declared length does not allocate or throw', () => {
    const d = new WebSocketDeframer();
    const out: Msg[] = [];
    const huge = hex('82 7f 00 00 00 ff ff ff ff ff'); // ~1 TiB, within 2^53
    d.feed(huge, 0, huge.length, collect(out));
    d.feed(Buffer.alloc(4096), 0, 4096, collect(out));
    expect(d.errors).toBe(1);
    expect(out).toEqual([]);
  });

  it('random bytes: no throw, bounded output', () => {
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 8;
    };
    for (let i = 0; i < 20_000; i++) {
      const b = Buffer.from(Array.from({ length: rnd() % 64 }, () => rnd() & 0xff));
      const d = new WebSocketDeframer({ maxMessageBytes: 1024 });
      let bytes = 0;
      d.feed(b, 0, b.length, (p) => {
        bytes += p.length;
      });
      expect(bytes).toBeLessThanOrEqual(b.length);
    }
  });
});

describe('WebSocketDeframer: memory follows the bytes received, not the lengths claimed', () => {
  setFlagsFromString('--expose_gc');
  const gc = runInNewContext('gc') as () => void;
  const retained = () => {
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };

  it('1,000 frames each claiming 1,000,000 bytes with 10 received keep little memory', () => {
    const head = hex('82 7f 00 00 00 00 00 0f 42 40'); // binary, 64-bit length 1,000,000
    const key = hex('11 22 33 44');
    const maskedHead = Buffer.concat([hex('82 ff 00 00 00 00 00 0f 42 40'), key]);
    const ten = Buffer.from('0123456789');
    const before = retained();
    const held: WebSocketDeframer[] = [];
    for (let i = 0; i < 1000; i++) {
      const d = new WebSocketDeframer();
      const s = i & 1 ? Buffer.concat([maskedHead, mask(ten, key)]) : Buffer.concat([head, ten]);
      d.feed(s, 0, s.length, () => expect.unreachable());
      held.push(d);
    }
    const grown = retained() - before;
    expect(grown).toBeLessThan(32 * 1024 * 1024);
    expect(held.every((d) => d.errors === 0 && !d.failed)).toBe(true);
  });

  it('a message that trickles in byte by byte arrives whole, after doubling its buffer', () => {
    const payload = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 13) & 0xff));
    const key = hex('de ad be ef');
    const s = Buffer.concat([
      frame(false, 2, payload.subarray(0, 70_000), key),
      PING_HELLO,
      frame(true, 0, payload.subarray(70_000)),
    ]);
    const d = new WebSocketDeframer();
    const out: Msg[] = [];
    for (let i = 0; i < s.length; i++) d.feed(s, i, i + 1, collect(out));
    expect(out.length).toBe(1);
    expect(out[0].opcode).toBe(2);
    expect(out[0].payload.length).toBe(payload.length);
    expect(out[0].payload.equals(payload)).toBe(true);
    expect(d.errors).toBe(0);
  });
});

describe('parseWebSocketUpgrade', () => {
  // RFC 7118 §2.1 handshake.
  const request = Buffer.from(
    'GET / HTTP/1.1\r\nHost: sip-ws.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://www.example.com\r\n' +
      'Sec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n',
    'latin1',
  );
  const response = Buffer.from(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n',
    'latin1',
  );

  it('recognises the RFC 7118 request and response, with bytes following the header block', () => {
    const withFrame = Buffer.concat([Buffer.from('xx'), request, MASKED_HELLO]);
    expect(parseWebSocketUpgrade(withFrame, 2, withFrame.length)).toEqual({
      headerLength: request.length,
      isRequest: true,
      protocol: 'sip',
      statusCode: null,
    });
    expect(parseWebSocketUpgrade(response, 0, response.length)).toEqual({
      headerLength: response.length,
      isRequest: false,
      protocol: 'sip',
      statusCode: 101,
    });
  });

  it('is incomplete for every proper prefix, and looks no further than end', () => {
    for (const msg of [request, response]) {
      for (let n = 0; n < msg.length; n++) {
        expect(parseWebSocketUpgrade(msg, 0, n), `prefix ${n}`).toBe('incomplete');
      }
    }
  });

  it('header names and the upgrade token are case-insensitive; protocol lists are kept', () => {
    const r = Buffer.from(
      'GET /ws?x=1 HTTP/1.1\r\nhost: a\r\nUPGRADE: h2c, WebSocket\r\nconnection: keep-alive, Upgrade\r\n' +
        'sec-websocket-protocol: sip, chat\r\n\r\n',
    );
    expect(parseWebSocketUpgrade(r, 0, r.length)).toMatchObject({ protocol: 'sip, chat', isRequest: true });
    const noProto = Buffer.from('GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n');
    expect(parseWebSocketUpgrade(noProto, 0, noProto.length)).toMatchObject({ protocol: null });
  });

  it('reports a refused handshake that still names websocket', () => {
    const r = Buffer.from('HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n\r\n');
    expect(parseWebSocketUpgrade(r, 0, r.length)).toMatchObject({ statusCode: 426, isRequest: false });
  });

  it('returns null for what is not a websocket upgrade', () => {
    const nots = [
      'GET / HTTP/1.1\r\nHost: a\r\n\r\n',
      'GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
      'POST / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n',
      'INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP a\r\n\r\n',
      'SIP/2.0 200 OK\r\n\r\n',
      'GETX / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n',
      'GET / SIP/2.0\r\nUpgrade: websocket\r\n\r\n',
    ];
    for (const s of nots) {
      const b = Buffer.from(s);
      expect(parseWebSocketUpgrade(b, 0, b.length), s).toBeNull();
    }
    // A header block that never ends is given up on.
    const endless = Buffer.from(`GET / HTTP/1.1\r\n${'X-Pad: y\r\n'.repeat(2000)}`);
    expect(parseWebSocketUpgrade(endless, 0, endless.length)).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// Real capture, checked against tshark.

const PCAP = join(SHARED_DIR, 'pcaps', 'sip_tcp_websocket.pcap');

function tshark(args: string[]): string {
  return execFileSync('tshark', ['-r', PCAP, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    maxBuffer: 64 << 20,
  });
}

needs(SHARED_CAPTURES, 'tshark').describe('sip_tcp_websocket.pcap (tshark as oracle)', () => {
  it('finds the SIP messages tshark finds in each direction of the WebSocket stream', () => {
    // Each data line is one segment; the second node's lines are tab-indented.
    const follow = tshark(['-q', '-z', 'follow,tcp,raw,0']).split('\n');
    const nodes = follow.filter((l) => l.startsWith('Node ')).map((l) => l.split(': ')[1].trim());
    expect(nodes.length).toBe(2);
    const segments: Buffer[][] = [[], []];
    for (const l of follow) {
      if (/^\t?[0-9a-f]+$/.test(l)) segments[l.startsWith('\t') ? 1 : 0].push(Buffer.from(l.trim(), 'hex'));
    }

    // Oracle: first line of every SIP message tshark decodes in this TCP stream, per source port.
    const oracle = new Map<string, string[]>();
    for (const line of tshark([
      '-Y',
      'tcp.stream==0 && sip',
      '-T',
      'fields',
      '-E',
      'occurrence=a',
      '-E',
      'aggregator=|',
      '-e',
      'tcp.srcport',
      '-e',
      'sip.Request-Line',
      '-e',
      'sip.Status-Line',
    ])
      .trim()
      .split('\n')) {
      const [port, req, status] = line.split('\t');
      const list = oracle.get(port) ?? [];
      for (const first of [req, status].filter(Boolean).flatMap((x) => x.split('|'))) list.push(first);
      oracle.set(port, list);
    }

    let total = 0;
    for (const dir of [0, 1]) {
      const port = nodes[dir].split(':').at(-1)!;
      const d = new WebSocketDeframer();
      const firstLines: string[] = [];
      let header: ReturnType<typeof parseWebSocketUpgrade> = 'incomplete';
      let pending = Buffer.alloc(0);
      for (const seg of segments[dir]) {
        if (header === 'incomplete') {
          pending = Buffer.concat([pending, seg]);
          header = parseWebSocketUpgrade(pending, 0, pending.length);
          expect(header).not.toBeNull();
          if (header === 'incomplete' || header === null) continue;
          expect(header.isRequest).toBe(dir === 0);
          d.feed(pending, header.headerLength, pending.length, (p) =>
            firstLines.push(p.toString('latin1').split('\r\n')[0]),
          );
          continue;
        }
        d.feed(seg, 0, seg.length, (p) => firstLines.push(p.toString('latin1').split('\r\n')[0]));
      }
      expect(header).not.toBe('incomplete');
      expect(d.errors).toBe(0);
      expect(firstLines).toEqual(oracle.get(port));
      total += firstLines.length;
    }
    expect(total).toBe(tshark(['-Y', 'tcp.stream==0 && sip']).trim().split('\n').length);
    expect(total).toBe(11);
  });
});
