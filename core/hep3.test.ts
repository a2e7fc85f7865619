import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { needs, SHARED_CAPTURES, SHARED_DIR, SNGREP_HEP } from '../test/oracle/tools.js';
import { formatIPv6, parseIPv4, parseIPv6 } from './address.js';
import type { CaptureEvent } from './event.js';
import { decodeHep3, encodeHep3, HEP3_MAX_FRAME, hep3FrameLength } from './hep3.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function event(over: Partial<CaptureEvent> = {}): CaptureEvent {
  return {
    timestampNs: 1_700_000_000_123_456_789n,
    ipFamily: 4,
    ipProtocol: 17,
    transport: 'udp',
    srcIp: '10.0.0.1',
    dstIp: '192.168.1.20',
    srcPort: 5060,
    dstPort: 5080,
    vlan: null,
    protoType: 1,
    captureId: 2001,
    nodeName: '',
    correlationId: '',
    payload: Buffer.from('OPTIONS sip:x SIP/2.0\r\n\r\n'),
    retransmission: false,
    ...over,
  };
}

/** What decode should give back: HEP keeps whole microseconds only. */
function expectedAfterRoundTrip(e: CaptureEvent): CaptureEvent {
  const { sip: _sip, source: _source, ...rest } = e;
  return { ...rest, timestampNs: (e.timestampNs / 1000n) * 1000n, retransmission: false };
}

function mustDecode(buf: Buffer, off?: number, end?: number) {
  const r = decodeHep3(buf, off, end);
  if (!r.ok) throw new Error(`decode failed: ${r.error}`);
  return r;
}

describe('IPv6 text (RFC 5952)', () => {
  const vectors: [string, string][] = [
    // RFC 5952 §4 examples and rules.
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2: one zero group is not shortened
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // §4.2.3: the longest run
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.2.3: the first of equal runs
    ['2001:DB8::AbCd', '2001:db8::abcd'], // §4.3: lower case
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['fe80:0:0:0:21a:a0ff:fe07:32e0', 'fe80::21a:a0ff:fe07:32e0'],
    ['::ffff:c000:0201', '::ffff:192.0.2.1'], // §5: IPv4-mapped in mixed notation
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::c000:201', '::c000:201'], // deprecated IPv4-compatible: plain hex
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1::', '1::'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'], // "::" for a single group is not canonical
  ];
  for (const [input, canonical] of vectors) {
    it(`${input} → ${canonical}`, () => {
      const b = parseIPv6(input);
      expect(b).not.toBeNull();
      expect(formatIPv6(b!)).toBe(canonical);
      expect(parseIPv6(canonical)).toEqual(b);
    });
  }

  it('rejects malformed text', () => {
    for (const bad of [
      '',
      ':',
      ':::',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      '12345::',
      'g::1',
      '1:2:3:4:5:6:7:8::',
      '::1.2.3.4:5',
      '::256.1.1.1',
      'fe80::1%eth0',
      '[::1]',
      '1:2:3:4:5:6:7:1.2.3.4',
    ]) {
      expect(parseIPv6(bad), bad).toBeNull();
    }
    for (const bad of ['1.2.3', '1.2.3.256', '1.2.3.4.5', ' 1.2.3.4', 'a.b.c.d'])
      expect(parseIPv4(bad), bad).toBeNull();
  });

  it('agrees with the WHATWG URL host serializer on 5,000 random addresses (mapped ones excepted)', () => {
    // URL canonicalises like RFC 5952 but prints IPv4-mapped addresses in hex and keeps brackets.
    let seed = 1;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 16;
    };
    for (let i = 0; i < 5_000; i++) {
      const b = Buffer.alloc(16);
      // Mostly zero groups so that runs of every length occur.
      for (let g = 0; g < 8; g++) b.writeUInt16BE(rnd() % 3 === 0 ? rnd() : 0, g * 2);
      const ours = formatIPv6(b);
      expect(parseIPv6(ours)).toEqual(b);
      if (ours.startsWith('::ffff:') && ours.includes('.')) continue;
      expect(ours).toBe(new URL(`http://[${ours}]`).hostname.slice(1, -1));
    }
  });
});

