import { describe, expect, it } from 'vitest';
import { looksLikeSip } from './detect.js';
import { MAX_STREAM_BODY_BYTES, sipMessageLength, skipKeepalive } from './framing.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const sip = (s: string) => {
  const buf = b(s);
  return looksLikeSip(buf, 0, buf.length);
};

describe('looksLikeSip', () => {
  it('accepts request and status lines', () => {
    expect(sip('INVITE sip:bob@example.com SIP/2.0\r\nVia: x\r\n')).toBe(true);
    expect(sip('OPTIONS sips:[2001:db8::1]:5061 SIP/2.0\r\n')).toBe(true);
    expect(sip('REGISTER tel:+15551234 SIP/2.0\n')).toBe(true); // bare LF
    expect(sip("!interesting-Method0123456789_*+`.%indeed'~ sip:x@example.com SIP/2.0\r\n")).toBe(true);
    expect(sip('SIP/2.0 200 OK\r\n')).toBe(true);
    expect(sip('SIP/2.0 100 \r\n')).toBe(true); // RFC 4475 noreason
    expect(sip('SIP/2.0 180\r\n')).toBe(true);
    expect(sip('SIP/2.0 183 Session Progress\n')).toBe(true);
    expect(sip('SIP/2.0 200 = 2**3 * 5**2 \xd0\xbd\xd0\xbe\r\n')).toBe(true); // RFC 4475 unreason (UTF-8)
    expect(sip('INVITE  sip:bob@example.com  SIP/2.0\r\n')).toBe(true); // lwsstart is tolerated
  });

  it('rejects other protocols and junk', () => {
    expect(sip('GET / HTTP/1.1\r\nHost: x\r\n')).toBe(false);
    expect(sip('GET http://example.com/ HTTP/1.1\r\n')).toBe(false);
    expect(sip('HTTP/1.1 200 OK\r\n')).toBe(false);
    expect(sip('SIP/2.0 4294967301 big\r\n')).toBe(false); // RFC 4475 bigcode
    expect(sip('SIP/2.0 99 low code\r\n')).toBe(false);
    expect(sip('SIP/2.0 700 high code\r\n')).toBe(false);
    expect(sip('OPTIONS sip:t.watson@example.org SIP/7.0\r\n')).toBe(false); // RFC 4475 badvers
    expect(sip('INVITE sip:bob@example.com SIP/2.0')).toBe(false); // no line end yet
    expect(sip('INVITE bob SIP/2.0\r\n')).toBe(false); // no scheme
    expect(sip('INVITE sip: SIP/2.0\r\n')).toBe(false);
    expect(sip('INV\x00TE sip:a@b SIP/2.0\r\n')).toBe(false);
    expect(sip('SIP/2.0 200 OK\x00\r\n')).toBe(false);
    expect(sip('')).toBe(false);
    // RTP (version 2, PT 0), DNS query, TLS ClientHello.
    expect(looksLikeSip(Buffer.from(`80000001000000a0deadbeef${'ff'.repeat(160)}`, 'hex'), 0, 172)).toBe(
      false,
    );
    const dns = Buffer.from('abcd01000001000000000000076578616d706c6503636f6d0000010001', 'hex');
    expect(looksLikeSip(dns, 0, dns.length)).toBe(false);
    const tls = Buffer.from(`160301020001000200030379${'00'.repeat(60)}`, 'hex');
    expect(looksLikeSip(tls, 0, tls.length)).toBe(false);
  });

  it('never reads outside [off, end)', () => {
    const buf = b('\x00\x01INVITE sip:bob@example.com SIP/2.0\r\nyy');
    expect(looksLikeSip(buf, 2, buf.length - 2)).toBe(true);
    expect(looksLikeSip(buf, 2, buf.length - 3)).toBe(false); // LF excluded
    expect(looksLikeSip(buf, 0, buf.length)).toBe(false);
    expect(looksLikeSip(buf, 5, 2)).toBe(false);
    expect(looksLikeSip(buf, -1, 4)).toBe(false);
    expect(looksLikeSip(buf, 0, buf.length + 1)).toBe(false);
  });
});

