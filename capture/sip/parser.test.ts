import { describe, expect, it } from 'vitest';
import type { SipMessage } from '../../core/sip-message.js';
import { MAX_HEADER_LINE, MAX_HEADERS, SipParser } from './parser.js';

const parser = new SipParser();

const CRLF = '\r\n';

/** Parses and reads every lazily decoded member, so `warnings` holds the warnings of all parts. */
function parseBuf(buf: Buffer, opts?: { transportIsStream?: boolean }): SipMessage {
  const r = parser.parse(buf, 0, buf.length, opts);
  if (!r.ok) throw new Error(r.error);
  const m = r.message;
  void [m.requestUri, m.headers, m.contact, m.pAssertedIdentity, m.bodyParts, m.sdp];
  return m;
}

const parse = (raw: string, opts?: { transportIsStream?: boolean }) =>
  parseBuf(Buffer.from(raw, 'latin1'), opts);

function message(lines: string[], body = ''): string {
  return [...lines, `Content-Length: ${Buffer.byteLength(body, 'latin1')}`, '', body].join(CRLF);
}

const base = [
  'INVITE sip:bob@biloxi.example.com SIP/2.0',
  'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds',
  'Max-Forwards: 70',
  'To: Bob <sip:bob@biloxi.example.com>',
  'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
  'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
  'CSeq: 314159 INVITE',
];