describe('encodeHep3 / decodeHep3 round trip', () => {
  const variants: [string, Partial<CaptureEvent>, string | undefined][] = [
    ['IPv4 minimal', {}, undefined],
    ['IPv4 with auth key', {}, 'secret'],
    [
      'IPv4 with vlan, correlation id, node name and auth key',
      { vlan: 4094, correlationId: 'a84b4c76e66710@pc33.atlanta.com', nodeName: 'hv1-mirror' },
      'k€y',
    ],
    ['IPv4 TCP', { ipProtocol: 6, transport: 'tcp', srcPort: 40123, dstPort: 5060 }, undefined],
    [
      'IPv6 minimal',
      { ipFamily: 6, srcIp: '2001:db8::1', dstIp: 'fe80::21a:a0ff:fe07:32e0', timestampNs: 5n },
      undefined,
    ],
    [
      'IPv6 with everything',
      {
        ipFamily: 6,
        srcIp: '::ffff:192.0.2.1',
        dstIp: '2001:db8:0:1:1:1:1:1',
        vlan: 0,
        correlationId: 'cid\xe9-latin1',
        nodeName: 'nœud',
        captureId: 0xffffffff,
        srcPort: 0,
        dstPort: 65535,
      },
      'secret',
    ],
    ['SCTP', { ipProtocol: 132, transport: 'sctp' }, undefined],
    ['empty payload, RTCP JSON type', { payload: Buffer.alloc(0), protoType: 5 }, undefined],
    ['epoch 0', { timestampNs: 0n }, undefined],
    ['last representable second', { timestampNs: 0xffffffffn * 1_000_000_000n + 999_999_999n }, undefined],
  ];
  for (const [name, over, authKey] of variants) {
    it(name, () => {
      const e = event(over);
      const frame = encodeHep3(e, authKey ? { authKey } : undefined);
      expect(frame.readUInt16BE(4)).toBe(frame.length);
      expect(hep3FrameLength(frame, 0, frame.length)).toBe(frame.length);
      const r = mustDecode(frame);
      expect(r.event).toEqual(expectedAfterRoundTrip(e));
      expect(r.authKey).toBe(authKey ?? null);
      expect(r.keepAlive).toBe(false);
      expect(r.unknownChunks).toBe(0);
    });
  }

  it('keeps microseconds and drops the sub-microsecond part', () => {
    const r = mustDecode(encodeHep3(event({ timestampNs: 1_700_000_000_000_000_999n })));
    expect(r.event.timestampNs).toBe(1_700_000_000_000_000_000n);
  });

  it('ws/wss/tls come back as their IP protocol (HEP has no field for them)', () => {
    const r = mustDecode(encodeHep3(event({ ipProtocol: 6, transport: 'ws' })));
    expect(r.event.transport).toBe('tcp');
  });

  it('decoded payloads are copies', () => {
    const frame = encodeHep3(event());
    const r = mustDecode(frame);
    frame.fill(0);
    expect(r.event.payload.toString()).toBe('OPTIONS sip:x SIP/2.0\r\n\r\n');
  });

  it('refuses an oversize event with a RangeError naming the Call-ID', () => {
    const big = event({ correlationId: 'huge-call@example', payload: Buffer.alloc(65536) });
    expect(() => encodeHep3(big)).toThrow(RangeError);
    expect(() => encodeHep3(big)).toThrow(/huge-call@example.*65535/);
    // Without a correlation id the parsed SIP Call-ID is named.
    const viaSip = { ...big, correlationId: '', sip: { callId: 'from-sip@x' } } as unknown as CaptureEvent;
    expect(() => encodeHep3(viaSip)).toThrow(/from-sip@x/);
    // The largest payload that fits gives a frame of exactly 65,535 bytes.
    const fixed = encodeHep3(event({ payload: Buffer.alloc(0) })).length;
    const max = encodeHep3(event({ payload: Buffer.alloc(HEP3_MAX_FRAME - fixed) }));
    expect(max.length).toBe(HEP3_MAX_FRAME);
    expect(mustDecode(max).event.payload.length).toBe(HEP3_MAX_FRAME - fixed);
    expect(() => encodeHep3(event({ payload: Buffer.alloc(HEP3_MAX_FRAME - fixed + 1) }))).toThrow(
      RangeError,
    );
  });

  it('refuses fields that do not fit their chunk', () => {
    const bad: Partial<CaptureEvent>[] = [
      { srcIp: '10.0.0.256' },
      { dstIp: '2001:db8::1' },
      { ipFamily: 6 },
      { srcPort: 65536 },
      { dstPort: -1 },
      { vlan: 4096 },
      { captureId: 2 ** 32 },
      { protoType: 256 },
      { timestampNs: -1n },
      { timestampNs: 2n ** 32n * 1_000_000_000n },
      { ipFamily: 5 as 4 },
    ];
    for (const over of bad) expect(() => encodeHep3(event({ correlationId: 'c1', ...over }))).toThrow(/c1/);
  });
});

