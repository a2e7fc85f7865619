/**
 * RTCP decoder: hand-built packets of every type, tshark 4.0 as an outside oracle on ~200 random
 * compounds (field by field, plus its round-trip delay against ntpMiddle32/roundTripMs), and 50,000
 * random and mutated inputs (seeded; RTCP_FUZZ_SEED and RTCP_FUZZ_N explore more). The packet builders
 * here are written from RFC 3550/3611 independently of the decoder.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ipv4Udp } from '../../test/fixtures/packets.js';
import { needs, removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { runTshark } from '../../test/oracle/tshark.js';
import { PcapWriter } from '../file/pcap-writer.js';
import { LINKTYPE_RAW } from '../file/record.js';
import {
  looksLikeRtcp,
  ntpMiddle32,
  parseRtcpCompound,
  type RtcpPacket,
  type RtcpParseResult,
  type RtcpReportBlock,
  type RtcpXrVoipMetrics,
  roundTripMs,
} from './rtcp.js';

// ---------------------------------------------------------------------------------------------------
// Builders (RFC 3550 §6.4–6.7, RFC 3611 §4.7)

class Bytes {
  readonly a: number[] = [];
  u8(v: number): this {
    this.a.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    this.a.push((v >>> 8) & 0xff, v & 0xff);
    return this;
  }
  u24(v: number): this {
    this.a.push((v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    return this;
  }
  u32(v: number): this {
    this.a.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    return this;
  }
  raw(bytes: ArrayLike<number>): this {
    for (let i = 0; i < bytes.length; i++) this.a.push(bytes[i]);
    return this;
  }
  zeroTo4(): this {
    while (this.a.length % 4) this.a.push(0);
    return this;
  }
}

/**
 * One RTCP packet: header + body (+ padding whose last octet counts itself). The length field is
 * computed unless `lengthField` forces a value.
 */
function rtcp(
  pt: number,
  count: number,
  body: number[],
  o: { padding?: number; version?: number; lengthField?: number } = {},
): number[] {
  const pad = o.padding ?? 0;
  const total = 4 + body.length + pad;
  if (total % 4 !== 0 && o.lengthField === undefined) throw new Error(`packet of ${total} bytes`);
  const out = new Bytes()
    .u8(((o.version ?? 2) << 6) | (pad ? 0x20 : 0) | count)
    .u8(pt)
    .u16(o.lengthField ?? total / 4 - 1)
    .raw(body);
  for (let i = 1; i < pad; i++) out.u8(0);
  if (pad) out.u8(pad);
  return out.a;
}

function blocks(b: Bytes, reports: RtcpReportBlock[]): void {
  for (const r of reports) {
    b.u32(r.ssrc)
      .u8(r.fractionLostRaw)
      .u24(r.cumulativeLost & 0xffffff)
      .u32(r.highestSeq)
      .u32(r.jitter)
      .u32(r.lsr)
      .u32(r.dlsr);
  }
}

function report(ssrc: number, over: Partial<RtcpReportBlock> = {}): RtcpReportBlock {
  const raw = over.fractionLostRaw ?? 0;
  return {
    ssrc,
    fractionLostRaw: raw,
    fractionLost: raw / 256,
    cumulativeLost: 0,
    highestSeq: 0,
    jitter: 0,
    lsr: 0,
    dlsr: 0,
    ...over,
  };
}

type Sr = Extract<RtcpPacket, { type: 'sr' }>;
type Rr = Extract<RtcpPacket, { type: 'rr' }>;

function srPacket(p: Sr, o: { padding?: number; extension?: number[] } = {}): number[] {
  const b = new Bytes()
    .u32(p.ssrc)
    .u32(p.sender.ntpSeconds)
    .u32(p.sender.ntpFraction)
    .u32(p.sender.rtpTimestamp)
    .u32(p.sender.packetCount)
    .u32(p.sender.octetCount);
  blocks(b, p.reports);
  b.raw(o.extension ?? []);
  return rtcp(200, p.reports.length, b.a, o);
}

function rrPacket(p: Rr, o: { padding?: number; extension?: number[] } = {}): number[] {
  const b = new Bytes().u32(p.ssrc);
  blocks(b, p.reports);
  b.raw(o.extension ?? []);
  return rtcp(201, p.reports.length, b.a, o);
}

/** SDES chunks as explicit item lists (type, text); every chunk is null-terminated and 32-bit aligned. */
function sdesPacket(chunks: { ssrc: number; items: [number, string | number[]][] }[], padding = 0): number[] {
  const b = new Bytes();
  for (const c of chunks) {
    b.u32(c.ssrc);
    for (const [type, value] of c.items) {
      const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
      b.u8(type).u8(bytes.length).raw(bytes);
    }
    b.u8(0).zeroTo4();
  }
  return rtcp(202, chunks.length, b.a, { padding });
}

function byePacket(ssrcs: number[], reason: string | null, padding = 0): number[] {
  const b = new Bytes();
  for (const s of ssrcs) b.u32(s);
  if (reason !== null) {
    const bytes = Buffer.from(reason, 'utf8');
    b.u8(bytes.length).raw(bytes).zeroTo4();
  }
  return rtcp(203, ssrcs.length, b.a, { padding });
}

function appPacket(ssrc: number, name: string, subtype: number, data: number[], padding = 0): number[] {
  return rtcp(204, subtype, new Bytes().u32(ssrc).raw(Buffer.from(name, 'latin1')).raw(data).a, { padding });
}

function voipBlock(m: RtcpXrVoipMetrics): number[] {
  const mos = (v: number | null) => (v === null ? 127 : Math.round(v * 10));
  return new Bytes()
    .u8(7)
    .u8(0)
    .u16(8)
    .u32(m.ssrc)
    .u8(m.lossRate)
    .u8(m.discardRate)
    .u8(m.burstDensity)
    .u8(m.gapDensity)
    .u16(m.burstDurationMs)
    .u16(m.gapDurationMs)
    .u16(m.roundTripDelayMs)
    .u16(m.endSystemDelayMs)
    .u8(m.signalLevel)
    .u8(m.noiseLevel)
    .u8(m.rerl)
    .u8(m.gmin)
    .u8(m.rFactor)
    .u8(m.extRFactor)
    .u8(mos(m.mosLq))
    .u8(mos(m.mosCq))
    .u8(m.rxConfig)
    .u8(0)
    .u16(m.jbNominal)
    .u16(m.jbMaximum)
    .u16(m.jbAbsMax).a;
}

/** RFC 3611 §4.4 receiver reference time block (type 4): a block the decoder must skip. */
function rrtBlock(ntpSec: number, ntpFrac: number): number[] {
  return new Bytes().u8(4).u8(0).u16(2).u32(ntpSec).u32(ntpFrac).a;
}

function xrPacket(ssrc: number, blockBytes: number[][], padding = 0): number[] {
  return rtcp(207, 0, new Bytes().u32(ssrc).raw(blockBytes.flat()).a, { padding });
}

/** RFC 4585 §6.3.1 picture loss indication (PSFB, FMT 1): sender and media SSRC, no FCI. */
function pliPacket(sender: number, media: number): number[] {
  return rtcp(206, 1, new Bytes().u32(sender).u32(media).a);
}

const buf = (...packets: number[][]) => Buffer.from(packets.flat());

function parse(b: Uint8Array): RtcpParseResult {
  return parseRtcpCompound(b, 0, b.length);
}

function mustParse(b: Uint8Array): RtcpPacket[] {
  const r = parse(b);
  if (!r.ok) throw new Error(r.error);
  return r.packets;
}

const metrics: RtcpXrVoipMetrics = {
  ssrc: 0x8899aabb,
  lossRate: 12,
  discardRate: 3,
  burstDensity: 200,
  gapDensity: 17,
  burstDurationMs: 300,
  gapDurationMs: 4000,
  roundTripDelayMs: 120,
  endSystemDelayMs: 60,
  signalLevel: -32,
  noiseLevel: -70,
  rerl: 55,
  gmin: 16,
  rFactor: 93,
  extRFactor: 127,
  mosLq: 4.1,
  mosCq: null,
  rxConfig: 0xbc,
  jbNominal: 40,
  jbMaximum: 80,
  jbAbsMax: 200,
};