describe('headers', () => {
  it('expands every compact form to its canonical name', () => {
    const compact: Array<[string, string]> = [
      ['i', 'Call-ID'],
      ['f', 'From'],
      ['t', 'To'],
      ['v', 'Via'],
      ['m', 'Contact'],
      ['c', 'Content-Type'],
      ['k', 'Supported'],
      ['s', 'Subject'],
      ['e', 'Content-Encoding'],
      ['o', 'Event'],
      ['u', 'Allow-Events'],
      ['r', 'Refer-To'],
      ['b', 'Referred-By'],
      ['x', 'Session-Expires'],
      ['a', 'Accept-Contact'],
      ['j', 'Reject-Contact'],
      ['d', 'Request-Disposition'],
      ['y', 'Identity'],
      ['n', 'Identity-Info'],
    ];
    const values: Record<string, string> = {
      i: 'cid@host',
      f: '<sip:a@example.com>;tag=1',
      t: '<sip:b@example.com>',
      v: 'SIP/2.0/UDP h;branch=z9hG4bKx',
      m: '<sip:a@10.0.0.1>',
      c: 'text/plain',
    };
    const lines = ['NOTIFY sip:a@example.com SIP/2.0', 'CSeq: 1 NOTIFY'];
    compact.forEach(([c], k) => {
      lines.push(`${k % 2 === 0 ? c : c.toUpperCase()}: ${values[c] ?? `value-${c}`}`);
    });
    const m = parse(`${lines.join(CRLF)}${CRLF}L: 0${CRLF}${CRLF}`);
    expect(m.headers.slice(1).map(([n]) => n)).toEqual([...compact.map(([, n]) => n), 'Content-Length']);
    expect(m.callId).toBe('cid@host');
    expect(m.from?.tag).toBe('1');
    expect(m.to?.uri?.user).toBe('b');
    expect(m.via[0].branch).toBe('z9hG4bKx');
    expect(m.contact[0].uri?.host).toBe('10.0.0.1');
    expect(m.contentType).toBe('text/plain');
    expect(m.contentLength).toBe(0);
    expect(m.headers.find(([n]) => n === 'Event')?.[1]).toBe('value-o');
  });

  it('canonicalises long names case-insensitively and keeps unknown spellings', () => {
    const m = parse(
      message([
        'OPTIONS sip:x@example.com SIP/2.0',
        'CALL-ID: upper@x',
        'via: SIP/2.0/TCP h;branch=z9hG4bK1',
        'fRoM: <sip:a@example.com>;tag=t',
        'TO: <sip:b@example.com>',
        'cseq: 5 OPTIONS',
        'www-authenticate: Digest realm="x"',
        'X-My-Header: keep',
        'x-my-header: also keep',
      ]),
    );
    expect(m.headers.map(([n]) => n)).toEqual([
      'Call-ID',
      'Via',
      'From',
      'To',
      'CSeq',
      'WWW-Authenticate',
      'X-My-Header',
      'x-my-header',
      'Content-Length',
    ]);
    expect(m.callId).toBe('upper@x');
    expect(m.cseq).toEqual({ seq: 5, method: 'OPTIONS' });
  });

  it('joins folded lines with one space and tolerates LF-only messages', () => {
    const raw = [
      'SIP/2.0 180 Ringing',
      'Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1,',
      '\tSIP/2.0/UDP b.example.com;branch=z9hG4bK2',
      'Subject: first',
      '   second  ',
      ' third',
      'Call-ID: lf@x',
      'Content-Length: 0',
      '',
      '',
    ].join('\n');
    const m = parse(raw);
    expect(m.via.map((v) => v.host)).toEqual(['a.example.com', 'b.example.com']);
    expect(m.headers.find(([n]) => n === 'Subject')?.[1]).toBe('first second third');
    expect(m.callId).toBe('lf@x');
    expect(m.statusCode).toBe(180);
    expect(m.reasonPhrase).toBe('Ringing');
  });

  it('splits Via, Contact and P-Asserted-Identity lists, not commas inside quotes or <>', () => {
    const m = parse(
      message([
        ...base,
        'Via: SIP/2.0/TCP p1.example.com:5070;branch=z9hG4bKp1;received=203.0.113.5;rport=41000, SIP/2.0/TLS p2.example.com;branch=z9hG4bKp2;rport',
        'Contact: "Smith, John" <sip:john@10.0.0.2;transport=tcp>;expires=60, <sip:alt@10.0.0.3>;q=0.5',
        'Contact: sip:third@10.0.0.4',
        'P-Asserted-Identity: "Doe, Jane \\"JD\\"" <sip:+15551234@pbx.example.com;user=phone>, <tel:+15551234;cpc=ordinary>',
      ]),
    );
    expect(m.via.map((v) => [v.host, v.port, v.transport, v.branch, v.received, v.rport])).toEqual([
      ['pc33.atlanta.example.com', null, 'UDP', 'z9hG4bK776asdhds', null, null],
      ['p1.example.com', 5070, 'TCP', 'z9hG4bKp1', '203.0.113.5', 41000],
      ['p2.example.com', null, 'TLS', 'z9hG4bKp2', null, 0],
    ]);
    expect(m.contact.map((c) => [c.displayName, c.uri?.user, c.params])).toEqual([
      ['Smith, John', 'john', { expires: '60' }],
      [null, 'alt', { q: '0.5' }],
      [null, 'third', {}],
    ]);
    expect(m.pAssertedIdentity.map((p) => [p.displayName, p.uri?.scheme, p.uri?.user])).toEqual([
      ['Doe, Jane "JD"', 'sip', '+15551234'],
      [null, 'tel', '+15551234'],
    ]);
    expect(m.pAssertedIdentity[1].uri?.params).toEqual({ cpc: 'ordinary' });
  });

  it('extracts CSeq, Max-Forwards, User-Agent, Server, Content-Type', () => {
    const m = parse(
      message(
        [
          ...base,
          'User-Agent: Acme SoftPhone/2.1 (Linux)',
          'Server: should-also-be-read',
          'Content-Type: Application/SDP ; charset=utf-8',
        ],
        'v=0\r\n',
      ),
    );
    expect(m.cseq).toEqual({ seq: 314159, method: 'INVITE' });
    expect(m.maxForwards).toBe(70);
    expect(m.userAgent).toBe('Acme SoftPhone/2.1 (Linux)');
    expect(m.server).toBe('should-also-be-read');
    expect(m.contentType).toBe('application/sdp');
    expect(parse(message([...base.slice(0, 6), 'CSeq: 4294967295 INVITE'])).cseq?.seq).toBe(4294967295);
    expect(parse(message([...base.slice(0, 6), 'CSeq: 4294967296 INVITE'])).cseq).toBeNull();
  });

  it('reads Reason (RFC 3326), preferring the Q.850 cause', () => {
    const r = (v: string) => parse(message([...base, `Reason: ${v}`])).reason;
    expect(r('Q.850;cause=16;text="Normal call clearing"')).toEqual({
      protocol: 'Q.850',
      cause: 16,
      text: 'Normal call clearing',
    });
    expect(r('SIP;cause=200;text="Call completed elsewhere"')).toEqual({
      protocol: 'SIP',
      cause: 200,
      text: 'Call completed elsewhere',
    });
    expect(r('SIP ; cause=487, Q.850 ;cause=31;text="a \\"quoted\\", text; ok"')).toEqual({
      protocol: 'Q.850',
      cause: 31,
      text: 'a "quoted", text; ok',
    });
    expect(r('Q.850')).toEqual({ protocol: 'Q.850', cause: null, text: null });
    expect(r('Q.850;cause=abc')).toEqual({ protocol: 'Q.850', cause: null, text: null });
    expect(r('SIP;text=unquoted')).toEqual({ protocol: 'SIP', cause: null, text: 'unquoted' });
  });

  it('takes the correlation id from X- headers by priority, case-insensitively', () => {
    const c = (...h: string[]) => parse(message([...base, ...h])).correlationCallId;
    expect(c()).toBeNull();
    expect(c('X-Leg-Call-ID: leg', 'x-cid: first')).toBe('first');
    expect(c('X-Orig-Call-ID: orig', 'X-Correlation-ID: corr')).toBe('corr');
    expect(c('X-CALL-ID: upper')).toBe('upper');
    expect(c('X-Leg-Call-ID: leg')).toBe('leg');
    const m = parse(message([...base, 'x-cid: first']));
    expect(m.headers.at(-2)).toEqual(['x-cid', 'first']); // unknown-to-RFC names keep their spelling
  });

  it('warns about missing mandatory headers and malformed lines without failing', () => {
    const m = parse(
      [
        'OPTIONS sip:x@example.com SIP/2.0',
        'no colon here',
        ': empty name',
        'Content-Length: 0',
        '',
        '',
      ].join(CRLF),
    );
    expect(m.warnings).toEqual(
      expect.arrayContaining([
        'malformed header line',
        'missing Call-ID',
        'missing CSeq',
        'missing From',
        'missing To',
        'missing Via',
      ]),
    );
    expect(m.headers).toEqual([['Content-Length', '0']]);
  });
});

