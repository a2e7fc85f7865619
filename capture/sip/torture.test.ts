/**
 * RFC 4475 torture tests, written from the RFC's descriptions of each case (not its text), plus RFC 5118
 * IPv6 cases. Valid messages must parse to the right fields; invalid ones must not break the parser and
 * must surface as warnings (or an error when there is no usable start line).
 */
import { describe, expect, it } from 'vitest';
import type { SipMessage, SipNameAddr, SipUri } from '../../core/sip-message.js';
import { looksLikeSip } from './detect.js';
import { parseMultipart } from './multipart.js';
import { parseNameAddrList } from './name-addr.js';
import { SipParser } from './parser.js';
import { parseSdp } from './sdp.js';
import { parseUri } from './uri.js';

const parser = new SipParser();

const CRLF = '\r\n';

type Opts = { transportIsStream?: boolean };

/** Every message parsed through parse(), for the lazy-decoding checks at the end of this file. */
const seen: Array<{ raw: string; opts?: Opts }> = [];

function parseLazy(raw: string, opts?: Opts): SipMessage {
  const buf = Buffer.from(raw, 'latin1');
  const r = parser.parse(buf, 0, buf.length, opts);
  if (!r.ok) throw new Error(r.error);
  return r.message;
}

/** Reads every lazily decoded member, so `warnings` holds the warnings of all parts. */
function decodeAll(m: SipMessage): SipMessage {
  void [m.requestUri, m.headers, m.contact, m.pAssertedIdentity, m.bodyParts, m.sdp];
  return m;
}

/** A fully decoded message: what the tests below assert on, warnings of lazy parts included. */
function parse(raw: string, opts?: Opts): SipMessage {
  seen.push({ raw, opts });
  return decodeAll(parseLazy(raw, opts));
}

/** Header lines, an empty line, then the body with a correct Content-Length appended to the headers. */
function message(lines: string[], body = ''): string {
  return [...lines, `Content-Length: ${Buffer.byteLength(body, 'latin1')}`, '', body].join(CRLF);
}

const common = (method: string) => [
  'Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-t1',
  'From: <sip:caller@example.com>;tag=f1',
  'To: <sip:callee@example.net>',
  'Call-ID: torture.1@192.0.2.10',
  `CSeq: 7 ${method}`,
  'Max-Forwards: 70',
];

const sdpBody = [
  'v=0',
  'o=u 1 1 IN IP4 192.0.2.10',
  's=-',
  'c=IN IP4 192.0.2.10',
  't=0 0',
  'm=audio 4000 RTP/AVP 0',
  '',
].join(CRLF);

