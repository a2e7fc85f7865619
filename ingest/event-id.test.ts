import { describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../core/event.js';
import { EventIds, eventId } from './event-id.js';

const payload = Buffer.from('OPTIONS sip:x SIP/2.0\r\n\r\n');
const e: CaptureEvent = {
  timestampNs: 1_767_225_600_123_456_789n,
  ipFamily: 4,
  ipProtocol: 17,
  transport: 'udp',
  srcIp: '10.0.0.1',
  dstIp: '10.0.0.2',
  srcPort: 5060,
  dstPort: 5061,
  vlan: 42,
  protoType: 1,
  captureId: 3,
  nodeName: "hv'1\t\\ü",
  correlationId: 'x',
  payload,
  retransmission: false,
};

describe('event ids', () => {
  it('are stable for the same event and differ when anything identifying differs', () => {
    expect(eventId(e)).toBe(eventId({ ...e, payload: Buffer.from(payload) }));
    expect(eventId(e)).not.toBe(eventId({ ...e, timestampNs: e.timestampNs + 1n }));
    expect(eventId(e)).not.toBe(eventId({ ...e, srcPort: 5062 }));
    expect(eventId(e)).not.toBe(eventId({ ...e, nodeName: 'other' }));
    expect(eventId(e)).not.toBe(eventId({ ...e, payload: Buffer.from('OPTIONS sip:y SIP/2.0\r\n\r\n') }));
    // What is derived from the payload (a parsed message, the retransmission flag) is not identity.
    expect(eventId(e)).toBe(eventId({ ...e, retransmission: true, correlationId: 'y' }));
  });

  it('are the same from one hasher, its scratch grown or not, and for payloads larger than it', () => {
    const ids = new EventIds(64);
    const long = { ...e, nodeName: 'n'.repeat(5000), payload: Buffer.alloc(100_000, 7) };
    expect(ids.of(e)).toBe(eventId(e));
    expect(ids.of(long)).toBe(new EventIds().of(long));
    expect(ids.of(e)).toBe(eventId(e));
  });
});
