import { describe, expect, it } from 'vitest';
import type { SipBodyPart } from '../../core/sip-message.js';
import { mediaType, multipartBoundary, parseMultipart } from './multipart.js';
import { SipParser } from './parser.js';
import { MAX_SDP_MEDIA, parseSdp } from './sdp.js';

const parser = new SipParser();

function sdp(text: string, warnings: string[] = []) {
  const buf = Buffer.from(text, 'latin1');
  return parseSdp(buf, 0, buf.length, (w) => warnings.push(w));
}

describe('SDP', () => {
  it('reads session and media sections (RFC 8866)', () => {
    const s = sdp(
      [
        'v=0',
        'o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1',
        's=Call to John Smith',
        'i=SDP Offer #1',
        'c=IN IP4 233.252.0.1/127/3',
        't=0 0',
        'a=recvonly',
        'm=audio 49170 RTP/AVP 0 8 96 101',
        'a=rtpmap:0 PCMU/8000',
        'a=rtpmap:8 PCMA/8000',
        'a=rtpmap:96 opus/48000/2',
        'a=rtpmap:101 telephone-event/8000',
        'a=fmtp:101 0-15',
        'a=fmtp:96 useinbandfec=1; stereo=1',
        'a=ptime:20',
        'a=sendonly',
        'm=video 51372/2 RTP/AVPF 99',
        'c=IN IP6 ff15::101/3',
        'a=rtpmap:99 h263-1998/90000',
        'a=inactive',
        '',
      ].join('\r\n'),
    );
    expect(s?.version).toBe(0);
    expect(s?.origin).toEqual({
      username: 'jdoe',
      sessionId: '3724394400',
      sessionVersion: '3724394405',
      netType: 'IN',
      addrType: 'IP4',
      address: '198.51.100.1',
    });
    expect(s?.sessionName).toBe('Call to John Smith');
    expect(s?.connection).toEqual({ netType: 'IN', addrType: 'IP4', address: '233.252.0.1' });
    expect(s?.direction).toBe('recvonly');
    expect(s?.media).toHaveLength(2);
    const [audio, video] = s?.media ?? [];
    expect(audio).toMatchObject({
      media: 'audio',
      port: 49170,
      portCount: 1,
      proto: 'RTP/AVP',
      formats: ['0', '8', '96', '101'],
      connection: null,
      ptime: 20,
      direction: 'sendonly',
    });
    expect(audio.rtpmap).toEqual({
      0: { encoding: 'PCMU', clockRate: 8000, channels: null },
      8: { encoding: 'PCMA', clockRate: 8000, channels: null },
      96: { encoding: 'opus', clockRate: 48000, channels: 2 },
      101: { encoding: 'telephone-event', clockRate: 8000, channels: null },
    });
    expect(audio.fmtp).toEqual({ '101': '0-15', '96': 'useinbandfec=1; stereo=1' });
    expect(audio.attributes[0]).toEqual(['rtpmap', '0 PCMU/8000']);
    expect(audio.attributes.at(-1)).toEqual(['sendonly', null]);
    expect(video).toMatchObject({
      media: 'video',
      port: 51372,
      portCount: 2,
      proto: 'RTP/AVPF',
      direction: 'inactive',
    });
    expect(video.connection).toEqual({ netType: 'IN', addrType: 'IP6', address: 'ff15::101' });
  });

  it('reads T.38 fax media (m=image udptl t38)', () => {
    const s = sdp(
      'v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=image 40000 udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\na=T38FaxRateManagement:transferredTCF\r\n',
    );
    expect(s?.media[0]).toMatchObject({ media: 'image', port: 40000, proto: 'udptl', formats: ['t38'] });
    expect(s?.media[0].attributes).toContainEqual(['T38FaxRateManagement', 'transferredTCF']);
  });

  it('tolerates LF-only endings, trailing spaces and junk lines', () => {
    const warnings: string[] = [];
    const s = sdp(
      'v=0\no=- 1 1 IN IP4 10.0.0.1  \n\njunk line without equals\nX=upper-case type\ns=-\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\na=ptime:20.0\n',
      warnings,
    );
    expect(s?.origin?.address).toBe('10.0.0.1');
    expect(s?.media[0].port).toBe(4000);
    expect(s?.media[0].ptime).toBe(20);
    expect(warnings).toEqual(['sdp: junk lines ignored']);
  });

  it('does not attach attributes of a malformed m= line to the previous media', () => {
    const warnings: string[] = [];
    const s = sdp(
      'v=0\r\nm=audio 4000 RTP/AVP 0\r\nm=audio notaport RTP/AVP 0\r\na=sendonly\r\na=rtpmap:0 X/1\r\n',
      warnings,
    );
    expect(s?.media).toHaveLength(1);
    expect(s?.media[0].direction).toBeNull();
    expect(s?.media[0].rtpmap).toEqual({});
    expect(warnings).toContain('sdp: malformed m=');
  });

  it('rejects malformed values without throwing', () => {
    const warnings: string[] = [];
    const s = sdp(
      'v=x\r\no=short\r\nc=IN\r\nm=audio 70000 RTP/AVP 0\r\nm=audio 5/0 RTP/AVP 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:200 X/8000\r\na=rtpmap:0 PCMU\r\na=rtpmap:8 PCMA/x\r\na=fmtp:__proto__ x\r\na=ptime:abc\r\n',
      warnings,
    );
    expect(s?.version).toBeNull();
    expect(s?.origin).toBeNull();
    expect(s?.media).toHaveLength(1);
    // `PCMA/x` keeps the encoding with an unknown rate (0), as Wireshark does; the name tells the clock.
    expect(s?.media[0].rtpmap).toEqual({ 8: { encoding: 'PCMA', clockRate: 0, channels: null } });
    expect(Object.getPrototypeOf(s?.media[0].fmtp)).toBe(Object.prototype);
    expect(s?.media[0].ptime).toBeNull();
    expect(warnings).toEqual(
      expect.arrayContaining(['sdp: malformed o=', 'sdp: malformed c=', 'sdp: malformed m=']),
    );
  });

  it('bounds hostile bodies', () => {
    const warnings: string[] = [];
    const s = sdp(`v=0\r\n${'m=audio 1 RTP/AVP 0\r\n'.repeat(MAX_SDP_MEDIA + 10)}`, warnings);
    expect(s?.media).toHaveLength(MAX_SDP_MEDIA);
    expect(warnings).toContain('sdp: too many m= lines');
    const many = sdp(`v=0\r\nm=audio 1 RTP/AVP 0\r\n${'a=x\r\n'.repeat(10000)}`, warnings);
    expect(many?.media[0].attributes.length).toBeLessThanOrEqual(256);
    expect(warnings).toContain('sdp: too many lines');
  });

  it('returns null for bodies with no SDP lines', () => {
    expect(sdp('')).toBeNull();
    expect(sdp('hello world\r\n')).toBeNull();
  });
});