describe('RFC 4475 §3.1.1 valid messages', () => {
  it('wsinv: folding, odd whitespace, compact forms, mixed case, escapes in quoted strings', () => {
    const raw = [
      'INVITE sip:agent7@desk.example.com;oddparam SIP/2.0',
      'TO :',
      ' sip:agent7@desk.example.com ;   tag    = 77aa',
      'from   : "Q \\"Bond\\" \\\\ Jr"       <sip:q@mi6.example.org>',
      '  ;',
      '  tag = 0n0n',
      'MaX-fOrWaRdS: 0068',
      'i: wsinv.7x7@192.0.2.9',
      'cseq: 0009',
      '  INVITE',
      'Via  : SIP  /   2.0',
      ' /UDP',
      '    192.0.2.9;branch=z9hG4bKwsinv1',
      's :',
      'WeirdHeader:   a value',
      '\t continued here',
      'EmptyishHeader: ;;,,;;,;',
      'c: application/sdp',
      'Route:',
      ' <sip:proxy.example.com;lr;unknownwith=value;unknown-no-value>',
      'v:  SIP  / 2.0  / TCP     relay.example.com   ;',
      '  branch  =   z9hG4bKrelay  ,',
      ' SIP  /    2.0   / UDP  198.51.100.77   ; branch=',
      ' z9hG4bKedge',
      'm:"Quoted \\"name\\"" <sip:q@mi6.example.org> ; newparam =',
      '      newvalue ;',
      '  secondparam ; q = 0.33',
      `l: ${sdpBody.length}`,
      '',
      sdpBody,
    ].join(CRLF);
    const m = parse(raw);
    expect(m.method).toBe('INVITE');
    expect(m.requestUri).toMatchObject({
      user: 'agent7',
      host: 'desk.example.com',
      params: { oddparam: '' },
    });
    expect(m.to).toMatchObject({ tag: '77aa', uri: { user: 'agent7' } });
    expect(m.from?.displayName).toBe('Q "Bond" \\ Jr');
    expect(m.from?.tag).toBe('0n0n');
    expect(m.maxForwards).toBe(68);
    expect(m.callId).toBe('wsinv.7x7@192.0.2.9');
    expect(m.cseq).toEqual({ seq: 9, method: 'INVITE' });
    expect(m.via.map((v) => [v.transport, v.host, v.branch])).toEqual([
      ['UDP', '192.0.2.9', 'z9hG4bKwsinv1'],
      ['TCP', 'relay.example.com', 'z9hG4bKrelay'],
      ['UDP', '198.51.100.77', 'z9hG4bKedge'],
    ]);
    expect(m.via[0].protocol).toBe('SIP/2.0');
    expect(m.headers.find(([n]) => n === 'WeirdHeader')?.[1]).toBe('a value continued here');
    expect(m.headers.find(([n]) => n === 'Subject')?.[1]).toBe('');
    expect(m.headers.find(([n]) => n === 'To')?.[1]).toBe('sip:agent7@desk.example.com ;   tag    = 77aa');
    expect(m.contact).toHaveLength(1);
    expect(m.contact[0].displayName).toBe('Quoted "name"');
    expect(m.contact[0].params).toEqual({ newparam: 'newvalue', secondparam: '', q: '0.33' });
    expect(m.contentType).toBe('application/sdp');
    expect(m.contentLength).toBe(sdpBody.length);
    expect(m.sdp?.media[0].port).toBe(4000);
    expect(m.warnings).toEqual([]);
    // Canonical names for compact and odd-case forms; unknown headers keep their spelling.
    expect(m.headers.map(([n]) => n)).toEqual([
      'To',
      'From',
      'Max-Forwards',
      'Call-ID',
      'CSeq',
      'Via',
      'Subject',
      'WeirdHeader',
      'EmptyishHeader',
      'Content-Type',
      'Route',
      'Via',
      'Contact',
      'Content-Length',
    ]);
  });

  it('intmeth: every token character in the method and header names, odd URI user and password', () => {
    const method = "!interesting-Method0123456789_*+`.%indeed'~";
    const m = parse(
      message([
        `${method} sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0`,
        "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
        'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>',
        "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9\";tag=_token~1'+`*%!-.",
        'Call-ID: intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{',
        `CSeq: 139122385 ${method}`,
        'Max-Forwards: 255',
        "extensionHeader-!.%*+_`'~:\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb",
      ]),
    );
    expect(m.method).toBe(method);
    expect(m.cseq?.method).toBe(method);
    expect(m.requestUri?.user).toBe("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    expect(m.requestUri?.host).toBe('example.com');
    expect(m.to?.displayName).toBe('BEL:\x07 NUL:\x00 DEL:\x7f');
    expect(m.from?.displayName).toBe("token1~` token2'+_ token3*%!.-");
    expect(m.from?.tag).toBe("_token~1'+`*%!-.");
    expect(m.callId).toBe('intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{');
    expect(m.headers.at(-2)).toEqual([
      "extensionHeader-!.%*+_`'~",
      '\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb',
    ]);
    expect(m.warnings).toEqual([]);
  });

  it('esc01: %-escapes in the Request-URI user part are resolved', () => {
    const m = parse(
      message(
        [
          'INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0',
          ...common('INVITE').slice(0, 1),
          'To: sip:%75se%72@example.com',
          'From: <sip:I%20have%20spaces@example.net>;tag=938',
          'Call-ID: esc01.239409asdfakjkn23onasd0-3234',
          'CSeq: 234234 INVITE',
          'Contact: <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>',
        ],
        sdpBody,
      ),
    );
    expect(m.requestUri?.user).toBe('sips:user@example.com');
    expect(m.requestUri?.host).toBe('example.net');
    expect(m.to?.uri?.user).toBe('user');
    expect(m.from?.uri?.user).toBe('I have spaces');
    expect(m.contact[0].uri?.user).toBe('caller');
    // Parameters keep their bytes; only the user part is unescaped.
    expect(m.contact[0].uri?.params).toEqual({ '%6c%72': '', 'n%61me': 'v%61lue%25%34%31' });
  });

  it('escnull: %00 in the user part becomes a NUL character', () => {
    const m = parse(
      message([
        'REGISTER sip:example.com SIP/2.0',
        'To: sip:null-%00-null@example.com',
        'From: sip:null-%00-null@example.com;tag=839923423',
        'Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd',
        'CSeq: 14398234 REGISTER',
        'Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw',
        'Contact: <sip:%00@host5.example.com>',
        'Contact: <sip:%00%00@host5.example.com>',
      ]),
    );
    expect(m.to?.uri?.user).toBe('null-\x00-null');
    expect(m.from?.tag).toBe('839923423');
    expect(m.contact.map((c) => c.uri?.user)).toEqual(['\x00', '\x00\x00']);
  });

  it('esc02: % that is not an escape stays literal (method, display name, URI)', () => {
    const m = parse(
      message([
        'RE%47IST%45R sip:registrar.example.com SIP/2.0',
        'To: "%Z%45" <sip:resource@example.com>',
        'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23',
        'Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf',
        'Via: SIP/2.0/TCP host.example.com;rport;branch=z9hG4bK209%fzsnel234',
        'CSeq: 29344 RE%47IST%45R',
        'Contact: <sip:alias1@host1.example.com>',
        'Contact: <sip:%Z%45@host2.example.com>',
      ]),
    );
    expect(m.method).toBe('RE%47IST%45R');
    expect(m.to?.displayName).toBe('%Z%45');
    expect(m.via[0].branch).toBe('z9hG4bK209%fzsnel234');
    expect(m.via[0].rport).toBe(0);
    // Valid escapes in the user part are resolved, invalid ones stay: %Z%45 → %ZE.
    expect(m.contact.map((c) => c.uri?.user)).toEqual(['alias1', '%ZE']);
    expect(m.warnings).toEqual([]);
  });

  it('lwsdisp: no whitespace between a token display name and <', () => {
    const m = parse(
      message([
        ...common('OPTIONS').filter((h) => !h.startsWith('From')),
        'From: caller<sip:caller@example.com>;tag=323',
      ]).replace(/^/, 'OPTIONS sip:user@example.com SIP/2.0\r\n'),
    );
    expect(m.from?.displayName).toBe('caller');
    expect(m.from?.uri?.user).toBe('caller');
    expect(m.from?.tag).toBe('323');
  });

  it('longreq: very long values and many Via headers', () => {
    const long = 'very'.repeat(500);
    const vias = Array.from(
      { length: 40 },
      (_, i) => `Via: SIP/2.0/TCP sip${i}.example.com;branch=z9hG4bK${long.slice(0, 200)}${i}`,
    );
    const m = parse(
      message(
        [
          `INVITE sip:user@example.com SIP/2.0`,
          `To: "I have a user name of ${long} proportion" <sip:${long}@example.com:6000;unknownparam=${long}>`,
          `From: sip:${long}@example.net;tag=${long}`,
          `Call-ID: longreq.${long}`,
          'CSeq: 1 INVITE',
          'Max-Forwards: 70',
          `${long}-header: ${long}`,
          ...vias,
          'Content-Type: application/sdp',
        ],
        sdpBody,
      ),
    );
    expect(m.via).toHaveLength(40);
    expect(m.via[39].host).toBe('sip39.example.com');
    expect(m.to?.uri?.user).toBe(long);
    expect(m.to?.uri?.port).toBe(6000);
    expect(m.from?.tag).toBe(long);
    expect(m.callId).toBe(`longreq.${long}`);
    expect(m.headers.find(([n]) => n === `${long}-header`)?.[1]).toBe(long);
    expect(m.sdp).not.toBeNull();
  });

  it('dblreq: bytes after Content-Length in a datagram are ignored (with a warning)', () => {
    const register = message(['REGISTER sip:example.com SIP/2.0', ...common('REGISTER')]);
    const invite = message(['INVITE sip:joe@example.com SIP/2.0', ...common('INVITE')], sdpBody);
    const m = parse(register + invite);
    expect(m.method).toBe('REGISTER');
    expect(m.body.length).toBe(0);
    expect(m.contentLength).toBe(0);
    expect(m.sdp).toBeNull();
    expect(m.warnings).toContain('content-length mismatch');
    // On a stream the following bytes are the next message, not an error.
    expect(parse(register + invite, { transportIsStream: true }).warnings).toEqual([]);
  });

  it('semiuri: ; inside the user part is part of the user', () => {
    const m = parse(
      message(['OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0', ...common('OPTIONS')]),
    );
    expect(m.requestUri).toMatchObject({ user: 'user;par=u@example.net', host: 'example.com', params: {} });
  });

  it('transports: unknown and unusual transports are kept, upper-cased', () => {
    const m = parse(
      message([
        'OPTIONS sip:user@example.com SIP/2.0',
        'Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw',
        'Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf',
        'Via: SIP/2.0/tls t3.example.com;branch=z9hG4bK2980unddj',
        'Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en',
        'Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee',
        'Via: SIP/2.0/ws t6.example.com;branch=z9hG4bKws',
        ...common('OPTIONS').slice(1),
      ]),
    );
    expect(m.via.map((v) => v.transport)).toEqual(['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP', 'WS']);
  });

  it('mpart01: multipart/mixed body with an SDP part and a binary part', () => {
    const binary = '\x00\x01\x02\xff\xfe--not-a-boundary\r\n';
    const body = [
      'preamble text',
      '--7a9cbec.3a3f2c1',
      'Content-Type: application/sdp',
      '',
      sdpBody.trimEnd(),
      '--7a9cbec.3a3f2c1',
      'Content-Type: image/gif',
      'Content-Transfer-Encoding: binary',
      'Content-ID: <n@example.com>',
      '',
      binary,
      '--7a9cbec.3a3f2c1--',
      'epilogue',
    ].join(CRLF);
    const m = parse(
      message(
        [
          'MESSAGE sip:kumiko@example.org SIP/2.0',
          ...common('MESSAGE'),
          'Content-Type: multipart/mixed;boundary="7a9cbec.3a3f2c1"',
        ],
        body,
      ),
    );
    expect(m.contentType).toBe('multipart/mixed');
    expect(m.bodyParts.map((p) => p.contentType)).toEqual(['application/sdp', 'image/gif']);
    expect(m.bodyParts[0].body.toString('latin1')).toBe(sdpBody.trimEnd());
    expect(m.bodyParts[1].body.toString('latin1')).toBe(binary);
    expect(m.sdp?.media[0].port).toBe(4000);
    expect(m.warnings).toEqual([]);
  });

  it('unreason: a UTF-8 reason phrase survives byte for byte', () => {
    const reason = Buffer.from('= 2**3 * 5**2 но сто девяносто девять - простое', 'utf8');
    const raw = Buffer.concat([
      Buffer.from('SIP/2.0 200 ', 'latin1'),
      reason,
      Buffer.from(CRLF + message([...common('INVITE')]), 'latin1'),
    ]);
    const r = parser.parse(raw, 0, raw.length);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.message.statusCode).toBe(200);
    expect(Buffer.from(r.message.reasonPhrase ?? '', 'latin1')).toEqual(reason);
  });

  it('noreason: an empty reason phrase', () => {
    const m = parse(message(['SIP/2.0 100 ', ...common('INVITE')]));
    expect(m.statusCode).toBe(100);
    expect(m.reasonPhrase).toBe('');
    expect(m.isRequest).toBe(false);
  });
});