describe('hand-assembled frames', () => {
  // Every byte written out from the HEP3 spec: "HEP3", u16 total length, then chunks of
  // vendor u16, type u16, length u16 (header included), value, all big-endian.
  const payload = 'OPTIONS sip:x SIP/2.0\r\n\r\n'; // 25 bytes
  const v4Frame = Buffer.concat([
    hex('48455033'), // "HEP3"
    hex('00a8'), // total length 168
    hex('0000 0001 0007 02'), // IP family: AF_INET
    hex('0000 0002 0007 11'), // IP protocol: 17 UDP
    hex('0000 0007 0008 13c4'), // source port 5060
    hex('0000 0008 0008 13d8'), // destination port 5080
    hex('0000 0009 000a 6553f100'), // seconds 1,700,000,000
    hex('0000 000a 000a 0001e240'), // microseconds 123,456
    hex('0000 000b 0007 01'), // protocol type 1 SIP
    hex('0000 000c 000a 000007d1'), // capture agent id 2001
    hex('0000 0003 000a 0a000001'), // IPv4 source 10.0.0.1
    hex('0000 0004 000a c0a80114'), // IPv4 destination 192.168.1.20
    hex('0000 000e 000c 736563726574'), // auth key "secret"
    hex('0000 000f 001f'), // payload, 6 + 25 bytes
    Buffer.from(payload, 'latin1'),
    hex('0000 0011 000e 61626340686f7374'), // correlation id "abc@host"
    hex('0000 0012 0008 0064'), // VLAN 100
    hex('0000 0013 000a 70627831'), // node name "pbx1"
  ]);
  const v4Event = event({
    timestampNs: 1_700_000_000_123_456_789n,
    correlationId: 'abc@host',
    vlan: 100,
    nodeName: 'pbx1',
  });

  const v6Frame = Buffer.concat([
    hex('48455033 007c'), // "HEP3", total length 124
    hex('0000 0001 0007 0a'), // IP family: AF_INET6 (10)
    hex('0000 0002 0007 06'), // IP protocol: 6 TCP
    hex('0000 0007 0008 13c5'), // source port 5061
    hex('0000 0008 0008 13c5'), // destination port 5061
    hex('0000 0009 000a 00000001'), // seconds 1
    hex('0000 000a 000a 00000000'), // microseconds 0
    hex('0000 000b 0007 01'), // protocol type 1 SIP
    hex('0000 000c 000a 00000000'), // capture agent id 0
    hex('0000 0005 0016 20010db8000000000000000000000001'), // IPv6 source 2001:db8::1
    hex('0000 0006 0016 20010db8000000000000000000000002'), // IPv6 destination 2001:db8::2
    hex('0000 000f 0007 78'), // payload "x"
  ]);
  const v6Event = event({
    timestampNs: 1_000_000_000n,
    ipFamily: 6,
    ipProtocol: 6,
    transport: 'tcp',
    srcIp: '2001:db8::1',
    dstIp: '2001:db8::2',
    srcPort: 5061,
    dstPort: 5061,
    captureId: 0,
    payload: Buffer.from('x'),
  });

  it('the lengths written by hand add up', () => {
    expect(v4Frame.length).toBe(0xa8);
    expect(v6Frame.length).toBe(0x7c);
  });

  it('IPv4 frame decodes to the event, and the encoder produces exactly these bytes', () => {
    const r = mustDecode(v4Frame);
    expect(r.event).toEqual(expectedAfterRoundTrip(v4Event));
    expect(r.authKey).toBe('secret');
    expect(encodeHep3(v4Event, { authKey: 'secret' }).equals(v4Frame)).toBe(true);
  });

  it('IPv6 frame decodes to the event, and the encoder produces exactly these bytes', () => {
    const r = mustDecode(v6Frame);
    expect(r.event).toEqual(v6Event);
    expect(r.authKey).toBeNull();
    expect(encodeHep3(v6Event).equals(v6Frame)).toBe(true);
  });

  it('decodes chunks in any order, with vendor chunks and unknown generic types skipped and counted', () => {
    const f = Buffer.concat([
      hex('48455033 0000'),
      hex('0000 000f 0008 6869'), // payload "hi" first
      hex('0025 0001 000a deadbeef'), // vendor 0x25, type 1: not ours
      hex('0000 0008 0008 0050'), // destination port 80
      hex('0000 0063 0006'), // generic type 99, empty value
      hex('0000 0004 000a 7f000001'), // IPv4 destination (family chunk absent)
      hex('0000 000d 0008 000f'), // keep-alive timer 15 s
      hex('0000 0011 000a 61620000'), // correlation id "ab" + two NULs (C terminators)
    ]);
    f.writeUInt16BE(f.length, 4);
    const r = mustDecode(f);
    expect(r.unknownChunks).toBe(2);
    expect(r.keepAlive).toBe(true);
    expect(r.event).toEqual({
      timestampNs: 0n,
      ipFamily: 4,
      ipProtocol: 0,
      transport: 'udp',
      srcIp: '0.0.0.0',
      dstIp: '127.0.0.1',
      srcPort: 0,
      dstPort: 80,
      vlan: null,
      protoType: 0,
      captureId: 0,
      nodeName: '',
      correlationId: 'ab',
      payload: Buffer.from('hi'),
      retransmission: false,
    });
  });

  it('infers IPv6 from address chunks when the family chunk is missing', () => {
    const f = Buffer.concat([hex('48455033 001c'), hex('0000 0005 0016 fe800000000000000000000000000001')]);
    expect(mustDecode(f).event).toMatchObject({
      ipFamily: 6,
      srcIp: 'fe80::1',
      dstIp: '::',
      payload: Buffer.alloc(0),
    });
  });

  it('inflates compressed payloads (zlib and gzip) and counts failures', () => {
    const sip = Buffer.from('INVITE sip:bob@example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n');
    for (const z of [deflateSync(sip), gzipSync(sip)]) {
      const f = Buffer.concat([hex('48455033 0000'), hex('0000 0010'), Buffer.alloc(2), z]);
      f.writeUInt16BE(6 + z.length, 10);
      f.writeUInt16BE(f.length, 4);
      expect(mustDecode(f).event.payload.equals(sip)).toBe(true);
    }
    const broken = Buffer.concat([hex('48455033 0010'), hex('0000 0010 000a 78deadbe')]);
    const r = decodeHep3(broken);
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.error.startsWith('inflate:')).toBe(true);
    // A decompression bomb stops at the cap instead of eating memory.
    const bomb = deflateSync(Buffer.alloc(8 << 20));
    const fb = Buffer.concat([hex('48455033 0000 0000 0010'), Buffer.alloc(2), bomb]);
    fb.writeUInt16BE(6 + bomb.length, 10);
    fb.writeUInt16BE(fb.length, 4);
    const rb = decodeHep3(fb);
    expect(rb.ok === false && rb.error.startsWith('inflate:')).toBe(true);
  });

  it('rejects hostile frames with a reason, never an exception', () => {
    const bad: [string, Buffer, RegExp][] = [
      ['too short', hex('484550'), /too short/],
      ['wrong magic', hex('48455032 0006'), /magic/],
      ['length below 6', hex('48455033 0005'), /below 6/],
      ['length past the data', hex('48455033 0010 0000 0001 0007 02'), /exceeds/],
      ['chunk length below 6', hex('48455033 000d 0000 0001 0005 02'), /below 6/],
      ['chunk past the frame', hex('48455033 000d 0000 0001 0008 02'), /past the frame/],
      ['truncated chunk header', hex('48455033 000a 0000 0001'), /truncated/],
      [
        'IPv4 chunk of 16 bytes',
        Buffer.concat([hex('48455033 001c 0000 0003 0016'), Buffer.alloc(16)]),
        /expected 4/,
      ],
      ['IPv6 chunk of 4 bytes', hex('48455033 0010 0000 0005 000a 01020304'), /expected 16/],
      ['port chunk of 4 bytes', hex('48455033 0010 0000 0007 000a 01020304'), /expected 2/],
      [
        'IPv4 family with an IPv6 address',
        Buffer.concat([hex('48455033 0023 0000 0001 0007 02 0000 0005 0016'), Buffer.alloc(16)]),
        /address chunks/,
      ],
      ['unknown family', hex('48455033 000d 0000 0001 0007 07'), /family/],
    ];
    for (const [name, f, why] of bad) {
      const r = decodeHep3(f);
      expect(r.ok, name).toBe(false);
      if (!r.ok) expect(r.error, name).toMatch(why);
    }
    expect(decodeHep3(v4Frame, 10, 5).ok).toBe(false);
    expect(decodeHep3(v4Frame, 0, v4Frame.length + 1).ok).toBe(false);
    expect(decodeHep3(v4Frame, -1).ok).toBe(false);
  });

  it('decodes a frame inside a larger buffer and ignores bytes after it', () => {
    const b = Buffer.concat([hex('ffff'), v6Frame, hex('48455033')]);
    expect(mustDecode(b, 2).event).toEqual(v6Event);
    expect(mustDecode(b, 2, 2 + v6Frame.length).event).toEqual(v6Event);
  });
});