const sr1: Sr = {
  type: 'sr',
  ssrc: 0xfffffffe,
  sender: {
    ntpSeconds: 0xe1234567,
    ntpFraction: 0x89abcdef,
    rtpTimestamp: 0xffffff00,
    packetCount: 4242,
    octetCount: 678_720,
  },
  reports: [
    report(0xcafebabe, {
      fractionLostRaw: 128,
      fractionLost: 0.5,
      cumulativeLost: -1,
      highestSeq: 0x0001_0005,
      jitter: 0xfffffff0,
      lsr: 0xb7052000,
      dlsr: 0x00054000,
    }),
    report(7, { fractionLostRaw: 255, fractionLost: 255 / 256, cumulativeLost: 0x7fffff, highestSeq: 65535 }),
  ],
};

// ---------------------------------------------------------------------------------------------------

describe('parseRtcpCompound: packet types', () => {
  it('SR with two report blocks: unsigned 32-bit values, fraction, signed cumulative lost', () => {
    expect(mustParse(buf(srPacket(sr1)))).toEqual([sr1]);
  });

  it('cumulative lost is 24-bit two’s complement', () => {
    for (const [wire, value] of [
      [0xffffff, -1],
      [0x800000, -8_388_608],
      [0x7fffff, 8_388_607],
      [0x000001, 1],
      [0, 0],
      [0xfffffe, -2],
    ]) {
      const rr: Rr = { type: 'rr', ssrc: 1, reports: [report(2, { cumulativeLost: value })] };
      const b = buf(rrPacket(rr));
      expect(b.readUIntBE(13, 3)).toBe(wire);
      expect(mustParse(b)).toEqual([rr]);
    }
  });

  it('RR with no report blocks, and with profile-specific extension bytes (skipped)', () => {
    const empty: Rr = { type: 'rr', ssrc: 0x80000000, reports: [] };
    expect(mustParse(buf(rrPacket(empty)))).toEqual([empty]);
    const one: Rr = { type: 'rr', ssrc: 9, reports: [report(10, { jitter: 33 })] };
    expect(mustParse(buf(rrPacket(one, { extension: [1, 2, 3, 4, 5, 6, 7, 8] })))).toEqual([one]);
    expect(mustParse(buf(srPacket({ ...sr1, reports: [] }, { extension: [9, 9, 9, 9] })))).toEqual([
      { ...sr1, reports: [] },
    ]);
  });

  it('SR/RR report count larger than the length allows', () => {
    const b = buf(rrPacket({ type: 'rr', ssrc: 1, reports: [report(2), report(3)] }));
    b[0] = (b[0] & 0xe0) | 3;
    expect(parse(b)).toEqual({
      ok: false,
      error: 'rtcp: RR with 3 report blocks needs 76 bytes, has 52 in the 1st RTCP packet of the compound',
      packets: [],
    });
    const s = buf(srPacket({ ...sr1, reports: [] }));
    s[0] |= 1;
    expect(parse(s)).toMatchObject({
      ok: false,
      error: 'rtcp: SR with 1 report blocks needs 48 bytes, has 24 in the 1st RTCP packet of the compound',
    });
    // An SR too short even for its sender info.
    expect(parse(buf(rtcp(200, 0, new Bytes().u32(1).u32(2).a)))).toMatchObject({
      ok: false,
      error: 'rtcp: SR with 0 report blocks needs 24 bytes, has 8 in the 1st RTCP packet of the compound',
    });
  });

  it('SDES: CNAME, NAME, TOOL per chunk; other items skipped; first occurrence wins', () => {
    const b = buf(
      sdesPacket([
        {
          ssrc: 0xdeadbeef,
          items: [
            [1, 'alice@192.0.2.1'],
            [3, 'alice@example.com'], // EMAIL: not kept
            [2, 'Alice Ångström'],
            [8, [3, 0x61, 0x62, 0x63, 0x78]], // PRIV: prefix length, prefix, value
            [6, 'softphone 1.2'],
            [1, 'second-cname'],
          ],
        },
        { ssrc: 2, items: [] },
        { ssrc: 3, items: [[7, 'on the phone']] },
      ]),
    );
    expect(mustParse(b)).toEqual([
      {
        type: 'sdes',
        chunks: [
          { ssrc: 0xdeadbeef, cname: 'alice@192.0.2.1', name: 'Alice Ångström', tool: 'softphone 1.2' },
          { ssrc: 2, cname: null, name: null, tool: null },
          { ssrc: 3, cname: null, name: null, tool: null },
        ],
      },
    ]);
  });

  it('SDES text is UTF-8 (invalid sequences become U+FFFD), the same from a Buffer and a Uint8Array', () => {
    const bytes = buf(
      sdesPacket([
        {
          ssrc: 1,
          items: [
            [1, [0x61, 0xff, 0x62, 0xc3]],
            [2, 'Zoë 😀'],
          ],
        },
      ]),
    );
    const want = [
      { type: 'sdes', chunks: [{ ssrc: 1, cname: 'a\ufffdb\ufffd', name: 'Zoë 😀', tool: null }] },
    ];
    expect(mustParse(bytes)).toEqual(want);
    expect(mustParse(new Uint8Array(bytes))).toEqual(want);
  });

  it('SDES: empty item, 255-byte item, terminator landing on a word boundary needs a whole null word', () => {
    const long = 'x'.repeat(255);
    // ssrc(4) + 1+1+2 = 8: the terminator starts a new word, padded with three more nulls.
    const b = buf(
      sdesPacket([
        { ssrc: 5, items: [[1, 'ab']] },
        {
          ssrc: 6,
          items: [
            [6, ''],
            [2, long],
          ],
        },
      ]),
    );
    expect(b.length).toBe(4 + 12 + 4 + 2 + 2 + 255 + 1);
    expect(mustParse(b)).toEqual([
      {
        type: 'sdes',
        chunks: [
          { ssrc: 5, cname: 'ab', name: null, tool: null },
          { ssrc: 6, cname: null, name: long, tool: '' },
        ],
      },
    ]);
  });

  it('SDES errors: item overrun, missing terminator, missing chunk', () => {
    // Item claims 20 bytes, 6 remain.
    expect(parse(buf(rtcp(202, 1, new Bytes().u32(1).u8(1).u8(20).raw([0x61, 0x62, 0, 0, 0, 0]).a)))).toEqual(
      {
        ok: false,
        error: 'rtcp: SDES item length 20 exceeds 6 remaining bytes in the 1st RTCP packet of the compound',
        packets: [],
      },
    );
    // Items fill the chunk exactly, no null octet.
    expect(parse(buf(rtcp(202, 1, new Bytes().u32(1).u8(1).u8(2).raw([0x61, 0x62]).a)))).toMatchObject({
      ok: false,
      error: 'rtcp: SDES chunk 1 not terminated in the 1st RTCP packet of the compound',
    });
    // An item header cut after its type octet.
    expect(parse(buf(rtcp(202, 1, new Bytes().u32(1).u8(1).u8(1).raw([0x61, 2]).a)))).toMatchObject({
      ok: false,
      error: 'rtcp: SDES chunk 1 not terminated in the 1st RTCP packet of the compound',
    });
    // Source count 2, one chunk present.
    const one = sdesPacket([{ ssrc: 1, items: [[1, 'a']] }]);
    one[0] = (one[0] & 0xe0) | 2;
    expect(parse(buf(one))).toMatchObject({
      ok: false,
      error: 'rtcp: SDES chunk 2 of 2 missing in the 1st RTCP packet of the compound',
    });
  });

  it('BYE: several sources with a reason, one without', () => {
    expect(mustParse(buf(byePacket([1, 0xffffffff, 3], 'camera servicing'), byePacket([4], null)))).toEqual([
      { type: 'bye', ssrcs: [1, 0xffffffff, 3], reason: 'camera servicing' },
      { type: 'bye', ssrcs: [4], reason: null },
    ]);
    expect(mustParse(buf(byePacket([], 'x')))).toEqual([{ type: 'bye', ssrcs: [], reason: 'x' }]);
    // A reason of exactly 3 bytes fills its word; 0 bytes is an (empty) reason on the wire.
    expect(mustParse(buf(byePacket([9], 'abc'), byePacket([9], '')))).toEqual([
      { type: 'bye', ssrcs: [9], reason: 'abc' },
      { type: 'bye', ssrcs: [9], reason: '' },
    ]);
  });

  it('BYE errors: source count beyond the length, reason overrun', () => {
    const b = buf(byePacket([1], null));
    b[0] = (b[0] & 0xe0) | 2;
    expect(parse(b)).toMatchObject({
      ok: false,
      error: 'rtcp: BYE with 2 sources needs 8 bytes, has 4 in the 1st RTCP packet of the compound',
    });
    expect(parse(buf(rtcp(203, 1, new Bytes().u32(1).u8(9).raw([0x61, 0x62, 0x63]).a)))).toMatchObject({
      ok: false,
      error: 'rtcp: BYE reason length 9 exceeds 3 remaining bytes in the 1st RTCP packet of the compound',
    });
  });

  it('APP: SSRC, four-character name, subtype from the count field; data skipped', () => {
    expect(mustParse(buf(appPacket(0x01020304, 'qak1', 31, [1, 2, 3, 4, 5, 6, 7, 8])))).toEqual([
      { type: 'app', ssrc: 0x01020304, name: 'qak1', subtype: 31 },
    ]);
    expect(parse(buf(rtcp(204, 0, [0, 0, 0, 1])))).toMatchObject({
      ok: false,
      error: 'rtcp: APP needs 8 bytes, has 4 in the 1st RTCP packet of the compound',
    });
  });

  it('XR VoIP metrics: every field, signed levels, MOS 127 → null; other block types skipped', () => {
    const m2: RtcpXrVoipMetrics = {
      ...metrics,
      ssrc: 1,
      signalLevel: 127,
      noiseLevel: 127,
      mosLq: null,
      mosCq: 5,
    };
    const b = buf(
      xrPacket(0x11111111, [rrtBlock(0xe1234567, 0x80000000), voipBlock(metrics), voipBlock(m2)]),
    );
    expect(mustParse(b)).toEqual([{ type: 'xr', ssrc: 0x11111111, voipMetrics: [metrics, m2] }]);
    // Spot-check the wire: MOS-LQ 41 at block offset 26, signal level 0xe0 (−32) at 20.
    expect(b[8 + 12 + 26]).toBe(41);
    expect(b[8 + 12 + 20]).toBe(0xe0);
    expect(mustParse(buf(xrPacket(5, [])))).toEqual([{ type: 'xr', ssrc: 5, voipMetrics: [] }]);
  });

  it('XR errors: block past the end, VoIP block with the wrong length, cut header, no SSRC', () => {
    const long = rrtBlock(1, 2);
    long[3] = 5;
    expect(parse(buf(xrPacket(1, [long])))).toMatchObject({
      ok: false,
      error: 'rtcp: XR block 1 length 24 exceeds 12 remaining bytes in the 1st RTCP packet of the compound',
    });
    const v = voipBlock(metrics).slice(0, 32);
    v[3] = 7;
    expect(parse(buf(xrPacket(1, [rrtBlock(1, 2), v])))).toMatchObject({
      ok: false,
      error:
        'rtcp: XR VoIP metrics block 2 length 7 words, expected 8 in the 1st RTCP packet of the compound',
    });
    expect(parse(buf(rtcp(207, 0, [])))).toMatchObject({
      ok: false,
      error: 'rtcp: XR needs 4 bytes, has 0 in the 1st RTCP packet of the compound',
    });
    // Padding of 2 leaves a 2-byte stub after the SSRC.
    expect(parse(buf(rtcp(207, 0, [0, 0, 0, 1, 7, 0], { padding: 2 })))).toMatchObject({
      ok: false,
      error: 'rtcp: XR block 1 header cut short (2 bytes) in the 1st RTCP packet of the compound',
    });
  });

  it('RTPFB/PSFB and unknown types after the first packet are skipped as "other"', () => {
    const nack = rtcp(205, 1, new Bytes().u32(1).u32(2).u16(100).u16(0).a);
    const b = buf(
      rrPacket({ type: 'rr', ssrc: 1, reports: [] }),
      nack,
      pliPacket(1, 2),
      rtcp(195, 1, [0, 0, 0, 7]),
    );
    expect(mustParse(b)).toEqual([
      { type: 'rr', ssrc: 1, reports: [] },
      { type: 'other', packetType: 205, length: 16 },
      { type: 'other', packetType: 206, length: 12 },
      { type: 'other', packetType: 195, length: 8 },
    ]);
    // A compound may start with feedback (RFC 5506 reduced-size RTCP).
    expect(mustParse(buf(pliPacket(1, 2)))).toEqual([{ type: 'other', packetType: 206, length: 12 }]);
  });

  it('a datagram whose first type is not 200..207 is not RTCP', () => {
    expect(parse(buf(rtcp(195, 0, [0, 0, 0, 1])))).toEqual({
      ok: false,
      error: 'rtcp: packet type 195 is not an RTCP type',
      packets: [],
    });
    expect(parse(Buffer.from([0x80, 0x00, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 1]))).toMatchObject({
      ok: false,
      packets: [],
    });
  });
});