describe('RFC 4475 §3.1.2 invalid messages: no crash, problems reported', () => {
  it('badinv01: extraneous header field separators', () => {
    const m = parse(
      message([
        'INVITE sip:user@example.com SIP/2.0',
        'To: sip:j.user@example.com',
        'From: sip:caller@example.net;tag=134161461246',
        'Max-Forwards: 7',
        'Call-ID: badinv01.0ha0isndaksdjadsfij34n23d',
        'CSeq: 235448 INVITE',
        'Via: SIP/2.0/UDP somehost.example.com;;,;,,',
        'Contact: "Joe" <sip:joe@example.org>;;;;',
      ]),
    );
    expect(m.via).toHaveLength(1);
    expect(m.via[0].host).toBe('somehost.example.com');
    expect(m.warnings).toContain('malformed Via');
    expect(m.contact[0].params).toEqual({});
  });

  it('clerr: Content-Length larger than the datagram: headers parsed, body as present', () => {
    const raw = message(['INVITE sip:user@example.com SIP/2.0', ...common('INVITE')], sdpBody).replace(
      `Content-Length: ${sdpBody.length}`,
      'Content-Length: 9999',
    );
    const m = parse(raw);
    expect(m.callId).toBe('torture.1@192.0.2.10');
    expect(m.contentLength).toBe(9999);
    expect(m.body.toString('latin1')).toBe(sdpBody);
    expect(m.warnings).toContain('content-length mismatch');
  });

  it('ncl: negative Content-Length', () => {
    const raw = message(['INVITE sip:user@example.com SIP/2.0', ...common('INVITE')], sdpBody).replace(
      `Content-Length: ${sdpBody.length}`,
      'Content-Length: -999',
    );
    const m = parse(raw);
    expect(m.contentLength).toBeNull();
    expect(m.warnings).toContain('invalid content-length');
    expect(m.body.toString('latin1')).toBe(sdpBody); // datagram: the body runs to the end
  });

  it('scalar02 / scalarlg: overlarge scalar values', () => {
    const m = parse(
      [
        'REGISTER sip:example.com SIP/2.0',
        'Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3',
        'To: <sip:user@example.com>',
        'From: <sip:user@example.com>;tag=239232jh3',
        'CSeq: 36893488147419103232 REGISTER',
        'Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32',
        'Max-Forwards: 300',
        'Expires: 1000000000000000000000000000000000000000000000000000',
        'Contact: <sip:user@host129.example.com>;expires=280297596632815',
        'Content-Length: 0',
        '',
        '',
      ].join(CRLF),
    );
    expect(m.cseq).toBeNull();
    expect(m.maxForwards).toBeNull();
    expect(m.warnings).toEqual(expect.arrayContaining(['invalid CSeq', 'invalid Max-Forwards']));
    expect(m.contact[0].params.expires).toBe('280297596632815');
    const r = parse(
      message([
        'SIP/2.0 503 Service Unavailable',
        ...common('INVITE').slice(0, 4),
        'CSeq: 1823749127349127349812734981273 INVITE',
        'Warning: 1812 overture "In Progress"',
      ]),
    );
    expect(r.cseq).toBeNull();
    expect(r.statusCode).toBe(503);
  });

  it('quotbal: unterminated quoted display name still yields URI and tag', () => {
    const m = parse(
      message([
        'INVITE sip:user@example.com SIP/2.0',
        'To: "Mr. J. User <sip:j.user@example.com>',
        'From: sip:caller@example.net;tag=93334',
        ...common('INVITE').filter((h) => !/^(To|From)/.test(h)),
      ]),
    );
    expect(m.to?.uri?.user).toBe('j.user');
    expect(m.to?.displayName).toBe('Mr. J. User');
    expect(m.warnings).toContain('unterminated quoted string');
  });

  it('ltgtruri: <> around the Request-URI', () => {
    const m = parse(message(['INVITE <sip:user@example.com> SIP/2.0', ...common('INVITE')]));
    expect(m.requestUri?.user).toBe('user');
    expect(m.warnings).toContain('invalid Request-URI');
  });

  it('lwsruri: whitespace inside the Request-URI', () => {
    const m = parse(message(['INVITE sip:user@example.com; lr SIP/2.0', ...common('INVITE')]));
    expect(m.method).toBe('INVITE');
    expect(m.requestUri).toBeNull();
    expect(m.warnings).toContain('invalid Request-URI');
  });

  it('lwsstart / trws: extra spaces in the request line', () => {
    const a = parse(message(['INVITE  sip:user@example.com  SIP/2.0', ...common('INVITE')]));
    expect(a.requestUri?.user).toBe('user');
    expect(a.warnings).toContain('extra whitespace in request line');
    const b = parse(message(['OPTIONS sip:remote-target@example.com SIP/2.0  ', ...common('OPTIONS')]));
    expect(b.requestUri?.user).toBe('remote-target');
    expect(b.warnings).toContain('extra whitespace in request line');
  });

  it('escruri: escaped headers in the Request-URI', () => {
    const m = parse(
      message(['INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0', ...common('INVITE')]),
    );
    expect(m.requestUri?.headers).toEqual({ Route: '%3Csip:example.com%3E' });
    expect(m.warnings).toContain('headers in Request-URI');
  });

  it('baddate: an invalid Date is kept as text', () => {
    const m = parse(
      message([
        'INVITE sip:user@example.com SIP/2.0',
        ...common('INVITE'),
        'Date: Fri, 01 Jan 2010 16:00:00 EST',
      ]),
    );
    expect(m.headers.find(([n]) => n === 'Date')?.[1]).toBe('Fri, 01 Jan 2010 16:00:00 EST');
  });

  it('regbadct / regescrt: URI headers in Contact, with and without <>', () => {
    const m = parse(
      message([
        'REGISTER sip:example.com SIP/2.0',
        ...common('REGISTER'),
        'Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E',
        'Contact: <sip:user@example.com?Route=%3Csip:sip.example.com%3E&Subject=hi>',
      ]),
    );
    expect(m.contact[0].uri?.headers).toEqual({ Route: '%3Csip:sip.example.com%3E' });
    expect(m.contact[1].uri?.headers).toEqual({ Route: '%3Csip:sip.example.com%3E', Subject: 'hi' });
  });

  it('badaspec: spaces inside <> are ignored with a warning', () => {
    const m = parse(
      message([
        'OPTIONS sip:user@example.org SIP/2.0',
        'To: "Watson, Thomas" < sip:t.watson@example.org >',
        ...common('OPTIONS').filter((h) => !h.startsWith('To')),
      ]),
    );
    expect(m.to?.displayName).toBe('Watson, Thomas');
    expect(m.to?.uri?.user).toBe('t.watson');
    expect(m.warnings).toContain('whitespace inside <>');
  });

  it('baddn: non-token characters in an unquoted display name', () => {
    const m = parse(
      message([
        'OPTIONS sip:t.watson@example.org SIP/2.0',
        'From: Bell, Alexander <sip:a.g.bell@example.com>;tag=43',
        ...common('OPTIONS').filter((h) => !h.startsWith('From')),
      ]),
    );
    expect(m.from).toMatchObject({ displayName: 'Bell, Alexander', tag: '43', uri: { user: 'a.g.bell' } });
  });

  it('badvers: unknown SIP version is parsed but flagged', () => {
    const m = parse(message(['OPTIONS sip:t.watson@example.org SIP/7.0', ...common('OPTIONS')]));
    expect(m.method).toBe('OPTIONS');
    expect(m.warnings).toContain('unsupported SIP version');
    const buf = Buffer.from('OPTIONS sip:t.watson@example.org SIP/7.0\r\n');
    expect(looksLikeSip(buf, 0, buf.length)).toBe(false);
  });

  it('mismatch01 / mismatch02: start line and CSeq method differ', () => {
    const a = parse(message(['OPTIONS sip:user@example.com SIP/2.0', ...common('INVITE')]));
    expect(a.warnings).toContain('cseq method mismatch');
    const b = parse(message(['NEWMETHOD sip:user@example.com SIP/2.0', ...common('INVITE')]));
    expect(b.method).toBe('NEWMETHOD');
    expect(b.warnings).toContain('cseq method mismatch');
  });

  it('bigcode: a status code beyond three digits is an error', () => {
    const buf = Buffer.from(
      message(['SIP/2.0 4294967301 better not break the receiver', ...common('INVITE')]),
    );
    const r = parser.parse(buf, 0, buf.length);
    expect(r).toEqual({ ok: false, error: 'invalid status code' });
  });

  it('badbranch: a bare magic cookie is still a branch', () => {
    const m = parse(
      message([
        'OPTIONS sip:user@example.com SIP/2.0',
        'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK',
        ...common('OPTIONS').slice(1),
      ]),
    );
    expect(m.via[0].branch).toBe('z9hG4bK');
  });
});

