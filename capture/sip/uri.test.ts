import { describe, expect, it } from 'vitest';
import type { SipNameAddr, SipVia } from '../../core/sip-message.js';
import { parseNameAddr, parseNameAddrList } from './name-addr.js';
import { parseHostPort, parseUri, srcOf } from './uri.js';
import { parseVia } from './via.js';

describe('parseUri', () => {
  it('reads sip and sips URIs', () => {
    expect(
      parseUri(
        'sip:alice:secret@Atlanta.Example.com:5061;transport=TLS;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent',
      ),
    ).toEqual({
      scheme: 'sip',
      user: 'alice',
      host: 'Atlanta.Example.com',
      port: 5061,
      params: { transport: 'TLS', lr: '', maddr: '239.255.255.1' },
      headers: { subject: 'project%20x', priority: 'urgent' },
      raw: 'sip:alice:secret@Atlanta.Example.com:5061;transport=TLS;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent',
    });
    expect(parseUri('SIPS:biloxi.example.com')).toMatchObject({
      scheme: 'sips',
      user: null,
      host: 'biloxi.example.com',
      port: null,
    });
    expect(parseUri('  sip:+1-212-555-1212:1234@gateway.com;user=phone  ')).toMatchObject({
      user: '+1-212-555-1212',
      params: { user: 'phone' },
      raw: 'sip:+1-212-555-1212:1234@gateway.com;user=phone',
    });
    expect(parseUri('sip:10.0.0.1:0')?.port).toBe(0);
    expect(parseUri('sip:media_server-1.lab')?.host).toBe('media_server-1.lab');
  });

  it('reads tel URIs (RFC 3966)', () => {
    expect(parseUri('tel:+1-201-555-0123;ext=1234;phone-context=example.com')).toEqual({
      scheme: 'tel',
      user: '+1-201-555-0123',
      host: '',
      port: null,
      params: { ext: '1234', 'phone-context': 'example.com' },
      raw: 'tel:+1-201-555-0123;ext=1234;phone-context=example.com',
    });
  });

  it('rejects what is not a URI', () => {
    for (const bad of [
      '',
      'sip:',
      'sip:user@',
      'sip:host:99999',
      'sip:host:12a',
      'sip:[2001:db8::1',
      'sip:[]',
      'sip:[2001:db8::1]x',
      'sip:a b@c',
      'sip:<a@b>',
      'sip:host:',
      'sip::5060',
      'nocolon',
      '1sip:a@b',
      'sip:ho$t',
      'sip:a:b:c',
    ]) {
      expect(parseUri(bad), bad).toBeNull();
    }
  });

  it('ignores hostile parameter names', () => {
    const u = parseUri('sip:a@b;__proto__=x;constructor=y;toString;tag=1;tag=2');
    expect(u?.params).toEqual({ constructor: 'y', tostring: '', tag: '1' }); // names are case-insensitive
    expect(Object.getPrototypeOf(u?.params)).toBe(Object.prototype);
  });

  it('parses host:port for every spelling', () => {
    const hp = (s: string) => parseHostPort(srcOf(s), 0, s.length);
    expect(hp('192.0.2.1:5060')).toEqual({ host: '192.0.2.1', port: 5060 });
    expect(hp('[::1]')).toEqual({ host: '[::1]', port: null });
    expect(hp('[::1]:5080')).toEqual({ host: '[::1]', port: 5080 });
    expect(hp('2001:db8::1')).toEqual({ host: '[2001:db8::1]', port: null });
    expect(hp('fe80:0:0:0:21a:a0ff:fe07:32e0')).toEqual({
      host: '[fe80:0:0:0:21a:a0ff:fe07:32e0]',
      port: null,
    });
    expect(hp('fe80:0:0:0:21a:a0ff:fe07:32e0:5060')).toEqual({
      host: '[fe80:0:0:0:21a:a0ff:fe07:32e0]',
      port: 5060,
    });
    expect(hp('host.example.com:5060:1')).toBeNull();
    expect(hp('a:b:c')).toBeNull();
    expect(hp('1:2:3:4:5:6:7:8:9:10')).toBeNull();
  });
});

