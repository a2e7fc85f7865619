import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import type { CaptureEvent } from '../core/event.js';
import { decodeHep3, encodeHep3 } from '../core/hep3.js';
import { IngestSip } from './sip.js';

const SAMPLE = fileURLToPath(new URL('../capture/sample/calls.pcap', import.meta.url));

/** The sample's events as another agent's HEP delivers them: payload only, no flag, no parse. */
let local: CaptureEvent[];
function overHep(): CaptureEvent[] {
  return local.map((e) => {
    const decoded = decodeHep3(encodeHep3(e));
    if (!decoded.ok) throw new Error(decoded.error);
    return decoded.event;
  });
}

beforeAll(async () => {
  local = [];
  await analyzeFile(SAMPLE, { onEvent: (e) => local.push(e) });
});

describe('IngestSip', () => {
  it('parses each SIP payload once and marks retransmissions as the capture marked them', () => {
    const events = overHep();
    expect(events.every((e) => e.sip === undefined && !e.retransmission)).toBe(true);
    const sip = new IngestSip();
    sip.prepare(events);
    const localSip = local.filter((e) => e.sip !== undefined);
    const hepSip = events.filter((e) => e.sip !== undefined);
    expect(hepSip.length).toBe(localSip.length);
    expect(hepSip.map((e) => e.retransmission)).toEqual(localSip.map((e) => e.retransmission));
    expect(hepSip.map((e) => e.sip?.callId)).toEqual(localSip.map((e) => e.sip?.callId));
    expect(sip.stats).toEqual({
      parsed: localSip.length,
      unparsable: 0,
      retransmissions: localSip.filter((e) => e.retransmission).length,
      retransmissionStatesForgotten: 0,
    });
  });

  it('prepares a batch offered again once (a Kafka chunk retried after a store outage)', () => {
    const events = overHep();
    const sip = new IngestSip();
    sip.prepare(events);
    const flags = events.map((e) => e.retransmission);
    sip.prepare(events);
    expect(events.map((e) => e.retransmission)).toEqual(flags);
    expect(sip.stats.parsed).toBe(events.filter((e) => e.sip !== undefined).length);
  });

  it('takes the correlation id from the Call-ID when the agent sent none, and counts what is not SIP', () => {
    const [invite] = overHep().filter((e) => e.protoType === 1);
    const lines: string[] = [];
    const logger = {
      debug: () => {},
      info: () => {},
      warn: (m: string, f?: Record<string, unknown>) => lines.push(`${m} ${JSON.stringify(f)}`),
      error: () => {},
    };
    const sip = new IngestSip({ logger });
    const noId = { ...invite, correlationId: '' };
    const junk = { ...invite, payload: Buffer.from('INVITE but not really') };
    sip.prepare([noId, junk]);
    expect(noId.correlationId).toBe(noId.sip?.callId);
    expect(junk.sip).toBeUndefined();
    expect(sip.stats.unparsable).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/does not parse/);
  });
});