describe('RFC 4475 §3.3 application-layer cases', () => {
  it('multi01: repeated single-value headers keep the first and warn', () => {
    const m = parse(
      message([
        'INVITE sip:user@company.com SIP/2.0',
        'Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw',
        'CSeq: 1 INVITE',
        'Call-ID: multi01.98asdh@192.0.2.1',
        'CSeq: 2 INVITE',
        'From: sip:caller@example.com;tag=3413415',
        'To: sip:user@example.com',
        'To: sip:other@example.net',
        'From: sip:caller@example.net;tag=2923420123',
        'Call-ID: multi01.98asdh@192.0.2.25',
        'Max-Forwards: 70',
      ]),
    );
    expect(m.cseq?.seq).toBe(1);
    expect(m.from?.tag).toBe('3413415');
    expect(m.to?.uri?.user).toBe('user');
    expect(m.callId).toBe('multi01.98asdh@192.0.2.1');
    expect(m.warnings).toEqual(
      expect.arrayContaining([
        'multiple CSeq headers',
        'multiple To headers',
        'multiple From headers',
        'multiple Call-ID headers',
      ]),
    );
  });

  it('mcl01: multiple Content-Length values', () => {
    const m = parse(
      message(
        ['OPTIONS sip:user@example.com SIP/2.0', ...common('OPTIONS'), 'Content-Length: 8'],
        'abcdefgh',
      ).replace(/Content-Length: 8\r\nContent-Length: 8/, 'Content-Length: 8\r\nl: 2'),
    );
    expect(m.contentLength).toBe(8);
    expect(m.warnings).toContain('multiple Content-Length headers');
  });

  it('zeromf, unknown schemes (unkscm, novelsc, unksm2), cparam01/02', () => {
    const a = parse(
      message([
        'OPTIONS nobodyKnowsThisScheme:totallyopaque-content SIP/2.0',
        ...common('OPTIONS').slice(0, 5),
        'Max-Forwards: 0',
      ]),
    );
    expect(a.maxForwards).toBe(0);
    expect(a.requestUri).toMatchObject({
      scheme: 'nobodyknowsthisscheme',
      user: null,
      host: '',
      raw: 'nobodyKnowsThisScheme:totallyopaque-content',
    });
    const b = parse(message(['INVITE soap.beep://192.0.2.103:3002 SIP/2.0', ...common('INVITE')]));
    expect(b.requestUri?.scheme).toBe('soap.beep');
    const c = parse(
      message([
        'REGISTER sip:example.com SIP/2.0',
        'To: isbn:2983792873',
        ...common('REGISTER').filter((h) => !h.startsWith('To')),
      ]),
    );
    expect(c.to?.uri).toMatchObject({ scheme: 'isbn', raw: 'isbn:2983792873' });
    const d = parse(
      message([
        'REGISTER sip:example.com SIP/2.0',
        ...common('REGISTER'),
        'Contact: sip:+19725552222@gw1.example.net;unknownparam',
        'Contact: <sip:+19725552222@gw1.example.net;unknownparam>',
      ]),
    );
    expect(d.contact[0].params).toEqual({ unknownparam: '' });
    expect(d.contact[0].uri?.params).toEqual({});
    expect(d.contact[1].params).toEqual({});
    expect(d.contact[1].uri?.params).toEqual({ unknownparam: '' });
  });

  it('Contact: * (REGISTER removal)', () => {
    const m = parse(
      message(['REGISTER sip:example.com SIP/2.0', ...common('REGISTER'), 'Contact: *', 'Expires: 0']),
    );
    expect(m.contact).toEqual([{ displayName: null, uri: null, tag: null, params: {}, raw: '*' }]);
    expect(m.warnings).toEqual([]);
  });
});

