import { describe, expect, it } from 'vitest';
import { SipParser } from '../../capture/sip/parser.js';
import { CallLinker, type LegKeys, legKeysOf } from './linker.js';

const leg = (callId: string, start: number, more: Partial<LegKeys> = {}): LegKeys => ({
  callId,
  start,
  xCid: null,
  sessionId: null,
  icid: null,
  toUser: '100',
  callerIp: '10.0.0.1',
  calleeIp: '10.0.0.2',
  ...more,
});

const UUID_A = 'ab30317f1a784dc48ff824d0d3715d86';

describe('CallLinker', () => {
  it('links a leg naming the first leg in X-CID, and a third leg to the same edge', () => {
    const linker = new CallLinker();
    expect(linker.link(leg('a', 0))).toEqual({ edgeCallId: 'a', linkedBy: null, linkedTo: null });
    expect(linker.link(leg('b', 10, { xCid: 'a', callerIp: '10.0.0.2', calleeIp: '10.0.0.3' }))).toEqual({
      edgeCallId: 'a',
      linkedBy: 'x-cid',
      linkedTo: 'a',
    });
    expect(linker.link(leg('c', 20, { xCid: 'b', callerIp: '10.0.0.3', calleeIp: '10.0.0.4' }))).toEqual({
      edgeCallId: 'a',
      linkedBy: 'x-cid',
      linkedTo: 'b',
    });
  });

  it('links by Session-ID, icid-value and a Call-ID affix rule, in that order of strength', () => {
    const linker = new CallLinker({ callIdSuffix: '_b2b-1', heuristicWindowMs: 0 });
    linker.link(leg('a', 0, { sessionId: UUID_A }));
    linker.link(leg('x', 1, { icid: 'icid-1' }));
    linker.link(leg('y', 2));
    expect(linker.link(leg('b', 5, { sessionId: UUID_A, icid: 'icid-1' })).linkedBy).toBe('session-id');
    expect(linker.link(leg('c', 6, { icid: 'icid-1' })).edgeCallId).toBe('x');
    expect(linker.link(leg('y_b2b-1', 7))).toEqual({
      edgeCallId: 'y',
      linkedBy: 'call-id-rule',
      linkedTo: 'y',
    });
    expect(linker.link(leg('z_b2b-2', 8)).linkedBy).toBeNull();
  });

  it('links by the heuristic only where the next leg leaves where the first went, for the same user, soon', () => {
    const linker = new CallLinker({ heuristicWindowMs: 2000 });
    linker.link(leg('a', 0, { toUser: '200', callerIp: '10.0.0.1', calleeIp: '10.0.0.9' }));
    const b = linker.link(leg('b', 500, { toUser: '200', callerIp: '10.0.0.9', calleeIp: '10.0.0.5' }));
    expect(b).toEqual({ edgeCallId: 'a', linkedBy: 'heuristic', linkedTo: 'a' });
    // Another user, or too late, or a call from the first caller again: not linked.
    expect(linker.link(leg('c', 600, { toUser: '201', callerIp: '10.0.0.9' })).linkedBy).toBeNull();
    linker.link(leg('d', 1000, { toUser: '300', callerIp: '10.0.0.1', calleeIp: '10.0.0.9' }));
    expect(linker.link(leg('e', 3500, { toUser: '300', callerIp: '10.0.0.9' })).linkedBy).toBeNull();
    expect(new CallLinker({ heuristicWindowMs: 0 }).link(leg('f', 0)).linkedBy).toBeNull();
  });

  it('does not link beyond the window, and forgets the oldest legs at its bound (counted)', () => {
    const linker = new CallLinker({ windowMs: 1000, maxLegs: 2, heuristicWindowMs: 0 });
    linker.link(leg('a', 0));
    expect(linker.link(leg('b', 1500, { xCid: 'a' })).linkedBy).toBeNull();
    linker.link(leg('c', 1600));
    linker.link(leg('d', 1700));
    expect(linker.dropped).toBe(1);
    expect(linker.link(leg('e', 1800, { xCid: 'b' })).linkedBy).toBeNull();
    expect(linker.link(leg('f', 1900, { xCid: 'd' })).linkedBy).toBe('x-cid');
  });

  it('reads the keys of an INVITE: X-CID, Session-ID (not the null UUID), P-Charging-Vector', () => {
    const text = [
      'INVITE sip:200@10.0.0.9 SIP/2.0',
      'Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1',
      'From: <sip:100@10.0.0.1>;tag=f1',
      'To: <sip:200@10.0.0.9>',
      'Call-ID: leg-b',
      'CSeq: 1 INVITE',
      'X-CID: leg-a',
      `Session-ID: ${UUID_A.toUpperCase()};remote=00000000000000000000000000000000`,
      'P-Charging-Vector: icid-value="1234bc9876e";icid-generated-at=192.0.6.8;orig-ioi=home1.net',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    const buf = Buffer.from(text, 'latin1');
    const parsed = new SipParser().parse(buf, 0, buf.length);
    if (!parsed.ok) throw new Error(parsed.error);
    expect(legKeysOf(parsed.message, 5, '10.0.0.1', '10.0.0.9')).toEqual({
      callId: 'leg-b',
      start: 5,
      xCid: 'leg-a',
      sessionId: UUID_A,
      icid: '1234bc9876e',
      toUser: '200',
      callerIp: '10.0.0.1',
      calleeIp: '10.0.0.9',
    });
    const nullSession = Buffer.from(text.replace(UUID_A.toUpperCase(), '0'.repeat(32)), 'latin1');
    const again = new SipParser().parse(nullSession, 0, nullSession.length);
    if (!again.ok) throw new Error(again.error);
    expect(legKeysOf(again.message, 5, '', '').sessionId).toBeNull();
  });
});