describe('hep3FrameLength (HEP over TCP)', () => {
  it('splits a byte stream into frames at any segmentation', () => {
    const frames = [
      encodeHep3(event({ correlationId: 'a' })),
      encodeHep3(event({ ipFamily: 6, srcIp: '::1', dstIp: '::2', correlationId: 'b' })),
      encodeHep3(event({ payload: Buffer.alloc(3000, 0x41), correlationId: 'c' })),
    ];
    const stream = Buffer.concat(frames);
    for (let seg = 1; seg <= 64; seg++) {
      const got: string[] = [];
      let pending = Buffer.alloc(0);
      for (let o = 0; o < stream.length; o += seg) {
        pending = Buffer.concat([pending, stream.subarray(o, o + seg)]);
        for (;;) {
          const n = hep3FrameLength(pending, 0, pending.length);
          expect(n).not.toBe(-2);
          if (n < 0) break;
          got.push(mustDecode(pending, 0, n).event.correlationId);
          pending = pending.subarray(n);
        }
      }
      expect(got).toEqual(['a', 'b', 'c']);
    }
  });

  it('says -1 for a prefix, -2 for what is not HEP3', () => {
    expect(hep3FrameLength(hex(''), 0, 0)).toBe(-1);
    expect(hep3FrameLength(hex('4845'), 0, 2)).toBe(-1);
    expect(hep3FrameLength(hex('48455033 00'), 0, 5)).toBe(-1);
    expect(hep3FrameLength(hex('48455033 0100'), 0, 6)).toBe(-1);
    expect(hep3FrameLength(hex('48455032'), 0, 4)).toBe(-2);
    expect(hep3FrameLength(Buffer.from('INVITE sip:'), 0, 11)).toBe(-2);
    expect(hep3FrameLength(hex('48455033 0003'), 0, 6)).toBe(-2);
    expect(hep3FrameLength(hex('48455033 0006'), 0, 6)).toBe(6);
    expect(hep3FrameLength(hex('00 48455033 0006'), 1, 7)).toBe(6);
  });
});