describe('parseRtcpCompound: compound structure', () => {
  it('SR + SDES + BYE, the usual end-of-call compound', () => {
    const b = buf(
      srPacket(sr1),
      sdesPacket([{ ssrc: sr1.ssrc, items: [[1, 'bob@10.0.0.2']] }]),
      byePacket([sr1.ssrc], 'hangup'),
    );
    expect(mustParse(b)).toEqual([
      sr1,
      { type: 'sdes', chunks: [{ ssrc: sr1.ssrc, cname: 'bob@10.0.0.2', name: null, tool: null }] },
      { type: 'bye', ssrcs: [sr1.ssrc], reason: 'hangup' },
    ]);
  });

  it('padding on the last packet is removed before the body is read', () => {
    const rr: Rr = { type: 'rr', ssrc: 1, reports: [report(2)] };
    expect(mustParse(buf(srPacket(sr1), rrPacket(rr, { padding: 12 })))).toEqual([sr1, rr]);
    // SRTCP-style padding count that is not a multiple of 4 (SR body keeps 4 extension bytes).
    expect(
      mustParse(buf(srPacket({ ...sr1, reports: [] }, { extension: [1, 2, 3, 4, 5], padding: 3 }))),
    ).toEqual([{ ...sr1, reports: [] }]);
    // Without removing the padding, the BYE would read a reason out of it.
    expect(mustParse(buf(rrPacket(rr), byePacket([7], null, 4)))).toEqual([
      rr,
      { type: 'bye', ssrcs: [7], reason: null },
    ]);
    expect(
      mustParse(
        buf(rrPacket(rr), sdesPacket([{ ssrc: 7, items: [[1, 'c']] }]), appPacket(1, 'ABCD', 0, [], 8)),
      ),
    ).toHaveLength(3);
  });

  it('padding errors: not on the last packet, count 0, count larger than the packet', () => {
    const rr: Rr = { type: 'rr', ssrc: 1, reports: [] };
    expect(parse(buf(srPacket(sr1), rrPacket(rr, { padding: 4 }), byePacket([1], null)))).toEqual({
      ok: false,
      error: 'rtcp: padding bit on the 2nd RTCP packet of the compound, which is not the last',
      packets: [sr1],
    });
    const zero = buf(rrPacket(rr, { padding: 4 }));
    zero[zero.length - 1] = 0;
    expect(parse(zero)).toMatchObject({
      ok: false,
      error: 'rtcp: padding count 0 does not fit the 1st RTCP packet of the compound (12 bytes)',
    });
    const big = buf(rrPacket(rr, { padding: 4 }));
    big[big.length - 1] = 9;
    expect(parse(big)).toMatchObject({
      ok: false,
      error: 'rtcp: padding count 9 does not fit the 1st RTCP packet of the compound (12 bytes)',
    });
    // All of the body may be padding; the RR then lacks its SSRC.
    big[big.length - 1] = 8;
    expect(parse(big)).toMatchObject({
      ok: false,
      error: 'rtcp: RR with 0 report blocks needs 4 bytes, has 0 in the 1st RTCP packet of the compound',
    });
  });

  it('length field: beyond the datagram, version of a later packet', () => {
    const rr = rrPacket({ type: 'rr', ssrc: 1, reports: [] });
    // Packet 2 says 40 bytes (length field 9), 28 remain.
    const second = rtcp(202, 0, new Array(24).fill(0), { lengthField: 9 });
    expect(parse(buf(rr, second))).toEqual({
      ok: false,
      error: 'rtcp: length 40 exceeds 28 remaining bytes in the 2nd RTCP packet of the compound',
      packets: [{ type: 'rr', ssrc: 1, reports: [] }],
    });
    expect(parse(buf(rr, rtcp(202, 0, [], { version: 1 })))).toMatchObject({
      ok: false,
      error: 'rtcp: version 1 in the 2nd RTCP packet of the compound',
      packets: [{ type: 'rr' }],
    });
    expect(parse(buf(rtcp(201, 0, [0, 0, 0, 1], { version: 3 })))).toMatchObject({
      error: 'rtcp: version 3 in the 1st RTCP packet of the compound',
    });
    expect(parse(Buffer.from([0x80, 0xc9]))).toMatchObject({
      error: 'rtcp: 2-byte datagram is shorter than a header',
    });
    expect(parse(Buffer.alloc(0))).toMatchObject({ ok: false, error: 'rtcp: empty datagram' });
  });

  it('1..3 bytes after the last packet: the packets stand, with a warning instead of an error', () => {
    // RFC 3550 A.2 wants the lengths to add up to the datagram, but 1..3 bytes can be neither a packet
    // (§6.4.1: lengths are whole 32-bit words) nor padding (counted inside the last packet's length).
    const rr: Rr = { type: 'rr', ssrc: 1, reports: [report(2)] };
    for (const tail of [[0x80], [0x80, 0xca], [0, 0, 0]]) {
      expect(parse(buf(srPacket(sr1), rrPacket(rr), tail))).toEqual({
        ok: true,
        packets: [sr1, rr],
        trailingBytes: tail.length,
        warning: `rtcp: ${tail.length} trailing bytes after the 2nd RTCP packet of the compound`,
      });
    }
    // A padded packet followed by too few bytes for another packet is still the last one.
    expect(parse(buf(rrPacket(rr, { padding: 4 }), [0, 0]))).toEqual({
      ok: true,
      packets: [rr],
      trailingBytes: 2,
      warning: 'rtcp: 2 trailing bytes after the 1st RTCP packet of the compound',
    });
    // Four bytes or more must be the next packet's header.
    expect(parse(buf(rrPacket(rr), [0, 0, 0, 0]))).toEqual({
      ok: false,
      error: 'rtcp: version 0 in the 2nd RTCP packet of the compound',
      packets: [rr],
    });
    expect(parse(buf(rrPacket(rr, { padding: 4 }), [0x80, 0xc9, 0, 0]))).toMatchObject({
      ok: false,
      error: 'rtcp: padding bit on the 1st RTCP packet of the compound, which is not the last',
    });
    // 1..3 bytes alone are no RTCP; a compound without trailing bytes has no warning.
    expect(parse(Buffer.from([0x80, 0xc9, 0]))).toEqual({
      ok: false,
      error: 'rtcp: 3-byte datagram is shorter than a header',
      packets: [],
    });
    expect(parse(buf(srPacket(sr1), rrPacket(rr)))).toEqual({ ok: true, packets: [sr1, rr] });
  });

  it('names a packet by its place in the compound, so that no bare number reads like a capture packet', () => {
    const empty = rrPacket({ type: 'rr', ssrc: 1, reports: [] });
    const bad = rtcp(201, 0, [0, 0, 0, 1], { version: 1 });
    for (const [place, word] of [
      [1, '1st'],
      [4, '4th'],
      [11, '11th'],
      [12, '12th'],
      [13, '13th'],
      [21, '21st'],
      [22, '22nd'],
      [23, '23rd'],
      [111, '111th'],
      [112, '112th'],
    ] as const) {
      const r = parse(buf(...new Array(place - 1).fill(empty), bad));
      expect(r).toMatchObject({
        ok: false,
        error: `rtcp: version 1 in the ${word} RTCP packet of the compound`,
      });
    }
  });

  it('reads only [off, end) and never throws on a bad range', () => {
    const inner = buf(srPacket(sr1), byePacket([1], 'x'));
    const outer = Buffer.concat([
      Buffer.from([0x81, 0xc8, 0xff, 0xff]),
      inner,
      Buffer.from([0x80, 0xc9, 0, 9]),
    ]);
    expect(parseRtcpCompound(outer, 4, 4 + inner.length)).toEqual(parse(inner));
    for (const [o, e] of [
      [-1, 4],
      [0, outer.length + 1],
      [8, 4],
      [Number.NaN, 4],
      [0.5, 8],
      [0, Number.POSITIVE_INFINITY],
    ]) {
      const r = parseRtcpCompound(outer, o, e);
      expect(r.ok).toBe(false);
      expect(r.packets).toEqual([]);
    }
  });
});

