/**
 * Robustness: 200k random and mutated inputs (bit flips, interesting bytes, truncations, deletions,
 * duplications, splices, token soup, pure noise) through every entry point. Nothing may throw, the
 * parser's own safety net must never fire ("internal error"), and results must stay inside their bounds.
 * Seeded, so a failure is reproducible from the printed iteration; SIP_FUZZ_SEED and SIP_FUZZ_N explore more.
 */
import { describe, expect, it } from 'vitest';
import { looksLikeSip } from './detect.js';
import { sipMessageLength, skipKeepalive } from './framing.js';
import { MAX_HEADERS, SipParser } from './parser.js';

const parser = new SipParser();

const CRLF = '\r\n';
const sdp = [
  'v=0',
  'o=- 20518 0 IN IP6 2001:db8::5',
  's=-',
  'c=IN IP4 192.0.2.5/127/2',
  't=0 0',
  'm=audio 49170 RTP/AVP 0 8 101',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=ptime:20',
  'a=sendrecv',
  'm=image 40000 udptl t38',
  '',
].join(CRLF);

function msg(lines: string[], body = ''): string {
  return [...lines, `Content-Length: ${body.length}`, '', body].join(CRLF);
}

const SEEDS = [
  msg(
    [
      'INVITE sip:bob@[2001:db8::1]:5060;transport=udp SIP/2.0',
      'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport, SIP/2.0/TCP [2001:db8::2];branch=z9hG4bK2;received=1.2.3.4',
      'From: "A \\"B\\"" <sip:a%40x@example.com;user=phone>;tag=abc',
      'To: Bob <sip:bob@example.com>',
      'Call-ID: fuzz@192.0.2.1',
      'CSeq: 1 INVITE',
      'Contact: <sip:a@192.0.2.1>;expires=60, "x,y" <sips:b@h?Replaces=abc%3Bto-tag%3D1>',
      'P-Asserted-Identity: <tel:+15551234;cpc=ordinary>',
      'Reason: Q.850;cause=16;text="Normal, \\"call\\" clearing"',
      'X-CID: corr-1',
      'Content-Type: application/sdp',
    ],
    sdp,
  ),
  msg([
    'SIP/2.0 200 OK',
    'v: SIP/2.0/WSS edge;branch=z9hG4bK3',
    'f: <sip:a@h>;tag=1',
    't: <sip:b@h>;tag=2',
    'i: c@h',
    'CSeq: 2 BYE',
    'Server: x',
  ]),
  msg(
    [
      'MESSAGE sip:x@h SIP/2.0',
      'Via: SIP/2.0/UDP h;branch=z9hG4bK4',
      'Call-ID: m@h',
      'CSeq: 1 MESSAGE',
      'Content-Type: multipart/mixed; boundary="b1"',
    ],
    `--b1\r\nContent-Type: application/sdp\r\n\r\n${sdp}\r\n--b1\r\nContent-Type: multipart/alternative;boundary=b2\r\n\r\n--b2\r\nc: text/plain\r\n\r\nhi\r\n--b2--\r\n--b1--\r\n`,
  ),
  [
    'REGISTER sip:example.com SIP/2.0',
    'Via  : SIP  /   2.0',
    ' /UDP',
    '    192.0.2.2;branch=390skdjuw',
    'from   : "J \\"R\\""       <sip:j@example.com>',
    '  ;',
    '  tag = 98asjd8',
    'Contact: *',
    'Max-Forwards: 0068',
    '',
    '',
  ].join(CRLF),
  'SIP/2.0 100 \nCall-ID: lf@x\nCSeq: 9 INVITE\n\n',
];