describe('fuzz', () => {
  it('100,000 mutated frames: decode and hep3FrameLength never throw, and agree', () => {
    const seeds = [
      encodeHep3(
        event({
          vlan: 7,
          correlationId: 'fuzz@x',
          nodeName: 'n',
          payload: Buffer.from('SIP/2.0 200 OK\r\n\r\n'),
        }),
        {
          authKey: 'k',
        },
      ),
      encodeHep3(event({ ipFamily: 6, srcIp: '2001:db8::1', dstIp: '::1', payload: Buffer.from('BYE') })),
      Buffer.concat([hex('48455033 0014 0000 000d 0008 001e 0000 0010 0006')]), // keep-alive + empty z
    ];
    let seed = 0x1234567;
    const rnd = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    let ok = 0;
    for (let i = 0; i < 100_000; i++) {
      const base = seeds[i % seeds.length];
      let b = Buffer.from(base);
      switch (rnd(5)) {
        case 0: // flip a few bytes anywhere
          for (let k = 1 + rnd(4); k > 0; k--) b[rnd(b.length)] = rnd(256);
          break;
        case 1: // hostile length fields in a chunk header or the frame header
          b.writeUInt16BE(
            rnd(4) === 0 ? rnd(8) : rnd(65536),
            (rnd(2) === 0 ? 4 : 6 + 4 + 6 * rnd(6)) % (b.length - 1),
          );
          break;
        case 2: // truncate (keeping or not the original length field)
          b = b.subarray(0, rnd(b.length + 1));
          if (rnd(2) && b.length >= 6) b.writeUInt16BE(b.length, 4);
          break;
        case 3: // random garbage behind a valid header
          b = Buffer.concat([hex('48455033'), Buffer.from(Array.from({ length: rnd(80) }, () => rnd(256)))]);
          break;
        default: // splice a foreign chunk in and fix the frame length
          b = Buffer.concat([b, Buffer.from(Array.from({ length: rnd(24) }, () => rnd(256)))]);
          if (b.length <= 0xffff) b.writeUInt16BE(b.length, 4);
      }
      const r = decodeHep3(b);
      const n = hep3FrameLength(b, 0, b.length);
      if (r.ok) {
        ok++;
        expect(n).toBe(b.readUInt16BE(4));
        expect(typeof r.event.srcIp).toBe('string');
      }
    }
    // The mutations must leave a good share decodable, or the fuzz only tests the first check.
    expect(ok).toBeGreaterThan(10_000);
  });
});