describe('looksLikeRtcp (rtcp-mux demultiplexing, RFC 5761 §4)', () => {
  it('accepts the first header of every RTCP type 200..207', () => {
    for (let pt = 200; pt <= 207; pt++) {
      expect(looksLikeRtcp(buf(rtcp(pt, 1, [0, 0, 0, 1])), 0, 8)).toBe(true);
    }
    const b = buf(srPacket(sr1), byePacket([1], null));
    expect(looksLikeRtcp(b, 0, b.length)).toBe(true);
    // Padding bit and counts do not matter.
    expect(looksLikeRtcp(Buffer.from([0xbf, 0xc9, 0, 0]), 0, 4)).toBe(true);
  });

  it('rejects RTP, STUN, DTLS, other versions, and lengths beyond the datagram', () => {
    const rtp = (b1: number) => Buffer.from([0x80, b1, 0x12, 0x34, 0, 0, 0, 160, 1, 2, 3, 4]);
    expect(looksLikeRtcp(rtp(0x00), 0, 12)).toBe(false); // PCMU
    expect(looksLikeRtcp(rtp(0x88), 0, 12)).toBe(false); // PCMA with marker
    expect(looksLikeRtcp(rtp(0xe0), 0, 12)).toBe(false); // dynamic 96 with marker
    expect(looksLikeRtcp(rtp(0xe5), 0, 12)).toBe(false); // 101 telephone-event with marker
    expect(looksLikeRtcp(Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), 0, 8)).toBe(false); // STUN
    expect(looksLikeRtcp(Buffer.from([0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0]), 0, 8)).toBe(false); // DTLS
    expect(looksLikeRtcp(Buffer.from([0x40, 0xc8, 0, 0]), 0, 4)).toBe(false); // version 1
    expect(looksLikeRtcp(Buffer.from([0x80, 0xc8, 0, 6, 0, 0, 0, 0]), 0, 8)).toBe(false); // 28 bytes claimed
    expect(looksLikeRtcp(Buffer.from([0x80, 0xc7, 0, 0]), 0, 4)).toBe(false); // type 199
    expect(looksLikeRtcp(Buffer.from([0x80, 0xd0, 0, 0]), 0, 4)).toBe(false); // type 208
    expect(looksLikeRtcp(Buffer.from([0x80, 0xc9, 0]), 0, 3)).toBe(false);
    const b = Buffer.from([0, 0, 0x80, 0xc9, 0, 0]);
    expect(looksLikeRtcp(b, 2, 6)).toBe(true);
    expect(looksLikeRtcp(b, 2, 5)).toBe(false);
    expect(looksLikeRtcp(b, 2, 7)).toBe(false); // end beyond the buffer
  });
});