/** xorshift32: small, seedable, good enough to spread mutations. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

const INTERESTING = [
  13, 10, 32, 9, 58, 59, 44, 34, 92, 60, 62, 64, 91, 93, 37, 61, 47, 63, 38, 0, 0xff, 0x80, 0x2d,
];
const TOKENS = [
  '\r\n',
  '\n',
  ' ',
  ':',
  ';',
  ',',
  '"',
  '\\',
  '<',
  '>',
  '[',
  ']',
  '%',
  '%0',
  'sip:',
  '@',
  '=',
  'tag',
  'v=',
  'm=',
  '--b1',
  'Content-Length: 99999',
  'l: -1',
  '\r\n\r\n',
  ' \t',
  '::',
  '/',
];

function mutate(r: (n: number) => number): Buffer {
  const seed = Buffer.from(SEEDS[r(SEEDS.length)], 'latin1');
  const kind = r(9);
  switch (kind) {
    case 0: {
      const b = Buffer.from(seed);
      for (let k = 1 + r(8); k > 0; k--) b[r(b.length)] ^= 1 << r(8);
      return b;
    }
    case 1: {
      const b = Buffer.from(seed);
      for (let k = 1 + r(6); k > 0; k--) b[r(b.length)] = INTERESTING[r(INTERESTING.length)];
      return b;
    }
    case 2:
      return seed.subarray(0, r(seed.length + 1));
    case 3: {
      const a = r(seed.length);
      const e = Math.min(seed.length, a + 1 + r(64));
      return Buffer.concat([seed.subarray(0, a), seed.subarray(e)]);
    }
    case 4: {
      const a = r(seed.length);
      const chunk = seed.subarray(a, Math.min(seed.length, a + 1 + r(200)));
      const at = r(seed.length);
      const copies = Array.from({ length: 1 + r(20) }, () => chunk);
      return Buffer.concat([seed.subarray(0, at), ...copies, seed.subarray(at)]);
    }
    case 5: {
      const other = Buffer.from(SEEDS[r(SEEDS.length)], 'latin1');
      return Buffer.concat([seed.subarray(0, r(seed.length)), other.subarray(r(other.length))]);
    }
    case 6: {
      let s = seed.toString('latin1');
      for (let k = 1 + r(10); k > 0; k--) {
        const at = r(s.length + 1);
        s = s.slice(0, at) + TOKENS[r(TOKENS.length)] + s.slice(at);
      }
      return Buffer.from(s, 'latin1');
    }
    case 7: {
      const b = Buffer.alloc(r(1500));
      for (let i = 0; i < b.length; i++) b[i] = r(256);
      return b;
    }
    default: {
      // A valid start line followed by noise: gets past detection into the header parser.
      const noise = Buffer.alloc(r(1200));
      for (let i = 0; i < noise.length; i++)
        noise[i] = r(4) === 0 ? INTERESTING[r(INTERESTING.length)] : 32 + r(95);
      return Buffer.concat([
        Buffer.from(r(2) ? 'INVITE sip:a@b SIP/2.0\r\n' : 'SIP/2.0 180 Ringing\r\n'),
        noise,
      ]);
    }
  }
}

function check(buf: Buffer, off: number, end: number, iteration: number): void {
  for (const transportIsStream of [false, true]) {
    const r = parser.parse(buf, off, end, { transportIsStream });
    if (!r.ok) {
      if (r.error.startsWith('internal')) throw new Error(`iteration ${iteration}: ${r.error}`);
      continue;
    }
    const m = r.message;
    // The lazily decoded members too: they must not throw or hit the safety net either.
    void [m.requestUri, m.headers, m.contact, m.pAssertedIdentity, m.bodyParts, m.sdp];
    if (m.warnings.some((w) => w.startsWith('internal')))
      throw new Error(`iteration ${iteration}: ${m.warnings}`);
    const bodyStart = m.body.byteOffset - buf.byteOffset;
    if (
      m.body.length > 0 &&
      (m.body.buffer !== buf.buffer || bodyStart < off || bodyStart + m.body.length > end)
    ) {
      throw new Error(`iteration ${iteration}: body outside the input range`);
    }
    if (m.headers.length > MAX_HEADERS || m.warnings.length > 32)
      throw new Error(`iteration ${iteration}: unbounded result`);
    if (m.statusCode !== null && (m.statusCode < 100 || m.statusCode > 699))
      throw new Error(`iteration ${iteration}: status`);
    if (m.isRequest !== (m.method !== null))
      throw new Error(`iteration ${iteration}: request/method mismatch`);
  }
  looksLikeSip(buf, off, end);
  const len = sipMessageLength(buf, off, end);
  if (len < -2 || len === 0 || len > end - off)
    throw new Error(`iteration ${iteration}: framing length ${len}`);
  const k = skipKeepalive(buf, off, end);
  if (k < off || k > end) throw new Error(`iteration ${iteration}: keepalive offset ${k}`);
}

describe('fuzz', () => {
  it('200k random and mutated inputs: no throw, bounded results', () => {
    const r = rng(Number(process.env.SIP_FUZZ_SEED ?? 0x5eed));
    const N = Number(process.env.SIP_FUZZ_N ?? 200_000);
    let parsed = 0;
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const buf = mutate(r);
      let off = 0;
      let end = buf.length;
      if (r(8) === 0 && buf.length > 2) {
        // Sub-ranges of a larger buffer: nothing outside [off, end) may be read or returned.
        off = r(buf.length >> 1);
        end = off + r(buf.length - off + 1);
      }
      check(buf, off, end, i);
      if (parser.parse(buf, off, end).ok) parsed++;
    }
    console.log(`fuzz: ${N} inputs, ${parsed} parsed as SIP, ${Math.round(performance.now() - t0)} ms`);
    expect(parsed).toBeGreaterThan(N / 10); // the mutations must keep exercising the deep paths
  });
});