// ---------------------------------------------------------------------------------------------
// Cross-check with sngrep (Debian package sngrep 1.6: -L listens for HEP, -H sends it).

const work = mkdtempSync(join(tmpdir(), 'callscope-hep-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Waits until some process has a UDP socket bound on 127.0.0.1:port (/proc/net/udp). */
async function waitUdpBound(port: number, ms: number): Promise<boolean> {
  const needle = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const until = Date.now() + ms; Date.now() < until; await sleep(50)) {
    if (readFileSync('/proc/net/udp', 'utf8').includes(needle)) return true;
  }
  return false;
}

function tsharkFields(file: string, fields: string[], filter?: string): string[][] {
  const out = execFileSync(
    'tshark',
    ['-r', file, ...(filter ? ['-Y', filter] : []), '-T', 'fields', ...fields.flatMap((f) => ['-e', f])],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  ).trim();
  return out ? out.split('\n').map((l) => l.split('\t')) : [];
}

function sipPayload(callId: string): Buffer {
  return Buffer.from(
    'OPTIONS sip:bob@example.com SIP/2.0\r\n' +
      `Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-${callId}\r\n` +
      'From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n' +
      `Call-ID: ${callId}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`,
  );
}

needs(SNGREP_HEP, 'tshark').describe('sngrep cross-check', () => {
  it('sngrep -L accepts our frames (checking the auth key) and saves the SIP messages', async () => {
    const port = await freeUdpPort();
    const out = join(work, 'sngrep-listen.pcap');
    const conf = join(work, 'sngrep.conf');
    writeFileSync(conf, 'set eep.listen.pass secret\n');
    // -L alone opens no capture device: only what arrives as HEP is saved.
    const child = spawn('sngrep', ['-f', conf, '-N', '-q', '-L', `udp:127.0.0.1:${port}`, '-O', out], {
      stdio: 'ignore',
    });
    children.push(child);
    expect(await waitUdpBound(port, 5000)).toBe(true);

    const tag = `cs${process.pid}x${port}`;
    const sends: { e: CaptureEvent; key?: string; kept: boolean }[] = [
      {
        // With callscope's VM chunks (vendor 0x0ca1), which sngrep must skip.
        e: {
          ...event({ correlationId: `${tag}-v4`, vlan: 42, nodeName: 'hv1', srcPort: 5062, dstPort: 5063 }),
          srcVm: '9101',
          dstVm: 'vm "b"',
        },
        key: 'secret',
        kept: true,
      },
      {
        e: event({ correlationId: `${tag}-wrongkey`, timestampNs: 1_700_000_001_000_000_000n }),
        key: 'wrong',
        kept: false,
      },
      { e: event({ correlationId: `${tag}-nokey`, timestampNs: 1_700_000_002_000_000_000n }), kept: false },
      {
        e: event({
          correlationId: `${tag}-v6`,
          ipFamily: 6,
          srcIp: '2001:db8::10',
          dstIp: '2001:db8::20',
          timestampNs: 1_700_000_003_000_001_999n,
          srcPort: 5070,
          dstPort: 5071,
        }),
        key: 'secret',
        kept: true,
      },
    ];
    const sock = dgram.createSocket('udp4');
    for (const s of sends) {
      s.e.payload = sipPayload(s.e.correlationId);
      const frame = encodeHep3(s.e, s.key ? { authKey: s.key } : undefined);
      await new Promise<void>((r, j) => sock.send(frame, port, '127.0.0.1', (err) => (err ? j(err) : r())));
    }
    sock.close();

    // sngrep flushes each packet to the pcap as it stores it.
    const kept = sends.filter((s) => s.kept);
    let rows: string[][] = [];
    for (const until = Date.now() + 5000; Date.now() < until; await sleep(100)) {
      if (existsSync(out) && statSync(out).size > 24) {
        rows = tsharkFields(
          out,
          [
            'sip.Call-ID',
            'frame.time_epoch',
            'ip.src',
            'ip.dst',
            'udp.srcport',
            'udp.dstport',
            'udp.payload',
          ],
          `sip.Call-ID contains "${tag}"`,
        );
        if (rows.length >= kept.length) break;
      }
    }
    child.kill('SIGTERM');

    expect(rows.map((r) => r[0])).toEqual(kept.map((s) => s.e.correlationId));
    for (const [i, s] of kept.entries()) {
      const [, epoch, src, dst, sport, dport, payloadHex] = rows[i];
      const us = (s.e.timestampNs / 1000n).toString();
      expect(epoch.replace('.', '')).toBe(`${us}000`); // µs precision, written as ns digits
      expect(Number(sport)).toBe(s.e.srcPort);
      expect(Number(dport)).toBe(s.e.dstPort);
      expect(Buffer.from(payloadHex, 'hex').equals(s.e.payload)).toBe(true);
      if (s.e.ipFamily === 4) {
        expect([src, dst]).toEqual([s.e.srcIp, s.e.dstIp]);
      } else {
        // sngrep 1.6 writes HEP-received IPv6 messages behind a made-up IPv4 header (0.0.0.0), also
        // for frames its own -H sender produced, so only payload, ports and time are comparable.
        expect([src, dst]).toEqual(['0.0.0.0', '0.0.0.0']);
      }
    }
  });

  // Time tolerance: for a fragmented datagram sngrep stamps the first fragment, tshark the last.
  const pcaps: [string, bigint][] = [
    [join(SHARED_DIR, 'pcaps', 'sip_ipv6_udp.pcap'), 0n],
    [join(SHARED_DIR, 'pcaps', 'ipv6frag.pcap'), 1_000_000n],
  ];
  const shared = needs(SHARED_CAPTURES);
  for (const [pcap, toleranceNs] of pcaps) {
    shared.it(`we decode what sngrep -H sends for ${pcap.split('/').at(-1)}`, async () => {
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
      const port = sock.address().port;
      const frames: Buffer[] = [];
      sock.on('message', (m) => frames.push(m));
      const child = spawn('sngrep', ['-N', '-q', '-I', pcap, '-H', `udp:127.0.0.1:${port}`], {
        stdio: 'ignore',
      });
      children.push(child);
      await new Promise((r) => child.on('exit', r));
      await sleep(200);
      sock.close();

      const toNs = (epoch: string) => {
        const [sec, frac = ''] = epoch.split('.');
        return BigInt(sec) * 1_000_000_000n + BigInt(frac.padEnd(9, '0').slice(0, 9));
      };
      const want = tsharkFields(
        pcap,
        ['frame.time_epoch', 'ipv6.src', 'ipv6.dst', 'udp.srcport', 'udp.dstport', 'sip.CSeq', 'sip.Call-ID'],
        'sip',
      ).map(([t, ...rest]) => ({ ns: toNs(t), key: rest.join('|') }));
      expect(frames.length).toBeGreaterThan(0);
      const matched = new Set<number>();
      for (const f of frames) {
        const e = mustDecode(f).event;
        const head = e.payload.toString('latin1');
        const header = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'mi').exec(head)?.[1]?.trim() ?? '';
        const key = [e.srcIp, e.dstIp, e.srcPort, e.dstPort, header('CSeq'), header('Call-ID')].join('|');
        const i = want.findIndex((w) => {
          const d = w.ns - e.timestampNs;
          return w.key === key && (d < 0n ? -d : d) <= toleranceNs;
        });
        expect(i, `${e.timestampNs} ${key}`).toBeGreaterThanOrEqual(0);
        matched.add(i);
      }
      // One HEP frame per SIP message tshark shows, each matched once.
      expect(frames.length).toBe(want.length);
      expect(matched.size).toBe(frames.length);
      for (const f of frames) {
        const r = mustDecode(f);
        expect(r.event.ipFamily).toBe(6);
        expect(r.event.protoType).toBe(1);
        // sngrep 1.6 puts its capture id (eep.send.id, default 2002) into the u32 chunk with a
        // 16-bit byte swap: 2002 = 0x07d2 arrives as bytes 07 d2 00 00.
        expect(r.event.captureId).toBe(0x07d20000);
      }
    });
  }
});