describe('framing', () => {
  const msg = (body: string, cl = `Content-Length: ${body.length}`) =>
    `INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n${cl}\r\n\r\n${body}`;

  it('measures complete messages, body included', () => {
    const m = msg('v=0\r\n');
    const buf = b(m + m);
    expect(sipMessageLength(buf, 0, buf.length)).toBe(m.length);
    expect(sipMessageLength(buf, m.length, buf.length)).toBe(m.length);
  });

  it('accepts the compact form, any case and whitespace before the colon', () => {
    for (const cl of ['l: 4', 'L:4', 'content-length  :  4', 'CONTENT-LENGTH: 4']) {
      const m = msg('abcd', cl);
      expect(sipMessageLength(b(m), 0, m.length)).toBe(m.length);
    }
  });

  it('treats a missing Content-Length as an empty body', () => {
    const m = msg('', 'Max-Forwards: 70');
    const buf = b(`${m}NEXT sip:x SIP/2.0\r\n`);
    expect(sipMessageLength(buf, 0, buf.length)).toBe(m.length);
  });

  it('asks for more bytes while headers or body are incomplete', () => {
    const m = msg('0123456789');
    for (let cut = 1; cut < m.length; cut++) expect(sipMessageLength(b(m), 0, cut)).toBe(-1);
    expect(sipMessageLength(b(m), 0, m.length)).toBe(m.length);
  });

  it('accepts LF-only header sections', () => {
    const m = 'SIP/2.0 200 OK\nContent-Length: 2\n\nok';
    expect(sipMessageLength(b(m), 0, m.length)).toBe(m.length);
  });

  it('flags non-SIP and unrecoverable framing with -2', () => {
    expect(sipMessageLength(b('GET / HTTP/1.1\r\n\r\n'), 0, 18)).toBe(-2);
    expect(sipMessageLength(b('\x80\x00\x12\x34'), 0, 4)).toBe(-2);
    for (const cl of ['Content-Length: -1', 'Content-Length: 1x', 'Content-Length: 99999999999']) {
      const m = msg('', cl);
      expect(sipMessageLength(b(m), 0, m.length)).toBe(-2);
    }
    const big = msg('', `Content-Length: ${MAX_STREAM_BODY_BYTES + 1}`);
    expect(sipMessageLength(b(big), 0, big.length)).toBe(-2);
    // RFC 4475 mcl01: conflicting Content-Length values make the body length ambiguous.
    const two = msg('abcd', 'Content-Length: 4\r\nl: 5');
    expect(sipMessageLength(b(two), 0, two.length)).toBe(-2);
    const same = msg('abcd', 'Content-Length: 4\r\nl: 4');
    expect(sipMessageLength(b(same), 0, same.length)).toBe(same.length);
  });

  it('waits on a partial start line only while it can still be SIP', () => {
    expect(sipMessageLength(b('INVITE sip:bo'), 0, 13)).toBe(-1);
    expect(sipMessageLength(b('SIP/2.0 2'), 0, 9)).toBe(-1);
    expect(sipMessageLength(b('INV\x01'), 0, 4)).toBe(-2);
  });

  it('gives up on endless header sections', () => {
    const start = 'INVITE sip:bob@example.com SIP/2.0\r\n';
    const buf = b(
      start +
        'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(4000),
    );
    expect(sipMessageLength(buf, 0, buf.length)).toBe(-2);
  });

  it('skips CRLF keep-alives (RFC 5626) and counts them in the length', () => {
    const m = msg('');
    const buf = b(`\r\n\r\n${m}`);
    expect(skipKeepalive(buf, 0, buf.length)).toBe(4);
    expect(skipKeepalive(buf, 4, buf.length)).toBe(4);
    expect(skipKeepalive(b('\r\n'), 0, 2)).toBe(2);
    expect(sipMessageLength(buf, 0, buf.length)).toBe(m.length + 4);
    expect(sipMessageLength(b('\r\n\r\n'), 0, 4)).toBe(-1);
  });
});