describe('RFC 5118 IPv6', () => {
  it('bracketed references in Request-URI, Via, From/To/Contact, received and SDP', () => {
    const sdp = [
      'v=0',
      'o=assistant 971731711378798081 0 IN IP6 2001:db8::20',
      's=-',
      'c=IN IP6 2001:db8::20',
      't=0 0',
      'm=audio 6000 RTP/AVP 0',
      '',
    ].join(CRLF);
    const m = parse(
      message(
        [
          'INVITE sip:user@[2001:db8::10]:5070 SIP/2.0',
          'Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;received=2001:db8::9:255;rport=6050',
          'Via: SIP/2.0/UDP [2001:db8::9:2];branch=z9hG4bKas3-112',
          'From: "Caller" <sip:caller@[2001:db8::20]>;tag=9jkd',
          'To: <sip:user@[2001:db8::10]>',
          'Contact: <sip:caller@[2001:db8::20];transport=udp>',
          'Call-ID: SSG9559905523997077@hlau_4100',
          'CSeq: 8612 INVITE',
          'Max-Forwards: 70',
          'Content-Type: application/sdp',
        ],
        sdp,
      ),
    );
    expect(m.requestUri).toMatchObject({ host: '[2001:db8::10]', port: 5070 });
    expect(m.via[0]).toMatchObject({
      host: '[2001:db8::9:1]',
      port: 6050,
      received: '2001:db8::9:255',
      rport: 6050,
    });
    expect(m.via[1]).toMatchObject({ host: '[2001:db8::9:2]', port: null });
    expect(m.from?.uri?.host).toBe('[2001:db8::20]');
    expect(m.contact[0].uri).toMatchObject({ host: '[2001:db8::20]', params: { transport: 'udp' } });
    expect(m.sdp?.connection).toEqual({ netType: 'IN', addrType: 'IP6', address: '2001:db8::20' });
  });

  it('port-ambiguous and IPv4-mapped references', () => {
    const m = parse(
      message([
        'REGISTER sip:[2001:db8::10:5070] SIP/2.0',
        'To: sip:user@[::ffff:192.0.2.10]',
        'Contact: <sip:user@[2001:db8::10]:5070>',
        'Contact: <sip:user@[fe80::1%25eth0]>',
        ...common('REGISTER').filter((h) => !h.startsWith('To')),
      ]),
    );
    expect(m.requestUri).toMatchObject({ host: '[2001:db8::10:5070]', port: null });
    expect(m.to?.uri?.host).toBe('[::ffff:192.0.2.10]');
    expect(m.contact.map((c) => [c.uri?.host, c.uri?.port])).toEqual([
      ['[2001:db8::10]', 5070],
      ['[fe80::1%25eth0]', null],
    ]);
  });

  it('unbracketed IPv6 as sent by some devices is normalised to brackets', () => {
    const m = parse(
      message([
        'INVITE sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060 SIP/2.0',
        'Via: SIP/2.0/UDP fe80:0:0:0:21a:a0ff:fe07:32e0:5060;branch=z9hG4bKkdjuw8376',
        'From: <sip:9876@fe80:0:0:0:21a:a0ff:fe07:32e0>;tag=a3bhg',
        'To: <sip:4321@2001:db8::1>',
        'Call-ID: v6@x',
        'CSeq: 1 INVITE',
      ]),
    );
    expect(m.requestUri).toMatchObject({ host: '[fec0:0:0:0:216:d3ff:fe0d:22c]', port: 5060 });
    expect(m.via[0]).toMatchObject({ host: '[fe80:0:0:0:21a:a0ff:fe07:32e0]', port: 5060 });
    expect(m.from?.uri).toMatchObject({ host: '[fe80:0:0:0:21a:a0ff:fe07:32e0]', port: null });
    expect(m.to?.uri).toMatchObject({ host: '[2001:db8::1]', port: null });
  });
});