function multipart(body: string, boundary: string) {
  const buf = Buffer.from(body, 'latin1');
  const out: SipBodyPart[] = [];
  const warnings: string[] = [];
  parseMultipart(buf, 0, buf.length, boundary, out, (w) => warnings.push(w));
  return { parts: out.map((p) => [p.contentType, p.body.toString('latin1')]), warnings };
}

describe('multipart', () => {
  it('reads the boundary parameter, quoted or not', () => {
    expect(multipartBoundary('multipart/mixed;boundary=unique-boundary-1')).toBe('unique-boundary-1');
    expect(multipartBoundary('multipart/mixed; charset=x; BOUNDARY="a b:c"')).toBe('a b:c');
    expect(multipartBoundary('multipart/mixed')).toBeNull();
    expect(multipartBoundary('multipart/mixed; boundary=""')).toBeNull();
    expect(multipartBoundary('multipart/mixed; boundary="unterminated')).toBeNull();
    expect(mediaType(' Multipart/Alternative ; boundary=x')).toBe('multipart/alternative');
  });

  it('splits parts, LF-only too, and ignores preamble and epilogue', () => {
    const body =
      'pre\r\n--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--b1\r\nc: Application/ISUP; version=itu-t92+\r\n\r\n\x01\x02\r\n--b1--\r\nepi';
    expect(multipart(body, 'b1')).toEqual({
      parts: [
        ['application/sdp', 'v=0\r\n'],
        ['application/isup', '\x01\x02'],
      ],
      warnings: [],
    });
    expect(multipart('--b\nContent-Type: text/plain\n\nhi\n--b--\n', 'b').parts).toEqual([
      ['text/plain', 'hi'],
    ]);
  });

  it('handles a part without headers, a longer look-alike boundary and a missing close delimiter', () => {
    expect(
      multipart('--b\r\n\r\nraw\r\n--bb not a delimiter\r\n--b\r\nContent-Type: x/y\r\n\r\nz', 'b'),
    ).toEqual({
      parts: [
        [null, 'raw\r\n--bb not a delimiter'],
        ['x/y', 'z'],
      ],
      warnings: ['multipart: missing close delimiter'],
    });
    expect(multipart('no delimiters here', 'b').warnings).toEqual(['multipart: no boundary found']);
  });

  it('flattens nested multiparts', () => {
    const inner =
      '--in\r\nContent-Type: text/plain\r\n\r\nA\r\n--in\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--in--';
    const body = `--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n${inner}\r\n--out\r\nContent-Type: application/pidf+xml\r\n\r\n<x/>\r\n--out--`;
    expect(multipart(body, 'out').parts).toEqual([
      ['text/plain', 'A'],
      ['application/sdp', 'v=0'],
      ['application/pidf+xml', '<x/>'],
    ]);
  });

  it('gives the message its first SDP part', () => {
    const body = [
      '--boundary42',
      'Content-Type: application/resource-lists+xml',
      '',
      '<resource-lists/>',
      '--boundary42',
      'Content-Type: application/sdp',
      '',
      'v=0',
      'c=IN IP4 192.0.2.77',
      'm=audio 7000 RTP/AVP 8',
      '--boundary42--',
      '',
    ].join('\r\n');
    const raw = [
      'INVITE sip:conf@example.com SIP/2.0',
      'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
      'Call-ID: mp@h',
      'CSeq: 1 INVITE',
      'From: <sip:a@h>;tag=1',
      'To: <sip:conf@example.com>',
      'Content-Type: multipart/mixed;boundary=boundary42',
      `Content-Length: ${body.length}`,
      '',
      body,
    ].join('\r\n');
    const buf = Buffer.from(raw, 'latin1');
    const r = parser.parse(buf, 0, buf.length);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.message.bodyParts.map((p) => p.contentType)).toEqual([
      'application/resource-lists+xml',
      'application/sdp',
    ]);
    expect(r.message.sdp?.connection?.address).toBe('192.0.2.77');
    expect(r.message.sdp?.media[0].port).toBe(7000);
  });

  it('parses an SDP body without Content-Type, and leaves other bodies alone', () => {
    const mk = (ct: string | null, body: string) => {
      const raw = [
        'SIP/2.0 200 OK',
        'Call-ID: x',
        ...(ct ? [`Content-Type: ${ct}`] : []),
        `Content-Length: ${body.length}`,
        '',
        body,
      ].join('\r\n');
      const buf = Buffer.from(raw, 'latin1');
      const r = parser.parse(buf, 0, buf.length);
      return r.ok ? r.message : null;
    };
    expect(mk(null, 'v=0\r\nm=audio 1 RTP/AVP 0\r\n')?.sdp?.media).toHaveLength(1);
    expect(mk('text/plain', 'v=0\r\nm=audio 1 RTP/AVP 0\r\n')?.sdp).toBeNull();
    const noBoundary = mk('multipart/mixed', 'v=0');
    expect(noBoundary?.bodyParts).toHaveLength(1);
    expect(noBoundary?.warnings).toContain('multipart without boundary'); // once the body is decoded
  });
});