describe('ntpMiddle32 and roundTripMs (RFC 3550 §6.4.1)', () => {
  // RFC 3550 Figure 2: the SR left at 10 Nov 1995 11:33:25.125 UTC (NTP 0xb44db705:20000000), the RR
  // came back at 11:33:36.5 UTC. A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000 (46853.125 s),
  // DLSR = 0x0005:4000 (5.250 s): A − LSR − DLSR = 0x0006:2000 = 6.125 s. (Not 1.25 s.)
  const srTime = Date.UTC(1995, 10, 10, 11, 33, 25) / 1000;
  const arrival = Date.UTC(1995, 10, 10, 11, 33, 36) / 1000;

  it('middle 32 bits of the RFC example times', () => {
    expect(ntpMiddle32(srTime, 125_000_000)).toBe(0xb7052000);
    expect(ntpMiddle32(arrival, 500_000_000)).toBe(0xb7108000);
    expect(0xb7108000 - 0xb7052000 - 0x00054000).toBe(0x00062000);
  });

  it('round trip of the RFC example is 6125 ms', () => {
    expect(roundTripMs(ntpMiddle32(arrival, 500_000_000), 0xb7052000, 0x00054000)).toBe(6125);
    expect(roundTripMs(0xb7108000, 0xb7052000, 0x00054000)).toBe(6125);
  });

  it('hand-computed conversions: the Unix epoch, sub-second rounding, ns carry', () => {
    // NTP(1970-01-01) = 2208988800 s = 0x83aa7e80; 0.5 s = 0x8000 in 1/65536 s.
    expect(ntpMiddle32(0, 0)).toBe(0x7e800000);
    expect(ntpMiddle32(0, 500_000_000)).toBe(0x7e808000);
    // 1 ns short of a second: fraction floor(999999999 * 65536 / 1e9) = 65535.
    expect(ntpMiddle32(0, 999_999_999)).toBe(0x7e80ffff);
    expect(ntpMiddle32(0, 1_500_000_000)).toBe(0x7e818000);
    // 15.258789 µs = one 1/65536 s tick: 15258 ns is still tick 0, 15259 is tick 1.
    expect(ntpMiddle32(0, 15_258)).toBe(0x7e800000);
    expect(ntpMiddle32(0, 15_259)).toBe(0x7e800001);
    // 2036-02-07 06:28:16 UTC is NTP era 1 second 0.
    expect(ntpMiddle32(2_085_978_496, 0)).toBe(0);
  });

  it('wraps the 16.16 clock, rejects LSR 0, negative and implausible values', () => {
    // SR at 0xffff:f000, RR 1 s later after the wrap, DLSR 0.5 s → 0.5 s.
    expect(roundTripMs(0x0000_f000, 0xffff_f000, 0x8000)).toBe(500);
    expect(roundTripMs(0x1234_0000, 0, 0)).toBeNull();
    expect(roundTripMs(0x1234_0000, 0x1234_0001, 0)).toBeNull();
    expect(roundTripMs(0x1234_0000, 0x1230_0000, 0x0004_0001)).toBeNull();
    expect(roundTripMs(0x1234_0000, 0x1234_0000, 0)).toBe(0);
    expect(roundTripMs(60 * 65536 + 1, 1, 0)).toBe(60_000);
    expect(roundTripMs(60 * 65536 + 2, 1, 0)).toBeNull();
    expect(roundTripMs(0x0001_0000, 0x0000_8000, 0x0000_4000)).toBe(250);
  });
});

// ---------------------------------------------------------------------------------------------------
// Random compounds (seeded)

function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

type Rnd = () => number;
const int = (rnd: Rnd, n: number) => Math.floor(rnd() * n);
const u32 = (rnd: Rnd) => (int(rnd, 65536) * 65536 + int(rnd, 65536)) >>> 0;
const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[int(rnd, xs.length)];

/** Printable ASCII without ',' (tshark's occurrence separator). */
function asciiText(rnd: Rnd, min: number, max: number): string {
  const n = min + int(rnd, max - min + 1);
  let s = '';
  while (s.length < n) {
    const c = 32 + int(rnd, 95);
    if (c !== 44) s += String.fromCharCode(c);
  }
  return s;
}

function randomReport(rnd: Rnd): RtcpReportBlock {
  const raw = int(rnd, 256);
  const cum = pick(rnd, [0, 1, -1, 0x7fffff, -0x800000, int(rnd, 0x1000000) - 0x800000]);
  return report(u32(rnd), {
    fractionLostRaw: raw,
    fractionLost: raw / 256,
    cumulativeLost: cum,
    highestSeq: u32(rnd),
    jitter: pick(rnd, [0, int(rnd, 2000), u32(rnd)]),
    lsr: pick(rnd, [0, u32(rnd)]),
    dlsr: u32(rnd),
  });
}

function randomMetrics(rnd: Rnd): RtcpXrVoipMetrics {
  const mos = () => (rnd() < 0.2 ? null : (10 + int(rnd, 41)) / 10);
  const level = () => (rnd() < 0.2 ? 127 : int(rnd, 256) - 128);
  return {
    ssrc: u32(rnd),
    lossRate: int(rnd, 256),
    discardRate: int(rnd, 256),
    burstDensity: int(rnd, 256),
    gapDensity: int(rnd, 256),
    burstDurationMs: int(rnd, 65536),
    gapDurationMs: int(rnd, 65536),
    roundTripDelayMs: int(rnd, 65536),
    endSystemDelayMs: int(rnd, 65536),
    signalLevel: level(),
    noiseLevel: level(),
    rerl: rnd() < 0.2 ? 127 : int(rnd, 256),
    gmin: int(rnd, 256),
    rFactor: rnd() < 0.2 ? 127 : int(rnd, 101),
    extRFactor: rnd() < 0.2 ? 127 : int(rnd, 101),
    mosLq: mos(),
    mosCq: mos(),
    rxConfig: int(rnd, 256),
    jbNominal: int(rnd, 65536),
    jbMaximum: int(rnd, 65536),
    jbAbsMax: int(rnd, 65536),
  };
}

/** APP names tshark hands to its own sub-dissectors (PoC1, 3GPP, MCPT, MCCP) are avoided. */
function appName(rnd: Rnd): string {
  for (;;) {
    const n = asciiText(rnd, 4, 4).replace(/[^A-Za-z0-9]/g, 'z');
    if (!/^(poc1|3gpp|mcpt|mccp)$/i.test(n)) return n;
  }
}

interface Compound {
  bytes: Buffer;
  model: RtcpPacket[];
}

/**
 * A random compound: SR or RR first, then some of SDES, XR, APP, PLI, and BYE last; the last packet
 * sometimes padded.
 */
function randomCompound(rnd: Rnd): Compound {
  const parts: number[][] = [];
  const model: RtcpPacket[] = [];
  const ssrc = u32(rnd);
  const kinds: string[] = [rnd() < 0.6 ? 'sr' : 'rr'];
  if (rnd() < 0.8) kinds.push('sdes');
  if (rnd() < 0.35) kinds.push('xr');
  if (rnd() < 0.2) kinds.push('app');
  if (rnd() < 0.1) kinds.push('pli');
  if (rnd() < 0.3) kinds.push('bye');
  kinds.forEach((kind, index) => {
    const last = index === kinds.length - 1;
    const padding = last && rnd() < 0.2 ? pick(rnd, [4, 8, 12]) : 0;
    const reports = Array.from({ length: int(rnd, 4) }, () => randomReport(rnd));
    switch (kind) {
      case 'sr': {
        const p: Sr = {
          type: 'sr',
          ssrc,
          sender: {
            ntpSeconds: u32(rnd),
            ntpFraction: u32(rnd),
            rtpTimestamp: u32(rnd),
            packetCount: u32(rnd),
            octetCount: u32(rnd),
          },
          reports,
        };
        parts.push(srPacket(p, { padding }));
        model.push(p);
        break;
      }
      case 'rr': {
        const p: Rr = { type: 'rr', ssrc, reports };
        parts.push(rrPacket(p, { padding }));
        model.push(p);
        break;
      }
      case 'sdes': {
        const chunks = Array.from({ length: 1 + int(rnd, 2) }, (_, k) => ({
          ssrc: k === 0 ? ssrc : u32(rnd),
          cname: asciiText(rnd, 1, 40),
          name: rnd() < 0.4 ? asciiText(rnd, 1, 60) : null,
          tool: rnd() < 0.3 ? asciiText(rnd, 1, 255) : null,
        }));
        const items = (c: (typeof chunks)[number]) => {
          const out: [number, string][] = [[1, c.cname]];
          if (c.name !== null) out.push([2, c.name]);
          if (c.tool !== null) out.push([6, c.tool]);
          return out;
        };
        parts.push(
          sdesPacket(
            chunks.map((c) => ({ ssrc: c.ssrc, items: items(c) })),
            padding,
          ),
        );
        model.push({ type: 'sdes', chunks });
        break;
      }
      case 'xr': {
        const voip = Array.from({ length: 1 + int(rnd, 2) }, () => randomMetrics(rnd));
        const blocksOut = voip.map(voipBlock);
        if (rnd() < 0.3) blocksOut.unshift(rrtBlock(u32(rnd), u32(rnd)));
        parts.push(xrPacket(ssrc, blocksOut, padding));
        model.push({ type: 'xr', ssrc, voipMetrics: voip });
        break;
      }
      case 'app': {
        const name = appName(rnd);
        const subtype = int(rnd, 32);
        const data = Array.from({ length: 4 * int(rnd, 4) }, () => 65 + int(rnd, 26));
        parts.push(appPacket(ssrc, name, subtype, data, padding));
        model.push({ type: 'app', ssrc, name, subtype });
        break;
      }
      case 'pli':
        parts.push(pliPacket(ssrc, u32(rnd)));
        model.push({ type: 'other', packetType: 206, length: 12 });
        break;
      default: {
        const ssrcs = Array.from({ length: 1 + int(rnd, 3) }, (_, k) => (k === 0 ? ssrc : u32(rnd)));
        const reason = rnd() < 0.6 ? asciiText(rnd, 1, 40) : null;
        parts.push(byePacket(ssrcs, reason, padding));
        model.push({ type: 'bye', ssrcs, reason });
      }
    }
  });
  return { bytes: buf(...parts), model };
}