describe('lazily decoded members', () => {
  const LAZY = ['requestUri', 'headers', 'contact', 'pAssertedIdentity', 'bodyParts', 'sdp'] as const;

  /** The Request-URI text of a request's start line (between the first and the last space). */
  function requestUriText(raw: string): string {
    const line = raw
      .replace(/^[\r\n]+/, '')
      .split(/\r?\n/, 1)[0]
      .replace(/[ \t]+$/, '');
    return line.slice(line.search(/[ \t]/), line.search(/[ \t][^ \t]*$/)).trim();
  }

  it('equal the eager decoding of the same text, for every message of this file', () => {
    expect(seen.length).toBeGreaterThan(30);
    for (const { raw, opts } of seen) {
      const m = parseLazy(raw, opts);
      const ref: string[] = [];
      const warn = (w: string) => ref.push(w);
      // requestUri: what parseUri gives for the start line's URI (with the ltgtruri <> tolerance).
      if (m.isRequest) {
        const text = requestUriText(raw);
        let uri: SipUri | null = parseUri(text);
        if (uri === null && text.startsWith('<') && text.endsWith('>')) uri = parseUri(text.slice(1, -1));
        expect(m.requestUri, raw).toEqual(uri);
      } else expect(m.requestUri).toBeNull();
      // contact / pAssertedIdentity: every header of that name, split and parsed in order.
      const lists: Record<'Contact' | 'P-Asserted-Identity', SipNameAddr[]> = {
        Contact: [],
        'P-Asserted-Identity': [],
      };
      for (const [name, value] of m.headers) {
        if (name === 'Contact' || name === 'P-Asserted-Identity') {
          const out = lists[name];
          parseNameAddrList(value, out, warn, 64 - out.length);
        }
      }
      expect(m.contact, raw).toEqual(lists.Contact);
      expect(m.pAssertedIdentity, raw).toEqual(lists['P-Asserted-Identity']);
      // bodyParts / sdp: the body as a whole, or its parts, and the first SDP among them.
      if (m.body.length === 0) {
        expect(m.bodyParts).toEqual([]);
        expect(m.sdp).toBeNull();
      } else if (m.contentType?.startsWith('multipart/')) {
        const boundary = /boundary=([^;\s]+)/i.exec(m.headers.find(([n]) => n === 'Content-Type')?.[1] ?? '');
        const parts: SipMessage['bodyParts'] = [];
        if (boundary) parseMultipart(m.body, 0, m.body.length, boundary[1].replace(/"/g, ''), parts, warn);
        expect(m.bodyParts.map((p) => [p.contentType, p.body.toString('latin1')])).toEqual(
          parts.map((p) => [p.contentType, p.body.toString('latin1')]),
        );
      } else {
        expect(m.bodyParts).toEqual([{ contentType: m.contentType, body: m.body }]);
        const sdpLike = m.contentType === 'application/sdp' || (m.contentType === null && m.body[0] === 0x76);
        expect(m.sdp, raw).toEqual(sdpLike ? parseSdp(m.body, 0, m.body.length, warn) : null);
      }
      // Their warnings joined the message's when they were decoded.
      for (const w of ref) expect(m.warnings, raw).toContain(w);
    }
  });

  it('do not depend on when they are read: late, in any order, after other messages were parsed', () => {
    const early = seen.map(({ raw, opts }) => decodeAll(parseLazy(raw, opts)));
    const late = seen.map(({ raw, opts }) => parseLazy(raw, opts));
    // Parse-time scratch state is reused by every parse; the messages must not rely on it.
    for (const { raw, opts } of [...seen].reverse()) parseLazy(raw, opts);
    late.forEach((m, k) => {
      for (const key of [...LAZY].reverse()) expect(m[key], seen[k].raw).toEqual(early[k][key]);
      expect([...m.warnings].sort()).toEqual([...early[k].warnings].sort());
      expect(JSON.parse(JSON.stringify(m))).toEqual(JSON.parse(JSON.stringify(early[k])));
    });
  });

  it('add their warnings to the message when first read', () => {
    const ltgt = parseLazy(message(['INVITE <sip:user@example.com> SIP/2.0', ...common('INVITE')]));
    expect(ltgt.warnings).toEqual([]);
    expect(ltgt.requestUri?.user).toBe('user');
    expect(ltgt.warnings).toEqual(['invalid Request-URI']);

    const start = 'INVITE sip:callee@example.net SIP/2.0';
    const contact = parseLazy(
      message([start, ...common('INVITE'), 'Contact: <sip:a@b', 'P-Asserted-Identity: "x" y']),
    );
    const before = [...contact.warnings];
    expect(before).not.toContain('missing > in name-addr');
    expect(contact.contact).toHaveLength(1);
    expect(contact.warnings).toEqual([...before, 'missing > in name-addr']);
    expect(contact.pAssertedIdentity).toHaveLength(1);
    expect(contact.warnings).toEqual([
      ...before,
      'missing > in name-addr',
      'missing <uri> after display name',
    ]);

    const sdp = parseLazy(
      message([start, ...common('INVITE'), 'Content-Type: application/sdp'], `junk\r\n${sdpBody}`),
    );
    expect(sdp.warnings).toEqual([]);
    expect(sdp.sdp?.media).toHaveLength(1);
    expect(sdp.warnings).toEqual(['sdp: junk lines ignored']);
    // Decoded once: reading again (or the other body member) adds nothing.
    expect(sdp.bodyParts).toHaveLength(1);
    void sdp.sdp;
    expect(sdp.warnings).toEqual(['sdp: junk lines ignored']);

    const multi = parseLazy(message([start, ...common('INVITE'), 'Content-Type: multipart/mixed'], 'v=0'));
    expect(multi.warnings).toEqual([]);
    expect(multi.sdp).toBeNull();
    expect(multi.warnings).toEqual(['multipart without boundary']);
  });

  it('can be assigned, like plain properties', () => {
    const m = parseLazy(
      message(['INVITE sip:a@b SIP/2.0', ...common('INVITE'), 'Content-Type: application/sdp'], sdpBody),
    );
    m.sdp = null;
    m.contact = [];
    m.headers = [['X', 'y']];
    expect(m.sdp).toBeNull();
    expect(m.contact).toEqual([]);
    expect(m.headers).toEqual([['X', 'y']]);
    expect(m.bodyParts).toHaveLength(1); // decoding the body does not overwrite the assigned sdp
    expect(m.sdp).toBeNull();
  });
});