describe('body and Content-Length', () => {
  it('datagram without Content-Length: the body runs to the end', () => {
    const raw = `${base.join(CRLF)}${CRLF}Content-Type: text/plain${CRLF}${CRLF}hello`;
    const m = parse(raw);
    expect(m.contentLength).toBeNull();
    expect(m.body.toString()).toBe('hello');
    expect(m.bodyParts).toEqual([{ contentType: 'text/plain', body: m.body }]);
    expect(m.warnings).toEqual([]);
  });

  it('stream without Content-Length: empty body and a warning', () => {
    const raw = `${base.join(CRLF)}${CRLF}${CRLF}hello`;
    const m = parse(raw, { transportIsStream: true });
    expect(m.body.length).toBe(0);
    expect(m.bodyParts).toEqual([]);
    expect(m.warnings).toEqual(['missing content-length']);
  });

  it('Content-Length smaller than the datagram: body is Content-Length bytes', () => {
    const m = parse(message(base, 'hello').replace('Content-Length: 5', 'Content-Length: 3'));
    expect(m.body.toString()).toBe('hel');
    expect(m.warnings).toEqual(['content-length mismatch']);
    // CRLF padding after the body is common and not reported.
    expect(parse(`${message(base, 'hello')}\r\n\r\n`).warnings).toEqual([]);
  });

  it('Content-Length larger than present: body as present, warned, on both transports', () => {
    const raw = message(base, 'hello').replace('Content-Length: 5', 'Content-Length: 50');
    for (const transportIsStream of [false, true]) {
      const m = parse(raw, { transportIsStream });
      expect(m.body.toString()).toBe('hello');
      expect(m.contentLength).toBe(50);
      expect(m.warnings).toEqual(['content-length mismatch']);
    }
  });

  it('body and parts are views into the packet buffer', () => {
    const buf = Buffer.from(message(base, 'hello'));
    const m = parseBuf(buf);
    expect(m.body.buffer).toBe(buf.buffer);
    expect(m.body.byteOffset).toBe(buf.byteOffset + buf.length - 5);
  });

  it('parses only [off, end) of a larger buffer', () => {
    const inner = message(base, 'hello');
    const buf = Buffer.from(`GARBAGE\r\n${inner}TRAILING-BYTES`, 'latin1');
    const off = 9;
    const end = off + inner.length;
    const r = parser.parse(buf, off, end);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.message.body.toString()).toBe('hello');
      expect(r.message.warnings).toEqual([]);
    }
    // Without Content-Length the datagram body stops at `end`, not at the buffer's end.
    const noCl = `${base.join(CRLF)}${CRLF}${CRLF}body`;
    const buf2 = Buffer.from(`${noCl}XYZ`, 'latin1');
    const r2 = parser.parse(buf2, 0, noCl.length);
    expect(r2.ok && r2.message.body.toString()).toBe('body');
  });

  it('ignores CRLFs before the start line (RFC 3261 §7.5)', () => {
    expect(parse(`\r\n\r\n${message(base)}`).method).toBe('INVITE');
  });

  it('warns when the header section is cut', () => {
    const m = parse(base.join(CRLF));
    expect(m.callId).toBe('a84b4c76e66710@pc33.atlanta.example.com');
    expect(m.cseq?.seq).toBe(314159);
    expect(m.warnings).toEqual(['missing end of headers']);
  });
});

