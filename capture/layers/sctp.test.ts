import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { needs, SHARED_CAPTURES, SHARED_DIR } from '../../test/oracle/tools.js';
import { forEachSctpData, SCTP_FLAG_BEGIN, SCTP_FLAG_END, SCTP_FLAG_UNORDERED } from './sctp.js';

interface Seen {
  ppid: number;
  sid: number;
  tsn: number;
  flags: number;
  data: string;
}

function walk(pkt: Buffer, off = 0, end = pkt.length, emitFragments = false) {
  const seen: Seen[] = [];
  const r = forEachSctpData(
    pkt,
    off,
    end,
    (ppid, sid, tsn, flags, b, s, e) => {
      seen.push({ ppid, sid, tsn, flags, data: b.toString('latin1', s, e) });
    },
    { emitFragments },
  );
  return { r, seen };
}

/** Common header: ports, verification tag, checksum (not checked). */
function common(src: number, dst: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(src, 0);
  b.writeUInt16BE(dst, 2);
  b.writeUInt32BE(0xdeadbeef, 4);
  b.writeUInt32BE(0x12345678, 8);
  return b;
}

function pad4(b: Buffer): Buffer {
  const padded = (b.length + 3) & ~3;
  return padded === b.length ? b : Buffer.concat([b, Buffer.alloc(padded - b.length)]);
}

function dataChunk(flags: number, tsn: number, sid: number, ssn: number, ppid: number, data: string): Buffer {
  const payload = Buffer.from(data, 'latin1');
  const c = Buffer.alloc(16);
  c[0] = 0;
  c[1] = flags;
  c.writeUInt16BE(16 + payload.length, 2); // length excludes padding
  c.writeUInt32BE(tsn, 4);
  c.writeUInt16BE(sid, 8);
  c.writeUInt16BE(ssn, 10);
  c.writeUInt32BE(ppid, 12);
  return pad4(Buffer.concat([c, payload]));
}

function iDataChunk(
  flags: number,
  tsn: number,
  sid: number,
  mid: number,
  ppidOrFsn: number,
  data: string,
): Buffer {
  const payload = Buffer.from(data, 'latin1');
  const c = Buffer.alloc(20);
  c[0] = 64;
  c[1] = flags;
  c.writeUInt16BE(20 + payload.length, 2);
  c.writeUInt32BE(tsn, 4);
  c.writeUInt16BE(sid, 8);
  c.writeUInt32BE(mid, 12);
  c.writeUInt32BE(ppidOrFsn, 16);
  return pad4(Buffer.concat([c, payload]));
}

/** SACK: cumulative TSN ack, a_rwnd, no gap blocks. */
function sackChunk(): Buffer {
  const c = Buffer.alloc(16);
  c[0] = 3;
  c.writeUInt16BE(16, 2);
  c.writeUInt32BE(7, 4);
  c.writeUInt32BE(65536, 8);
  return c;
}

const BE = SCTP_FLAG_BEGIN | SCTP_FLAG_END;