// ---------------------------------------------------------------------------------------------------
// tshark oracle

/** The fields compared, in `-e` order after frame.number. */
const FIELDS = [
  'rtcp.pt',
  'rtcp.rc',
  'rtcp.sc',
  'rtcp.senderssrc',
  'rtcp.timestamp.ntp.msw',
  'rtcp.timestamp.ntp.lsw',
  'rtcp.timestamp.rtp',
  'rtcp.sender.packetcount',
  'rtcp.sender.octetcount',
  'rtcp.ssrc.identifier',
  'rtcp.ssrc.fraction',
  'rtcp.ssrc.cum_nr',
  'rtcp.ssrc.ext_high',
  'rtcp.ssrc.jitter',
  'rtcp.ssrc.lsr',
  'rtcp.ssrc.dlsr',
  'rtcp.sdes.text',
  'rtcp.app.name',
  'rtcp.app.subtype',
  'rtcp.ssrc.discarded',
  'rtcp.xr.voipmetrics.burstdensity',
  'rtcp.xr.voipmetrics.gapdensity',
  'rtcp.xr.voipmetrics.burstduration',
  'rtcp.xr.voipmetrics.gapduration',
  'rtcp.xr.voipmetrics.rtdelay',
  'rtcp.xr.voipmetrics.esdelay',
  'rtcp.xr.voipmetrics.signallevel',
  'rtcp.xr.voipmetrics.noiselevel',
  'rtcp.xr.voipmetrics.rerl',
  'rtcp.xr.voipmetrics.gmin',
  'rtcp.xr.voipmetrics.rfactor',
  'rtcp.xr.voipmetrics.extrfactor',
  'rtcp.xr.voipmetrics.moslq',
  'rtcp.xr.voipmetrics.moscq',
  'rtcp.xr.voipmetrics.plc',
  'rtcp.xr.voipmetrics.jba',
  'rtcp.xr.voipmetrics.jbrate',
  'rtcp.xr.voipmetrics.jbnominal',
  'rtcp.xr.voipmetrics.jbmax',
  'rtcp.xr.voipmetrics.jbabsmax',
  '_ws.malformed',
] as const;

const hex32 = (v: number) => `0x${v.toString(16).padStart(8, '0')}`;

/**
 * Our decode printed the way `tshark -T fields` prints it (tshark 4.0, probed): every occurrence in
 * wire order joined by ',', SSRCs as 0x%08x, signed fields signed, MOS as a float ("4.1") or the raw
 * 127 when unavailable. Which tshark field each value lands in follows packet-rtcp.c: report blocks,
 * SDES chunks, BYE sources, the APP SSRC and XR VoIP blocks all use rtcp.ssrc.identifier; the XR loss
 * rate uses rtcp.ssrc.fraction; a BYE reason is an rtcp.sdes.text. A PSFB's sender SSRC (not in our
 * result) is read from the bytes.
 */
function asTsharkFields(
  packets: RtcpPacket[],
  bytes: Buffer,
): { fields: Record<(typeof FIELDS)[number], string>; quirk: string | null } {
  const f = Object.fromEntries(FIELDS.map((k) => [k, [] as string[]])) as unknown as Record<
    (typeof FIELDS)[number],
    string[]
  >;
  let off = 0;
  const reportFields = (reports: RtcpReportBlock[]) => {
    for (const r of reports) {
      f['rtcp.ssrc.identifier'].push(hex32(r.ssrc));
      f['rtcp.ssrc.fraction'].push(String(r.fractionLostRaw));
      f['rtcp.ssrc.cum_nr'].push(String(r.cumulativeLost));
      f['rtcp.ssrc.ext_high'].push(String(r.highestSeq));
      f['rtcp.ssrc.jitter'].push(String(r.jitter));
      f['rtcp.ssrc.lsr'].push(String(r.lsr));
      f['rtcp.ssrc.dlsr'].push(String(r.dlsr));
    }
  };
  let quirk: string | null = null;
  let byeWarning = false;
  for (const p of packets) {
    const pt = bytes[off + 1];
    f['rtcp.pt'].push(String(pt));
    const padded = (bytes[off] & 0x20) !== 0;
    switch (p.type) {
      case 'sr':
        f['rtcp.rc'].push(String(p.reports.length));
        f['rtcp.senderssrc'].push(hex32(p.ssrc));
        if (padded) quirk = 'padded SR';
        f['rtcp.timestamp.ntp.msw'].push(String(p.sender.ntpSeconds));
        f['rtcp.timestamp.ntp.lsw'].push(String(p.sender.ntpFraction));
        f['rtcp.timestamp.rtp'].push(String(p.sender.rtpTimestamp));
        f['rtcp.sender.packetcount'].push(String(p.sender.packetCount));
        f['rtcp.sender.octetcount'].push(String(p.sender.octetCount));
        reportFields(p.reports);
        break;
      case 'rr':
        f['rtcp.rc'].push(String(p.reports.length));
        f['rtcp.senderssrc'].push(hex32(p.ssrc));
        if (padded) quirk = 'padded RR';
        reportFields(p.reports);
        break;
      case 'sdes':
        f['rtcp.sc'].push(String(p.chunks.length));
        for (const c of p.chunks) {
          f['rtcp.ssrc.identifier'].push(hex32(c.ssrc));
          for (const t of [c.cname, c.name, c.tool]) if (t !== null) f['rtcp.sdes.text'].push(t);
        }
        break;
      case 'bye':
        f['rtcp.sc'].push(String(p.ssrcs.length));
        for (const s of p.ssrcs) f['rtcp.ssrc.identifier'].push(hex32(s));
        if (p.reason !== null) f['rtcp.sdes.text'].push(p.reason);
        else if (padded) {
          quirk = 'padded BYE without reason';
          f['rtcp.sdes.text'].push('');
          // The 3 octets after that "length" must be null; the padding count is among them when it is ≤ 4.
          byeWarning = bytes[bytes.length - 1] <= 4;
        }
        break;
      case 'app':
        f['rtcp.app.subtype'].push(String(p.subtype));
        f['rtcp.ssrc.identifier'].push(hex32(p.ssrc));
        f['rtcp.app.name'].push(p.name);
        break;
      case 'xr':
        f['rtcp.senderssrc'].push(hex32(p.ssrc));
        for (const m of p.voipMetrics) {
          const mos = (v: number | null) => (v === null ? '127' : String(v));
          f['rtcp.ssrc.identifier'].push(hex32(m.ssrc));
          f['rtcp.ssrc.fraction'].push(String(m.lossRate));
          f['rtcp.ssrc.discarded'].push(String(m.discardRate));
          f['rtcp.xr.voipmetrics.burstdensity'].push(String(m.burstDensity));
          f['rtcp.xr.voipmetrics.gapdensity'].push(String(m.gapDensity));
          f['rtcp.xr.voipmetrics.burstduration'].push(String(m.burstDurationMs));
          f['rtcp.xr.voipmetrics.gapduration'].push(String(m.gapDurationMs));
          f['rtcp.xr.voipmetrics.rtdelay'].push(String(m.roundTripDelayMs));
          f['rtcp.xr.voipmetrics.esdelay'].push(String(m.endSystemDelayMs));
          f['rtcp.xr.voipmetrics.signallevel'].push(String(m.signalLevel));
          f['rtcp.xr.voipmetrics.noiselevel'].push(String(m.noiseLevel));
          f['rtcp.xr.voipmetrics.rerl'].push(String(m.rerl));
          f['rtcp.xr.voipmetrics.gmin'].push(String(m.gmin));
          f['rtcp.xr.voipmetrics.rfactor'].push(String(m.rFactor));
          f['rtcp.xr.voipmetrics.extrfactor'].push(String(m.extRFactor));
          f['rtcp.xr.voipmetrics.moslq'].push(mos(m.mosLq));
          f['rtcp.xr.voipmetrics.moscq'].push(mos(m.mosCq));
          f['rtcp.xr.voipmetrics.plc'].push(String(m.rxConfig >> 6));
          f['rtcp.xr.voipmetrics.jba'].push(String((m.rxConfig >> 4) & 3));
          f['rtcp.xr.voipmetrics.jbrate'].push(String(m.rxConfig & 15));
          f['rtcp.xr.voipmetrics.jbnominal'].push(String(m.jbNominal));
          f['rtcp.xr.voipmetrics.jbmax'].push(String(m.jbMaximum));
          f['rtcp.xr.voipmetrics.jbabsmax'].push(String(m.jbAbsMax));
        }
        break;
      case 'other':
        // PSFB/RTPFB carry the sender SSRC first; the media SSRC goes to rtcp.mediassrc (not compared).
        if (pt === 205 || pt === 206) f['rtcp.senderssrc'].push(hex32(bytes.readUInt32BE(off + 4)));
        break;
    }
    off += (bytes.readUInt16BE(off + 2) + 1) * 4;
  }
  // tshark 4.0 quirks, both on the last packet only (the only one that may be padded):
  // - SR/RR: bytes after the report blocks are taken as a profile-specific extension *including* the
  //   padding, then the padding is skipped a second time, past the end: "Malformed Packet".
  // - BYE without a reason: the first padding octet is read as a reason length (an empty
  //   rtcp.sdes.text), then the padding is skipped past the end the same way.
  if (byeWarning) f['_ws.malformed'].push('_ws.malformed');
  if (quirk) f['_ws.malformed'].push('[Malformed Packet: RTCP]', '_ws.malformed');
  const fields = Object.fromEntries(FIELDS.map((k) => [k, f[k].join(',')]));
  return { fields: fields as Record<(typeof FIELDS)[number], string>, quirk };
}