describe('errors', () => {
  it('returns {ok:false} for unusable input', () => {
    const err = (s: string | Buffer) => {
      const buf = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
      const r = parser.parse(buf, 0, buf.length);
      return r.ok ? 'ok' : r.error;
    };
    expect(err('')).toBe('empty message');
    expect(err('\r\n\r\n')).toBe('empty message');
    expect(err('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).toBe('invalid request line');
    expect(err('HTTP/1.1 200 OK\r\n\r\n')).toBe('invalid method');
    expect(err('SIP/2.0 20 OK\r\n\r\n')).toBe('invalid status code');
    expect(err('SIP/2.0 200OK\r\n\r\n')).toBe('invalid status code');
    expect(err('INV<TE sip:a@b SIP/2.0\r\n\r\n')).toBe('invalid method');
    expect(err('INVITE SIP/2.0\r\n\r\n')).toBe('invalid request line');
    expect(err(Buffer.from([0x80, 0x00, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]))).toBe(
      'invalid start line',
    );
    expect(err(`INVITE sip:${'a'.repeat(MAX_HEADER_LINE)}@b SIP/2.0\r\n\r\n`)).toBe('start line too long');
    const buf = Buffer.from(message(base));
    expect(parser.parse(buf, 10, 5)).toEqual({ ok: false, error: 'invalid buffer range' });
    expect(parser.parse(buf, 0, buf.length + 1)).toEqual({ ok: false, error: 'invalid buffer range' });
    expect(parser.parse(buf, 0.5, 3)).toEqual({ ok: false, error: 'invalid buffer range' });
    expect(parser.parse('not a buffer' as unknown as Buffer, 0, 3)).toEqual({
      ok: false,
      error: 'invalid buffer range',
    });
  });
});

describe('hostile values', () => {
  it('keeps quotes, backslashes, NUL, SQL and invalid UTF-8 byte for byte', () => {
    const nasty = [
      Buffer.from('\'; DROP TABLE calls; -- "quoted" \\back\\slash\\', 'latin1'),
      Buffer.from([0x61, 0x00, 0x62, 0x00, 0x00, 0x63]),
      Buffer.from([
        0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x90, 0x28, 0xbc, 0xed, 0xa0, 0x80,
      ]),
      Buffer.from('1 OR 1=1 UNION SELECT * FROM users /* */ %00 %27 $' + '{jndi:ldap://x}', 'latin1'), // log4shell-style text
      Buffer.from([0x7f, 0x01, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0x09, 0x80, 0x9f]),
    ];
    for (const value of nasty) {
      const raw = Buffer.concat([
        Buffer.from(`${base.join(CRLF)}${CRLF}User-Agent: `, 'latin1'),
        value,
        Buffer.from(`${CRLF}X-CID: `, 'latin1'),
        value,
        Buffer.from(`${CRLF}Subject: `, 'latin1'),
        value,
        Buffer.from(`${CRLF}Content-Length: 0${CRLF}${CRLF}`, 'latin1'),
      ]);
      const m = parseBuf(raw);
      // Leading/trailing whitespace is not part of a header value; these values have none that matters.
      const expected = Buffer.from(value.toString('latin1').replace(/^[ \t]+|[ \t]+$/g, ''), 'latin1');
      expect(Buffer.from(m.userAgent ?? '', 'latin1')).toEqual(expected);
      expect(Buffer.from(m.correlationCallId ?? '', 'latin1')).toEqual(expected);
      expect(Buffer.from(m.headers.find(([n]) => n === 'Subject')?.[1] ?? '', 'latin1')).toEqual(expected);
      expect(m.callId).toBe('a84b4c76e66710@pc33.atlanta.example.com');
    }
  });

  it('keeps hostile bytes in display names, URIs and tags', () => {
    const m = parse(
      message([
        'INVITE sip:%27%22%00@example.com SIP/2.0',
        'From: "Robert\\"); DROP TABLE students;--\\\\" <sip:bobby@example.com>;tag=\x00\xff',
        ...base.slice(1).filter((h) => !h.startsWith('From')),
      ]),
    );
    expect(m.requestUri?.user).toBe('\'"\x00');
    expect(m.from?.displayName).toBe('Robert"); DROP TABLE students;--\\');
    expect(m.from?.tag).toBe('\x00\xff');
  });

  it('keeps a ~64 KB header value exactly; skips longer lines with a warning', () => {
    const big = Buffer.alloc(MAX_HEADER_LINE - 100);
    for (let i = 0; i < big.length; i++) big[i] = 0x21 + ((i * 7919) % 0xde); // no CR/LF/SP, all bytes ≥ 0x21
    const raw = Buffer.concat([
      Buffer.from(`${base.join(CRLF)}${CRLF}X-Big: `, 'latin1'),
      big,
      Buffer.from(
        `${CRLF}X-Huge: ${'h'.repeat(MAX_HEADER_LINE)}${CRLF}Server: after${CRLF}Content-Length: 0${CRLF}${CRLF}`,
      ),
    ]);
    const m = parseBuf(raw);
    expect(Buffer.from(m.headers.find(([n]) => n === 'X-Big')?.[1] ?? '', 'latin1')).toEqual(big);
    expect(m.headers.find(([n]) => n === 'X-Huge')).toBeUndefined();
    expect(m.server).toBe('after');
    expect(m.warnings).toEqual(['header line too long']);
  });

  it('caps the number of headers', () => {
    const lines = [...base];
    for (let i = 0; i < MAX_HEADERS + 100; i++) lines.push(`X-H${i}: ${i}`);
    lines.push('User-Agent: too-late');
    const m = parse(message(lines, 'body'));
    expect(m.headers).toHaveLength(MAX_HEADERS);
    expect(m.userAgent).toBeNull();
    expect(m.body.toString()).toBe('body'); // the body is still found after the ignored headers
    expect(m.warnings).toContain('too many headers');
  });

  it('stops examining an endless header section', () => {
    const lines = `${base.join(CRLF)}${CRLF}${'X-Filler: 0123456789abcdef0123456789abcdef\r\n'.repeat(60000)}`;
    const m = parse(lines);
    expect(m.callId).toBe('a84b4c76e66710@pc33.atlanta.example.com');
    expect(m.headers).toHaveLength(MAX_HEADERS);
    expect(m.warnings).toEqual(['too many headers', 'header section too long', 'missing end of headers']);
  });

  it('bounds list sizes (Via, Contact)', () => {
    const vias = Array.from({ length: 300 }, (_, i) => `SIP/2.0/UDP h${i};branch=z9hG4bK${i}`).join(',');
    const m = parse(message([...base, `Via: ${vias}`, `Contact: ${'<sip:a@b>,'.repeat(300)}`]));
    expect(m.via.length).toBeLessThanOrEqual(64);
    expect(m.contact.length).toBeLessThanOrEqual(64);
  });

  it('handles a pathological unterminated quote and nested brackets quickly', () => {
    const t0 = performance.now();
    const m = parse(
      message([...base, `Contact: "${'\\'.repeat(60000)}`, `P-Asserted-Identity: ${'<'.repeat(60000)}`]),
    );
    expect(m.contact).toHaveLength(1);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe('one SipParser, many messages', () => {
  const sdpBody = (ip: string, port: number) =>
    ['v=0', `o=- 1 1 IN IP4 ${ip}`, 's=-', `c=IN IP4 ${ip}`, 't=0 0', `m=audio ${port} RTP/AVP 0`, ''].join(
      CRLF,
    );
  const boundary = 'b0undary';
  const multipartBody = [
    `--${boundary}`,
    'Content-Type: application/sdp',
    '',
    sdpBody('198.51.100.3', 30000),
    `--${boundary}`,
    'Content-Type: application/isup',
    '',
    'ISUP',
    `--${boundary}--`,
    '',
  ].join(CRLF);
  // Each message gives its lazy members different values, and some of them warn only when decoded.
  const raws = [
    message(
      [
        ...base,
        'Contact: <sip:alice@192.0.2.1:5060>, "Bad" <not a uri>',
        'P-Asserted-Identity: <sip:+15550001@atlanta.example.com>',
        'Content-Type: application/sdp',
      ],
      sdpBody('192.0.2.1', 10000),
    ),
    message(
      [
        'SIP/2.0 200 OK',
        'Via: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bKa',
        'To: <sip:b@h>;tag=2',
        'From: <sip:a@h>;tag=1',
        'Call-ID: second',
        'CSeq: 1 INVITE',
        'Contact: <sip:bob@192.0.2.2;transport=tcp>',
        'Content-Type: application/sdp',
      ],
      sdpBody('192.0.2.2', 20000),
    ),
    message(
      [
        'INVITE <sip:carol@example.org> SIP/2.0',
        'Via: SIP/2.0/UDP 192.0.2.3;branch=z9hG4bKb, SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKc',
        'To: <sip:carol@example.org>',
        'From: <sip:dave@example.org>;tag=3',
        'Call-ID: third',
        'CSeq: 7 INVITE',
        'Contact: <sip:dave@192.0.2.3>,',
        ' <sip:dave@192.0.2.33>',
        'P-Asserted-Identity: "Dave" <sip:dave@example.org>, <tel:+15550003>',
        `Content-Type: multipart/mixed;boundary=${boundary}`,
      ],
      multipartBody,
    ),
    message(
      [
        'BYE sip:erin@example.net SIP/2.0',
        'Via: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKd',
        'To: <sip:erin@example.net>;tag=4',
        'From: <sip:frank@example.net>;tag=5',
        'Call-ID: fourth',
        'CSeq: 8 BYE',
        'Reason: Q.850;cause=16;text="Normal"',
      ],
      '',
    ),
  ];
  const bufs = raws.map((r) => Buffer.from(r, 'latin1'));

  /** The message as JSON, warnings sorted: lazy warnings join in the order members are first read. */
  const snapshot = (m: SipMessage) => {
    const json = JSON.parse(JSON.stringify(m)) as SipMessage;
    json.warnings.sort();
    return json;
  };
  const alone = bufs.map((b) => {
    const r = new SipParser().parse(b, 0, b.length);
    if (!r.ok) throw new Error(r.error);
    return snapshot(r.message);
  });

  it('decodes lazy members correctly when read after the parser has parsed other messages', () => {
    // The references are what they should be, so the comparison below proves something.
    expect(alone[0].contact.map((c) => c.uri?.host ?? null)).toEqual(['192.0.2.1', null]);
    expect(alone[0].warnings).toContain('unparsable uri in name-addr');
    expect(alone[1].sdp?.media[0].port).toBe(20000);
    expect(alone[2].warnings).toContain('invalid Request-URI');
    expect(alone[2].contact.map((c) => c.uri?.host)).toEqual(['192.0.2.3', '192.0.2.33']);
    expect(alone[2].bodyParts.map((p) => p.contentType)).toEqual(['application/sdp', 'application/isup']);
    expect(alone[2].sdp?.media[0].port).toBe(30000);

    const shared = new SipParser();
    const parse = (k: number) => {
      const r = shared.parse(bufs[k], 0, bufs[k].length);
      if (!r.ok) throw new Error(r.error);
      return r.message;
    };
    const [a, b, c] = [parse(0), parse(1), parse(2)];
    // Lazy reads interleaved with parses and with each other, each message's members in its own order.
    expect(b.contact[0].uri?.params.transport).toBe('tcp');
    const d = parse(3);
    expect(a.sdp?.media[0].port).toBe(10000);
    expect(c.requestUri?.user).toBe('carol');
    expect(d.headers.length).toBe(7);
    expect(a.contact.length).toBe(2);
    const again = parse(0);
    expect(c.pAssertedIdentity.map((p) => p.uri?.scheme)).toEqual(['sip', 'tel']);
    expect(b.headers[0]).toEqual(['Via', 'SIP/2.0/TCP 192.0.2.9;branch=z9hG4bKa']);
    expect(again.pAssertedIdentity[0].uri?.user).toBe('+15550001');
    expect(c.bodyParts.length).toBe(2);
    expect(a.requestUri?.host).toBe('biloxi.example.com');
    parse(1);
    // A lazy warning lands on the message being decoded, never on the one parsed last.
    expect(d.warnings).toEqual([]);
    expect(b.warnings).toEqual([]);
    expect([a, b, c, d, again].map(snapshot)).toEqual([alone[0], alone[1], alone[2], alone[3], alone[0]]);
  });

  it('keeps parsers independent', () => {
    const p1 = new SipParser();
    const p2 = new SipParser();
    const r1 = p1.parse(bufs[2], 0, bufs[2].length);
    const r2 = p2.parse(bufs[0], 0, bufs[0].length);
    p1.parse(bufs[1], 0, bufs[1].length);
    if (!r1.ok || !r2.ok) throw new Error('parse failed');
    expect(r2.message.contact.length).toBe(2);
    expect(r1.message.contact.length).toBe(2);
    expect(snapshot(r1.message)).toEqual(alone[2]);
    expect(snapshot(r2.message)).toEqual(alone[0]);
  });
});