describe('forEachSctpData on hand-built packets', () => {
  it('emits one unfragmented DATA chunk with its fields', () => {
    const pkt = Buffer.concat([
      common(5060, 5061),
      dataChunk(BE, 1000, 3, 0, 0, 'OPTIONS sip:a SIP/2.0\r\n\r\n'),
    ]);
    const { r, seen } = walk(pkt);
    expect(r).toEqual({ srcPort: 5060, dstPort: 5061, chunks: 1, dataChunks: 1, fragments: 0, errors: 0 });
    expect(seen).toEqual([{ ppid: 0, sid: 3, tsn: 1000, flags: BE, data: 'OPTIONS sip:a SIP/2.0\r\n\r\n' }]);
  });

  it('walks bundled chunks with 4-byte padding (1, 2 and 3 pad bytes) and skips control chunks', () => {
    const pkt = Buffer.concat([
      common(1, 2),
      sackChunk(),
      dataChunk(BE, 1, 0, 0, 0, 'abc'), // 3 bytes → 1 pad byte
      dataChunk(BE | SCTP_FLAG_UNORDERED, 2, 1, 0, 46, 'ab'), // 2 pad bytes
      dataChunk(BE, 3, 2, 1, 0xffffffff, 'abcde'), // 3 pad bytes
      dataChunk(BE, 4, 2, 2, 0, 'abcd'), // none
    ]);
    const { r, seen } = walk(pkt);
    expect(r).toMatchObject({ chunks: 5, dataChunks: 4, fragments: 0, errors: 0 });
    expect(seen.map((s) => s.data)).toEqual(['abc', 'ab', 'abcde', 'abcd']);
    expect(seen.map((s) => s.ppid)).toEqual([0, 46, 0xffffffff, 0]);
    expect(seen[1].flags & SCTP_FLAG_UNORDERED).toBe(SCTP_FLAG_UNORDERED);
  });

  it('accepts a last chunk whose padding is missing', () => {
    const chunk = dataChunk(BE, 9, 0, 0, 0, 'xyz');
    const pkt = Buffer.concat([common(1, 2), chunk.subarray(0, 16 + 3)]);
    const { r, seen } = walk(pkt);
    expect(r).toMatchObject({ dataChunks: 1, errors: 0 });
    expect(seen[0].data).toBe('xyz');
  });

  it('counts fragments instead of emitting them, unless asked', () => {
    const pkt = Buffer.concat([
      common(1, 2),
      dataChunk(SCTP_FLAG_BEGIN, 10, 0, 5, 0, 'INVITE '),
      dataChunk(0, 11, 0, 5, 0, 'sip:b '),
      dataChunk(SCTP_FLAG_END, 12, 0, 5, 0, 'SIP/2.0'),
    ]);
    const { r, seen } = walk(pkt);
    expect(r).toMatchObject({ chunks: 3, dataChunks: 3, fragments: 3, errors: 0 });
    expect(seen).toEqual([]);
    const all = walk(pkt, 0, pkt.length, true);
    expect(all.seen.map((s) => s.data).join('')).toBe('INVITE sip:b SIP/2.0');
    expect(all.seen.map((s) => s.tsn)).toEqual([10, 11, 12]);
  });

  it('reads I-DATA: PPID on unfragmented and first fragments, 0 on later ones', () => {
    const pkt = Buffer.concat([
      common(1, 2),
      iDataChunk(BE, 20, 4, 0, 7, 'whole'),
      iDataChunk(SCTP_FLAG_BEGIN, 21, 4, 1, 8, 'first'),
      iDataChunk(SCTP_FLAG_END, 22, 4, 1, 1 /* FSN */, 'last'),
    ]);
    const { r, seen } = walk(pkt);
    expect(r).toMatchObject({ chunks: 3, dataChunks: 3, fragments: 2, errors: 0 });
    expect(seen).toEqual([{ ppid: 7, sid: 4, tsn: 20, flags: BE, data: 'whole' }]);
    const all = walk(pkt, 0, pkt.length, true);
    expect(all.seen.map((s) => [s.ppid, s.data])).toEqual([
      [7, 'whole'],
      [8, 'first'],
      [0, 'last'],
    ]);
  });

  it('honours off/end inside a larger buffer', () => {
    const pkt = Buffer.concat([common(7, 8), dataChunk(BE, 1, 0, 0, 0, 'hello')]);
    const framed = Buffer.concat([Buffer.from('xxxx'), pkt, Buffer.from('trailing-garbage')]);
    const { r, seen } = walk(framed, 4, 4 + pkt.length);
    expect(r).toMatchObject({ srcPort: 7, dstPort: 8, chunks: 1, errors: 0 });
    expect(seen[0].data).toBe('hello');
  });

  it('rejects packets shorter than the common header', () => {
    expect(walk(Buffer.alloc(11)).r).toBeNull();
    expect(walk(Buffer.alloc(20), 10, 20).r).toBeNull();
    expect(walk(Buffer.alloc(12)).r).toMatchObject({ chunks: 0, errors: 0 });
  });

  it('counts malformed chunks: short length, past the end, truncated header, empty DATA', () => {
    const good = dataChunk(BE, 1, 0, 0, 0, 'ok');
    const zeroLen = Buffer.from([0, 3, 0, 0]); // length 0 < 4 cannot be stepped over
    expect(walk(Buffer.concat([common(1, 2), good, zeroLen, good])).r).toMatchObject({
      dataChunks: 1,
      errors: 1,
    });

    const long = Buffer.from(good);
    long.writeUInt16BE(200, 2);
    expect(walk(Buffer.concat([common(1, 2), long])).r).toMatchObject({ chunks: 0, errors: 1 });

    expect(walk(Buffer.concat([common(1, 2), good, Buffer.from([0, 3])])).r).toMatchObject({
      dataChunks: 1,
      errors: 1,
    });

    const empty = Buffer.alloc(16);
    empty[1] = BE;
    empty.writeUInt16BE(16, 2);
    const { r, seen } = walk(Buffer.concat([common(1, 2), empty, good]));
    expect(r).toMatchObject({ chunks: 2, dataChunks: 2, errors: 1 });
    expect(seen.map((s) => s.data)).toEqual(['ok']);
  });

  it('never throws on random or mutated input', () => {
    const base = Buffer.concat([common(1, 2), dataChunk(BE, 1, 0, 0, 0, 'abc'), sackChunk()]);
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed;
    };
    for (let i = 0; i < 50_000; i++) {
      const b = Buffer.from(base.subarray(0, rnd() % (base.length + 1)));
      for (let k = rnd() % 4; k > 0 && b.length; k--) b[rnd() % b.length] = rnd() & 0xff;
      let emitted = 0;
      const r = forEachSctpData(b, 0, b.length, (_p, _s, _t, _f, _b, s, e) => {
        expect(s).toBeLessThan(e);
        expect(e).toBeLessThanOrEqual(b.length);
        emitted++;
      });
      if (r) expect(emitted).toBeLessThanOrEqual(r.dataChunks);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Real capture, checked against tshark.

const PCAP = join(SHARED_DIR, 'pcaps', 'sip_sctp.pcap');

/** Minimal classic-pcap reader for the test: yields the SCTP bytes of each IPv4/IPv6 packet. */
function sctpPacketsOf(file: string): { number: number; buf: Buffer; off: number; end: number }[] {
  const f = readFileSync(file);
  const magic = f.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (o: number) => (le ? f.readUInt32LE(o) : f.readUInt32BE(o));
  const linkType = u32(20);
  const out: { number: number; buf: Buffer; off: number; end: number }[] = [];
  let o = 24;
  for (let n = 1; o + 16 <= f.length; n++) {
    const caplen = u32(o + 8);
    const start = o + 16;
    const end = start + caplen;
    o = end;
    let p: number;
    let ethertype: number;
    if (linkType === 113) {
      ethertype = f.readUInt16BE(start + 14); // Linux cooked v1
      p = start + 16;
    } else if (linkType === 1) {
      ethertype = f.readUInt16BE(start + 12);
      p = start + 14;
      while (ethertype === 0x8100) {
        ethertype = f.readUInt16BE(p + 2);
        p += 4;
      }
    } else {
      throw new Error(`link type ${linkType} not handled by this test`);
    }
    if (ethertype === 0x0800 && f[p + 9] === 132) {
      out.push({ number: n, buf: f, off: p + (f[p] & 0x0f) * 4, end: p + f.readUInt16BE(p + 2) });
    } else if (ethertype === 0x86dd && f[p + 6] === 132) {
      out.push({ number: n, buf: f, off: p + 40, end: p + 40 + f.readUInt16BE(p + 4) });
    }
  }
  return out;
}

needs(SHARED_CAPTURES, 'tshark').describe('forEachSctpData on sip_sctp.pcap (tshark as oracle)', () => {
  it('finds the same DATA chunks as tshark, with the same TSN, stream, PPID and flags', () => {
    const lines = execFileSync(
      'tshark',
      [
        '-r',
        PCAP,
        '-T',
        'fields',
        '-E',
        'occurrence=a',
        '-E',
        'aggregator=,',
        '-e',
        'frame.number',
        '-e',
        'sctp.srcport',
        '-e',
        'sctp.dstport',
        '-e',
        'sctp.chunk_type',
        '-e',
        'sctp.data_payload_proto_id',
        '-e',
        'sctp.data_tsn_raw',
        '-e',
        'sctp.data_sid',
        '-e',
        'sctp.chunk_flags',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    const list = (s: string) => (s === '' ? [] : s.split(',').map((x) => Number(x)));
    const packets = sctpPacketsOf(PCAP);
    expect(packets.length).toBe(lines.length);

    let tsharkPpids = 0;
    let ourDataChunks = 0;
    let fragments = 0;
    let emitted = 0;
    for (const [i, pkt] of packets.entries()) {
      const [num, sport, dport, types, ppids, tsns, sids, flags] = lines[i];
      expect(pkt.number).toBe(Number(num));
      const all: Seen[] = [];
      const r = forEachSctpData(
        pkt.buf,
        pkt.off,
        pkt.end,
        (ppid, sid, tsn, fl, b, s, e) => {
          all.push({ ppid, sid, tsn, flags: fl, data: b.toString('latin1', s, e) });
        },
        { emitFragments: true },
      );
      expect(r).not.toBeNull();
      expect(r!.srcPort).toBe(Number(sport));
      expect(r!.dstPort).toBe(Number(dport));
      expect(r!.errors).toBe(0);
      expect(r!.chunks).toBe(list(types).length);
      expect(r!.dataChunks).toBe(list(ppids).length);
      expect(all.map((s) => s.ppid)).toEqual(list(ppids));
      expect(all.map((s) => s.tsn)).toEqual(list(tsns));
      expect(all.map((s) => s.sid)).toEqual(list(sids));
      expect(all.map((s) => s.flags)).toEqual(list(flags));
      tsharkPpids += list(ppids).length;
      ourDataChunks += r!.dataChunks;
      fragments += r!.fragments;
      // Default mode: only whole messages come out.
      emitted += walk(pkt.buf, pkt.off, pkt.end).seen.length;
    }
    expect(ourDataChunks).toBe(tsharkPpids);
    expect(tsharkPpids).toBe(5);
    // The INVITE (frames 1+2) is fragmented; 100, 403 and ACK are single-chunk.
    expect(fragments).toBe(2);
    expect(emitted).toBe(3);
  });

  it('whole messages are the SIP messages tshark sees; the fragmented INVITE reassembles by TSN', () => {
    const tsharkFirstLines = execFileSync(
      'tshark',
      ['-r', PCAP, '-Y', 'sip', '-T', 'fields', '-e', 'sip.Request-Line', '-e', 'sip.Status-Line'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
      .trim()
      .split('\n')
      .map((l) => l.replace('\t', '').trim());
    const whole: string[] = [];
    const frags: Seen[] = [];
    for (const pkt of sctpPacketsOf(PCAP)) {
      forEachSctpData(
        pkt.buf,
        pkt.off,
        pkt.end,
        (ppid, sid, tsn, flags, b, s, e) => {
          const data = b.toString('latin1', s, e);
          if ((flags & BE) === BE) whole.push(data.split('\r\n')[0]);
          else frags.push({ ppid, sid, tsn, flags, data });
        },
        { emitFragments: true },
      );
    }
    frags.sort((a, b) => a.tsn - b.tsn);
    expect(frags[0].flags & SCTP_FLAG_BEGIN).toBeTruthy();
    expect(frags.at(-1)!.flags & SCTP_FLAG_END).toBeTruthy();
    const invite = frags.map((f) => f.data).join('');
    expect(invite.length).toBe(1764);
    expect([invite.split('\r\n')[0], ...whole]).toEqual(tsharkFirstLines);
  });
});