needs('tshark').describe('tshark oracle', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) removeTmpDir(d);
  });

  it('~200 random compounds decode field for field as tshark 4.0 decodes them', async () => {
    const dir = tmpDir('callscope-rtcp-');
    dirs.push(dir);
    const file = join(dir, 'rtcp.pcap');
    const rnd = prng(0x5eed_3550);
    const frames: Compound[] = [];
    const writer = new PcapWriter(file, { linkType: LINKTYPE_RAW });
    for (let i = 0; i < 200; i++) {
      const c = randomCompound(rnd);
      frames.push(c);
      writer.write(1_700_000_000 + i, 0, ipv4Udp(c.bytes, { srcPort: 40001, dstPort: 40001, id: i }));
    }
    writer.close();

    const args = ['-n', '-r', file, '-d', 'udp.port==40001,rtcp', '-T', 'fields', '-E', 'separator=/t'];
    args.push('-e', 'frame.number', ...FIELDS.flatMap((k) => ['-e', k]));
    const run = await runTshark(args);
    const rows = run.stdout.split('\n').filter((l) => l !== '');
    expect(rows).toHaveLength(frames.length);

    let values = 0;
    let nonEmpty = 0;
    const counts: Record<string, number> = {};
    const quirks: Record<string, number> = {};
    rows.forEach((row, i) => {
      const cols = row.split('\t');
      expect(cols).toHaveLength(FIELDS.length + 1);
      expect(cols[0]).toBe(String(i + 1));
      const { bytes, model } = frames[i];
      const ours = parse(bytes);
      // Our own builder's model first, then tshark.
      expect(ours, `frame ${i + 1}`).toEqual({ ok: true, packets: model });
      for (const p of ours.packets) counts[p.type] = (counts[p.type] ?? 0) + 1;
      const { fields: want, quirk } = asTsharkFields(ours.packets, bytes);
      if (quirk) quirks[quirk] = (quirks[quirk] ?? 0) + 1;
      const got = Object.fromEntries(FIELDS.map((k, j) => [k, cols[j + 1]]));
      expect(got, `frame ${i + 1}`).toEqual(want);
      for (const k of FIELDS) {
        if (want[k] === '' || k === '_ws.malformed') continue;
        nonEmpty++;
        values += want[k].split(',').length;
      }
    });
    console.log(
      `[rtcp oracle] ${rows.length} frames, ${JSON.stringify(counts)} packets, ${nonEmpty} non-empty fields, ${values} values equal to tshark's; tshark malformed (its padding quirks): ${JSON.stringify(quirks)}`,
    );
  });

  it('round trip from SR/RR pairs agrees with tshark’s capture-time estimate', async () => {
    // tshark remembers when each SR was captured and, for an RR quoting it, prints capture gap − DLSR
    // (whole ms, truncated). With the SR's NTP time equal to its capture time, A − LSR − DLSR is the same
    // delay to within 2 ms of truncation.
    const dir = tmpDir('callscope-rtcp-rtt-');
    dirs.push(dir);
    const file = join(dir, 'rtt.pcap');
    const rnd = prng(77);
    const writer = new PcapWriter(file, { linkType: LINKTYPE_RAW, nanosecond: true });
    const ours: (number | null)[] = [];
    let t = 1_700_000_000n * 1_000_000_000n + 123_456_789n;
    for (let i = 0; i < 30; i++) {
      const a = 0x0a000001 + 2 * i;
      const b = a + 1;
      const srSec = Number(t / 1_000_000_000n);
      const srNsec = Number(t % 1_000_000_000n);
      const ntpSec = (srSec + 2_208_988_800) >>> 0;
      const ntpFrac = Number((BigInt(srNsec) << 32n) / 1_000_000_000n);
      const sr: Sr = {
        type: 'sr',
        ssrc: 1000 + i,
        sender: {
          ntpSeconds: ntpSec,
          ntpFraction: ntpFrac,
          rtpTimestamp: 0,
          packetCount: 1,
          octetCount: 160,
        },
        reports: [],
      };
      writer.write(
        srSec,
        srNsec,
        ipv4Udp(buf(srPacket(sr)), { src: a, dst: b, srcPort: 40001, dstPort: 40001 }),
      );
      // The LSR as RFC 3550 defines it, from the SR's own NTP fields.
      const lsr = (((ntpSec & 0xffff) << 16) | (ntpFrac >>> 16)) >>> 0;
      const rttNs = BigInt(int(rnd, 400_000_000));
      const dlsr = int(rnd, 5 * 65536) + 1;
      const hold = (BigInt(dlsr) * 1_000_000_000n) / 65536n;
      const rrT = t + rttNs + hold;
      const rrSec = Number(rrT / 1_000_000_000n);
      const rrNsec = Number(rrT % 1_000_000_000n);
      const rr: Rr = { type: 'rr', ssrc: 2000 + i, reports: [report(1000 + i, { lsr, dlsr })] };
      writer.write(
        rrSec,
        rrNsec,
        ipv4Udp(buf(rrPacket(rr)), { src: b, dst: a, srcPort: 40001, dstPort: 40001 }),
      );
      const decoded = mustParse(buf(rrPacket(rr)))[0] as Rr;
      ours.push(roundTripMs(ntpMiddle32(rrSec, rrNsec), decoded.reports[0].lsr, decoded.reports[0].dlsr));
      t = rrT + 1_000_000_000n + BigInt(int(rnd, 1_000_000_000));
    }
    writer.close();
    const run = await runTshark([
      '-n',
      '-r',
      file,
      '-d',
      'udp.port==40001,rtcp',
      '-o',
      'rtcp.show_roundtrip_calculation:TRUE',
      '-o',
      'rtcp.roundtrip_min_threshhold:0',
      '-T',
      'fields',
      '-e',
      'rtcp.roundtrip-delay',
    ]);
    const delays = run.stdout
      .split('\n')
      .filter((_, i) => i % 2 === 1)
      .slice(0, 30)
      .map(Number);
    expect(delays).toHaveLength(30);
    delays.forEach((tsharkMs, i) => {
      const mine = ours[i];
      expect(mine, `pair ${i}`).not.toBeNull();
      expect(
        Math.abs((mine as number) - tsharkMs),
        `pair ${i}: ours ${mine}, tshark ${tsharkMs}`,
      ).toBeLessThanOrEqual(2);
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// Fuzz

const isU32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
const isU = (v: unknown, max: number) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= max;
const isText = (v: unknown) => v === null || (typeof v === 'string' && v.length <= 255);

/** Why a result breaks the documented shape, or null. */
function shapeProblem(r: RtcpParseResult): string | null {
  if (typeof r !== 'object' || r === null || !Array.isArray(r.packets)) return 'no packets array';
  if (r.ok === false) {
    if (typeof r.error !== 'string' || !r.error.startsWith('rtcp: ') || r.error.length > 120)
      return `error ${r.error}`;
  } else if (r.ok !== true || r.packets.length === 0) return 'ok without packets';
  else if (r.trailingBytes !== undefined || r.warning !== undefined) {
    if (!isU(r.trailingBytes, 3) || r.trailingBytes === 0) return `trailingBytes ${r.trailingBytes}`;
    const m = /^rtcp: ([123]) trailing bytes after the (\d+)(st|nd|rd|th) RTCP packet of the compound$/.exec(
      r.warning ?? '',
    );
    if (m === null || Number(m[1]) !== r.trailingBytes || Number(m[2]) !== r.packets.length)
      return `warning ${r.warning}`;
  }
  for (const p of r.packets) {
    switch (p.type) {
      case 'sr':
      case 'rr': {
        if (!isU32(p.ssrc) || p.reports.length > 31) return `${p.type} header`;
        if (p.type === 'sr' && !Object.values(p.sender).every(isU32)) return 'sender info';
        for (const b of p.reports) {
          const ok =
            isU32(b.ssrc) &&
            isU(b.fractionLostRaw, 255) &&
            b.fractionLost === b.fractionLostRaw / 256 &&
            Number.isInteger(b.cumulativeLost) &&
            b.cumulativeLost >= -0x800000 &&
            b.cumulativeLost < 0x800000 &&
            [b.highestSeq, b.jitter, b.lsr, b.dlsr].every(isU32);
          if (!ok) return `report block ${JSON.stringify(b)}`;
        }
        break;
      }
      case 'sdes':
        if (p.chunks.length > 31) return 'sdes count';
        for (const c of p.chunks)
          if (!isU32(c.ssrc) || !isText(c.cname) || !isText(c.name) || !isText(c.tool)) return 'chunk';
        break;
      case 'bye':
        if (p.ssrcs.length > 31 || !p.ssrcs.every(isU32) || !isText(p.reason)) return 'bye';
        break;
      case 'app':
        if (!isU32(p.ssrc) || p.name.length !== 4 || !isU(p.subtype, 31)) return 'app';
        break;
      case 'xr':
        if (!isU32(p.ssrc)) return 'xr';
        for (const m of p.voipMetrics) {
          const { signalLevel, noiseLevel, mosLq, mosCq, ssrc, ...rest } = m;
          const ok =
            isU32(ssrc) &&
            Object.values(rest).every((v) => isU(v, 65535)) &&
            [signalLevel, noiseLevel].every((v) => Number.isInteger(v) && v >= -128 && v <= 127) &&
            [mosLq, mosCq].every(
              (v) => v === null || (v >= 0 && v <= 25.5 && Math.abs(v * 10 - Math.round(v * 10)) < 1e-9),
            );
          if (!ok) return `voip metrics ${JSON.stringify(m)}`;
        }
        break;
      case 'other':
        if (!isU(p.packetType, 255) || !isU(p.length, 4 * 65536) || p.length % 4 !== 0) return 'other';
        break;
      default:
        return `type ${(p as { type: unknown }).type}`;
    }
  }
  return null;
}

function mutate(rnd: Rnd, src: Buffer): Buffer {
  let b = Buffer.from(src);
  const ops = 1 + int(rnd, 4);
  for (let k = 0; k < ops && b.length > 0; k++) {
    const at = int(rnd, b.length);
    switch (int(rnd, 9)) {
      case 0:
        b[at] ^= 1 << int(rnd, 8);
        break;
      case 1:
        b[at] = pick(rnd, [0, 0x7f, 0x80, 0xff, 0x20, 0xa0, 0xbf, 0xc8, 0xca, 0xcf]);
        break;
      case 2:
        b = b.subarray(0, at);
        break;
      case 3: {
        // A length field (at a 4-byte boundary + 2) set to an extreme.
        const h = at & ~3;
        if (h + 3 < b.length)
          b.writeUInt16BE(pick(rnd, [0, 1, 0xffff, 0x7fff, (b.readUInt16BE(h + 2) + 1) & 0xffff, 2]), h + 2);
        break;
      }
      case 4: {
        // Header bits: padding, count 0/31, version.
        const h = at & ~3;
        b[h] = pick(rnd, [b[h] ^ 0x20, (b[h] & 0xe0) | 31, b[h] & 0xe0, b[h] ^ 0x40]);
        break;
      }
      case 5:
        b[b.length - 1] = int(rnd, 256);
        break;
      case 6:
        b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + int(rnd, 8) }, () => int(rnd, 256)))]);
        break;
      case 7:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + int(rnd, 8))]);
        break;
      default:
        b = Buffer.concat([b.subarray(0, at), b.subarray(int(rnd, b.length))]);
    }
  }
  return b;
}