describe('parseNameAddr', () => {
  const na = (s: string, warnings: string[] = []): SipNameAddr => parseNameAddr(s, (w) => warnings.push(w));

  it('reads the usual forms', () => {
    expect(na('"A. G. Bell" <sip:agb@bell-telephone.com> ;tag=a48s')).toEqual({
      displayName: 'A. G. Bell',
      uri: expect.objectContaining({ user: 'agb', host: 'bell-telephone.com' }),
      tag: 'a48s',
      params: { tag: 'a48s' },
      raw: '"A. G. Bell" <sip:agb@bell-telephone.com> ;tag=a48s',
    });
    expect(na('sip:+12125551212@server.phone2net.com;tag=887s')).toMatchObject({
      displayName: null,
      tag: '887s',
      uri: { user: '+12125551212', params: {} },
    });
    expect(na('Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8')).toMatchObject({
      displayName: 'Anonymous',
      tag: 'hyh8',
    });
    expect(na('<sip:x@y;lr>')).toMatchObject({ displayName: null, tag: null, uri: { params: { lr: '' } } });
    expect(na('""<sip:x@y>')).toMatchObject({ displayName: '' });
    expect(na('"\\\\\\"" <sip:x@y>').displayName).toBe('\\"');
  });

  it('degrades gracefully', () => {
    const w: string[] = [];
    expect(na('"Unterminated <sip:x@y>;tag=5', w)).toMatchObject({
      displayName: 'Unterminated',
      tag: '5',
      uri: { user: 'x' },
    });
    expect(na('"just a quote', w)).toMatchObject({ uri: null, raw: '"just a quote' });
    expect(na('<sip:x@y;tag=1', w)).toMatchObject({ uri: { user: 'x', params: { tag: '1' } }, tag: null });
    expect(na('"Name" sip:x@y', w)).toMatchObject({ displayName: 'Name', uri: null });
    expect(na('garbage', w)).toMatchObject({ uri: null, raw: 'garbage' });
    expect(na('', w)).toMatchObject({ uri: null, raw: '' });
    expect(w).toEqual(
      expect.arrayContaining([
        'unterminated quoted string',
        'missing > in name-addr',
        'missing <uri> after display name',
        'unparsable uri in name-addr',
      ]),
    );
  });

  it('splits lists only at top-level commas', () => {
    const out: SipNameAddr[] = [];
    parseNameAddrList('"a,b" <sip:1@h>, <sip:2@h;x=",">,sip:3@h;q=1, , *', out);
    expect(out.map((c) => c.raw)).toEqual(['"a,b" <sip:1@h>', '<sip:2@h;x=",">', 'sip:3@h;q=1', '*']);
  });
});

describe('parseVia', () => {
  const via = (s: string, warnings: string[] = []): SipVia[] => {
    const out: SipVia[] = [];
    parseVia(s, out, (w) => warnings.push(w));
    return out;
  };

  it('reads sent-protocol, sent-by and the common parameters', () => {
    expect(
      via('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK87asdks7;received=198.51.100.3;rport=61000;ttl=16'),
    ).toEqual([
      {
        protocol: 'SIP/2.0',
        transport: 'UDP',
        host: '192.0.2.1',
        port: 5060,
        branch: 'z9hG4bK87asdks7',
        received: '198.51.100.3',
        rport: 61000,
        params: { branch: 'z9hG4bK87asdks7', received: '198.51.100.3', rport: '61000', ttl: '16' },
        raw: 'SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK87asdks7;received=198.51.100.3;rport=61000;ttl=16',
      },
    ]);
    expect(via('sip/2.0/wss edge.example.com;rport;branch=x')[0]).toMatchObject({
      protocol: 'SIP/2.0',
      transport: 'WSS',
      rport: 0,
    });
    expect(via('SIP/2.0/UDP h;rport=99999')[0].rport).toBe(0);
    expect(via('SIP/2.0/UDP h')[0]).toMatchObject({ branch: null, received: null, rport: null, port: null });
    expect(via('SIP/3.0/XYZ h (comment)')[0]).toMatchObject({
      protocol: 'SIP/3.0',
      transport: 'XYZ',
      host: 'h',
    });
  });

  it('skips unusable values with a warning', () => {
    const w: string[] = [];
    expect(
      via('SIP/2.0 h;branch=1, SIP/2.0/UDP, SIP/2.0/UDP [::1, /UDP h, SIP/2.0/UDP ok', w).map((v) => v.host),
    ).toEqual(['ok']);
    expect(w).toEqual(Array(4).fill('malformed Via'));
  });
});

describe('case folding', () => {
  it('lower-cases ASCII only in names, leaving latin1 bytes intact', () => {
    const u = parseUri('SIP:a@b;TRANSPORT=UDP;X\xc0Y=1;\xc9=2');
    expect(u?.scheme).toBe('sip');
    expect(u?.params).toEqual({ transport: 'UDP', 'x\xc0y': '1', '\xc9': '2' });
  });
});
