import { describe, expect, it } from 'vitest';
import { DecodedPacket } from '../packet.js';
import { RtpHeader } from './header.js';
import { RtpCandidates } from './heuristic.js';

/** 10.0.0.1:4000 → 10.0.0.2:5000, as the decoder leaves it. */
function datagram(): DecodedPacket {
  const p = new DecodedPacket();
  p.ipVersion = 4;
  p.src.set([10, 0, 0, 1]);
  p.dst.set([10, 0, 0, 2]);
  p.srcPort = 4000;
  p.dstPort = 5000;
  return p;
}

function header(sequence: number, timestamp: number, payloadType = 0, ssrc = 0x1234): RtpHeader {
  const h = new RtpHeader();
  Object.assign(h, { sequence, timestamp, payloadType, ssrc, dataLength: 172 });
  return h;
}

const counters = () => ({ candidatesForgotten: 0, candidatesRejected: 0 });

describe('RtpCandidates', () => {
  const p = datagram();

  it('qualifies a 5-tuple + SSRC after `probation` packets in sequence and hands back the earlier ones', () => {
    const c = new RtpCandidates(100, 3, counters());
    expect(c.offer(7, p, header(10, 160), 0)).toBeNull();
    expect(c.offer(7, p, header(11, 320), 20)).toBeNull();
    const done = c.offer(7, p, header(13, 640), 40); // one packet lost: steps up to 3 are fine
    expect(done).toMatchObject({ count: 2, seqs: [10, 11, 13], times: [0, 20, 40] });
    // Qualified candidates are forgotten: the next packet starts over.
    expect(c.offer(7, p, header(14, 800), 60)).toBeNull();
  });

  it('starts over on a sequence jump, a timestamp going back, a new payload type or a 5 s silence', () => {
    const c = new RtpCandidates(100, 2, counters());
    const again = (h: RtpHeader, t: number) => {
      expect(c.offer(1, p, header(100, 1000), 0)).toBeNull();
      expect(c.offer(1, p, h, t)).toBeNull();
    };
    again(header(105, 1160), 20);
    again(header(101, 900), 20);
    again(header(101, 1160, 8), 20);
    again(header(101, 1160), 5021);
    expect(c.offer(1, p, header(100, 1000), 0)).toBeNull();
    expect(c.offer(1, p, header(101, 1160), 20)).not.toBeNull();
  });

  it('rejects implausible payload types and bad padding, and tells apart SSRCs sharing a hash', () => {
    const stats = counters();
    const c = new RtpCandidates(100, 2, stats);
    expect(c.offer(1, p, header(1, 0, 72), 0)).toBeNull();
    const padded = header(1, 0);
    padded.badPadding = true;
    expect(c.offer(1, p, padded, 0)).toBeNull();
    expect(stats.candidatesRejected).toBe(2);
    expect(c.offer(1, p, header(1, 0, 0, 0xaaaa), 0)).toBeNull();
    expect(c.offer(1, p, header(2, 160, 0, 0xbbbb), 20)).toBeNull();
    expect(c.offer(1, p, header(3, 320, 0, 0xbbbb), 40)).not.toBeNull();
  });

  it('keeps at most maxCandidates, forgetting the older generation whole', () => {
    const stats = counters();
    const c = new RtpCandidates(4, 2, stats);
    for (let hash = 0; hash < 6; hash++) c.offer(hash, p, header(1, 0, 0, hash), 0);
    expect(stats.candidatesForgotten).toBe(2);
    expect(c.offer(0, p, header(2, 160, 0, 0), 20)).toBeNull(); // forgotten: on probation again
    expect(c.offer(5, p, header(2, 160, 0, 5), 20)).not.toBeNull();
  });
});