describe('fuzz', () => {
  it('50,000 random and mutated inputs: never throws, results keep their shape and stay inside [off, end)', () => {
    const rnd = prng(Number(process.env.RTCP_FUZZ_SEED ?? 0xc0ffee));
    const seeds = Array.from({ length: 64 }, () => randomCompound(rnd).bytes);
    const total = Number(process.env.RTCP_FUZZ_N ?? 50_000);
    let okCount = 0;
    const errors = new Map<string, number>();
    for (let i = 0; i < total; i++) {
      let input: Buffer;
      const kind = int(rnd, 10);
      if (kind < 2) {
        input = Buffer.from(Array.from({ length: int(rnd, 80) }, () => int(rnd, 256)));
        if (input.length > 0 && rnd() < 0.7) input[0] = 0x80 | int(rnd, 64);
        if (input.length > 1 && rnd() < 0.7) input[1] = 192 + int(rnd, 32);
      } else {
        input = mutate(rnd, pick(rnd, seeds));
      }
      let r: RtcpParseResult;
      let framed: RtcpParseResult;
      let looks: boolean;
      // Garbage on both sides must not change the result: nothing is read outside [off, end).
      const before = int(rnd, 5);
      const outer = Buffer.concat([
        Buffer.from(Array.from({ length: before }, () => int(rnd, 256))),
        input,
        Buffer.from([0x80, 0xc8, 0x00, 0x06, 0xff]),
      ]);
      try {
        r = parseRtcpCompound(input, 0, input.length);
        framed = parseRtcpCompound(outer, before, before + input.length);
        looks = looksLikeRtcp(input, 0, input.length);
        looksLikeRtcp(outer, int(rnd, outer.length + 2) - 1, int(rnd, outer.length + 3) - 1);
        parseRtcpCompound(outer, int(rnd, outer.length + 2) - 1, int(rnd, outer.length + 3) - 1);
      } catch (e) {
        throw new Error(`iteration ${i} threw on ${input.toString('hex')}: ${String(e)}`);
      }
      const problem = shapeProblem(r);
      if (problem) throw new Error(`iteration ${i}: ${problem} for ${input.toString('hex')}`);
      if (!Object.is(JSON.stringify(framed), JSON.stringify(r))) {
        throw new Error(
          `iteration ${i}: result depends on bytes outside the range: ${input.toString('hex')}`,
        );
      }
      if (!r.ok) {
        const kind = r.error.replace(/-?\d+/g, 'N');
        errors.set(kind, (errors.get(kind) ?? 0) + 1);
      } else {
        okCount++;
        if (!looks)
          throw new Error(`iteration ${i}: parsed but looksLikeRtcp is false: ${input.toString('hex')}`);
      }
    }
    console.log(`[rtcp fuzz] ${total} inputs, ${okCount} decoded, ${errors.size} kinds of error:`);
    for (const [kind, n] of [...errors].sort((a, b) => b[1] - a[1]))
      console.log(`  ${String(n).padStart(6)}  ${kind}`);
    // The mutations must leave a fair share valid, or the decoder's happy paths go unexercised.
    expect(okCount).toBeGreaterThan(total / 20);
    expect(okCount).toBeLessThan(total);
  });
});
