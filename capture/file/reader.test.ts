import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs, SHARED_CAPTURES, SHARED_DIR, SHARED_PCAPS } from '../../test/oracle/tools.js';
import { PcapWriter } from './pcap-writer.js';
import { Timing } from './pcapng.js';
import { type ReadOptions, type ReadResult, readCaptureFile } from './reader.js';
import { CaptureFormatError, LINKTYPE_ETHERNET, LINKTYPE_RAW, type PacketRecord } from './record.js';

// ---------------------------------------------------------------------------------------------
// Hand-built capture files

interface Rec {
  sec: number;
  frac: number;
  data: Uint8Array;
  origLen?: number;
}

function u16(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(2);
  if (le) b.writeUInt16LE(v);
  else b.writeUInt16BE(v);
  return b;
}

function u32(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(4);
  if (le) b.writeUInt32LE(v >>> 0);
  else b.writeUInt32BE(v >>> 0);
  return b;
}

function pad4(b: Uint8Array): Buffer {
  return Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
}

function pcapHeader(le: boolean, nano: boolean, linkType: number, snaplen = 65535): Buffer {
  return Buffer.concat([
    u32(nano ? 0xa1b23c4d : 0xa1b2c3d4, le),
    u16(2, le),
    u16(4, le),
    u32(0, le),
    u32(0, le),
    u32(snaplen, le),
    u32(linkType, le),
  ]);
}

function pcapRecord(le: boolean, r: Rec): Buffer {
  return Buffer.concat([
    u32(r.sec, le),
    u32(r.frac, le),
    u32(r.data.length, le),
    u32(r.origLen ?? r.data.length, le),
    r.data,
  ]);
}

function pcapFile(
  le: boolean,
  nano: boolean,
  recs: Rec[],
  linkType = LINKTYPE_ETHERNET,
  snaplen = 65535,
): Buffer {
  return Buffer.concat([pcapHeader(le, nano, linkType, snaplen), ...recs.map((r) => pcapRecord(le, r))]);
}

function block(le: boolean, type: number, body: Uint8Array): Buffer {
  const padded = pad4(body);
  const len = 12 + padded.length;
  return Buffer.concat([u32(type, le), u32(len, le), padded, u32(len, le)]);
}

function option(le: boolean, code: number, value: Uint8Array): Buffer {
  return Buffer.concat([u16(code, le), u16(value.length, le), pad4(value)]);
}

function shb(le: boolean): Buffer {
  const sectionLen = Buffer.alloc(8, 0xff); // -1: unknown
  return block(le, 0x0a0d0d0a, Buffer.concat([u32(0x1a2b3c4d, le), u16(1, le), u16(0, le), sectionLen]));
}

function idb(le: boolean, linkType: number, snaplen: number, tsresol?: number, tsoffset?: number): Buffer {
  const opts: Buffer[] = [option(le, 2, Buffer.from('eth0'))]; // if_name, to exercise option walking
  if (tsresol !== undefined) opts.push(option(le, 9, Buffer.from([tsresol])));
  if (tsoffset !== undefined) {
    const v = Buffer.alloc(8);
    if (le) v.writeBigInt64LE(BigInt(tsoffset));
    else v.writeBigInt64BE(BigInt(tsoffset));
    opts.push(option(le, 14, v));
  }
  opts.push(Buffer.alloc(4)); // opt_endofopt
  return block(le, 1, Buffer.concat([u16(linkType, le), u16(0, le), u32(snaplen, le), ...opts]));
}

function epb(le: boolean, id: number, ticks: bigint, data: Uint8Array, origLen = data.length): Buffer {
  return block(
    le,
    6,
    Buffer.concat([
      u32(id, le),
      u32(Number(ticks >> 32n), le),
      u32(Number(ticks & 0xffffffffn), le),
      u32(data.length, le),
      u32(origLen, le),
      pad4(data),
      option(le, 1, Buffer.from('comment')), // opt_comment after the data must be ignored
      Buffer.alloc(4),
    ]),
  );
}

function spb(le: boolean, data: Uint8Array, origLen = data.length): Buffer {
  return block(le, 3, Buffer.concat([u32(origLen, le), data]));
}

function pb(le: boolean, id: number, ticks: bigint, data: Uint8Array): Buffer {
  return block(
    le,
    2,
    Buffer.concat([
      u16(id, le),
      u16(0, le),
      u32(Number(ticks >> 32n), le),
      u32(Number(ticks & 0xffffffffn), le),
      u32(data.length, le),
      u32(data.length, le),
      data,
    ]),
  );
}

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
}

// ---------------------------------------------------------------------------------------------
// Reading helpers

interface Got {
  number: number;
  time: string;
  caplen: number;
  origLen: number;
  linkType: number;
  iface: number;
  fileOffset: number;
  hex: string;
}

function timeString(sec: number, nsec: number): string {
  return `${sec}.${String(nsec).padStart(9, '0')}`;
}

async function collect(path: string, options?: ReadOptions): Promise<{ result: ReadResult; packets: Got[] }> {
  const packets: Got[] = [];
  const result = await readCaptureFile(
    path,
    (r: PacketRecord) => {
      packets.push({
        number: r.number,
        time: timeString(r.tsSec, r.tsNsec),
        caplen: r.caplen,
        origLen: r.origLen,
        linkType: r.linkType,
        iface: r.interfaceId,
        fileOffset: r.fileOffset,
        hex: r.data.toString('hex', r.offset, r.offset + r.caplen),
      });
    },
    options,
  );
  return { result, packets };
}

let dir: string;
let fileCounter = 0;
function tmpFile(content: Uint8Array, ext = 'pcap'): string {
  const p = join(dir, `t${fileCounter++}.${ext}`);
  writeFileSync(p, content);
  return p;
}

/** Reads with the default chunk and with 1-byte chunks; both must agree in every detail. */
async function readBoth(path: string): Promise<{ result: ReadResult; packets: Got[] }> {
  const a = await collect(path);
  const b = await collect(path, { chunkSize: 1 });
  expect(b).toEqual(a);
  return a;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'callscope-reader-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe('classic pcap', () => {
  const recs: Rec[] = [
    { sec: 1700000000, frac: 1, data: bytes(60, 1) },
    { sec: 1700000001, frac: 999999, data: bytes(1, 2), origLen: 1514 },
    { sec: 0xffffffff, frac: 0, data: bytes(0, 3) },
    { sec: 1700000002, frac: 500000, data: bytes(1500, 4) },
  ];

  for (const le of [true, false]) {
    for (const nano of [false, true]) {
      it(`reads ${le ? 'little' : 'big'}-endian ${nano ? 'ns' : 'µs'} files`, async () => {
        const path = tmpFile(pcapFile(le, nano, recs, LINKTYPE_RAW));
        const { result, packets } = await readBoth(path);
        expect(result).toEqual({
          format: 'pcap',
          packets: 4,
          truncatedRecords: 0,
          malformedRecords: 0,
          bytes: 24 + recs.reduce((s, r) => s + 16 + r.data.length, 0),
          warnings: [],
        });
        const mul = nano ? 1 : 1000;
        expect(packets.map((p) => p.time)).toEqual(recs.map((r) => timeString(r.sec, r.frac * mul)));
        expect(packets.map((p) => [p.caplen, p.origLen])).toEqual(
          recs.map((r) => [r.data.length, r.origLen ?? r.data.length]),
        );
        expect(packets.map((p) => p.hex)).toEqual(recs.map((r) => Buffer.from(r.data).toString('hex')));
        expect(packets.map((p) => p.number)).toEqual([1, 2, 3, 4]);
        expect(packets.map((p) => p.fileOffset)).toEqual([24, 24 + 76, 24 + 76 + 17, 24 + 76 + 17 + 16]);
        expect(packets.every((p) => p.linkType === LINKTYPE_RAW && p.iface === 0)).toBe(true);
      });
    }
  }

  it('takes the link type from the low 16 bits (FCS flags above)', async () => {
    const path = tmpFile(pcapFile(true, false, recs.slice(0, 1), 0x90000000 | LINKTYPE_ETHERNET));
    const { packets } = await readBoth(path);
    expect(packets[0].linkType).toBe(LINKTYPE_ETHERNET);
  });

  it('carries a non-normalised fraction into the seconds', async () => {
    const path = tmpFile(pcapFile(true, false, [{ sec: 10, frac: 2_500_000, data: bytes(4, 0) }]));
    const { packets } = await readBoth(path);
    expect(packets[0].time).toBe('12.500000000');
  });

  it('counts a record cut off inside its data, delivering the ones before', async () => {
    const full = pcapFile(true, false, recs);
    const path = tmpFile(full.subarray(0, full.length - 10));
    const { result, packets } = await readBoth(path);
    expect(result.packets).toBe(3);
    expect(packets).toHaveLength(3);
    expect(result.truncatedRecords).toBe(1);
    expect(result.malformedRecords).toBe(0);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain(path);
    expect(result.warnings[0]).toContain(`byte offset ${24 + 76 + 17 + 16}`);
  });

  it('counts a record cut off inside its header', async () => {
    const full = pcapFile(false, true, recs);
    const path = tmpFile(full.subarray(0, 24 + 76 + 5));
    const { result } = await readBoth(path);
    expect(result).toMatchObject({ packets: 1, truncatedRecords: 1, malformedRecords: 0 });
    expect(result.warnings[0]).toMatch(/record cut off by end of file.* at byte offset 100$/);
  });

  it('accepts a file with only a header', async () => {
    const { result } = await readBoth(tmpFile(pcapHeader(true, false, 1)));
    expect(result).toMatchObject({ format: 'pcap', packets: 0, truncatedRecords: 0, bytes: 24 });
  });

  it('skips a record with a corrupt length and resynchronises on the next good one', async () => {
    // Realistic neighbours: resynchronisation checks that times stay close to the last good packet.
    const real = recs.map((r, i) => ({ ...r, sec: 1700000000 + i }));
    const good = real.map((r) => pcapRecord(true, r));
    const bad = pcapRecord(true, { sec: 1700000001, frac: 5, data: bytes(40, 9) });
    bad.writeUInt32LE(0x7fff0000, 8); // caplen beyond any limit
    const path = tmpFile(
      Buffer.concat([pcapHeader(true, false, 1), good[0], bad, good[1], good[2], good[3]]),
    );
    const { result, packets } = await readBoth(path);
    expect(result.malformedRecords).toBe(1);
    expect(result.truncatedRecords).toBe(0);
    expect(result.packets).toBe(4);
    expect(packets.map((p) => p.hex)).toEqual(real.map((r) => Buffer.from(r.data).toString('hex')));
    const badAt = 24 + good[0].length;
    expect(result.warnings[0]).toBe(
      `${path}: corrupt pcap record header (caplen 2147418112 > limit 262144) at byte offset ${badAt}`,
    );
    expect(result.warnings[1]).toContain(
      `resynchronised after skipping ${bad.length} bytes at byte offset ${badAt + bad.length}`,
    );
  });

  it('keeps records longer than a wrong header snaplen (as Wireshark does)', async () => {
    const path = tmpFile(pcapFile(true, false, [{ sec: 1, frac: 0, data: bytes(200, 1) }], 1, 100));
    const { result } = await readBoth(path);
    expect(result).toMatchObject({ packets: 1, malformedRecords: 0 });
  });

  it('treats caplen above the absolute limit as corruption', async () => {
    const huge = Buffer.alloc(16);
    huge.writeUInt32LE(1, 0);
    huge.writeUInt32LE(300_000, 8);
    huge.writeUInt32LE(300_000, 12);
    const path = tmpFile(Buffer.concat([pcapFile(true, false, recs.slice(0, 1)), huge, Buffer.alloc(64)]));
    const { result } = await readBoth(path);
    expect(result).toMatchObject({ packets: 1, malformedRecords: 1 });
  });

  it('stops at corruption followed only by garbage, keeping earlier packets', async () => {
    const garbage = Buffer.alloc(3000, 0xee);
    const path = tmpFile(Buffer.concat([pcapFile(true, false, recs.slice(0, 2)), garbage]));
    const { result } = await readBoth(path);
    expect(result).toMatchObject({ packets: 2, malformedRecords: 1, truncatedRecords: 0 });
    expect(result.warnings).toHaveLength(2);
    expect(result.warnings[1]).toContain('3000 bytes ignored');
  });
});

describe('pcapng', () => {
  const eth = bytes(64, 1);
  const raw = bytes(41, 2); // odd length: padding
  // 2023-11-14T22:13:20.123456789Z in several resolutions
  const SEC = 1700000000n;

  function twoInterfaceSection(le: boolean): Buffer {
    return Buffer.concat([
      shb(le),
      idb(le, LINKTYPE_ETHERNET, 262144), // default resolution: µs
      idb(le, LINKTYPE_RAW, 0, 9, 0), // ns
      idb(le, LINKTYPE_ETHERNET, 96, 0x80 | 20, 3600), // 2^-20 s, +1h offset, snaplen 96
      epb(le, 0, SEC * 1_000_000n + 123456n, eth, 1514),
      epb(le, 1, SEC * 1_000_000_000n + 123456789n, raw),
      epb(le, 2, (SEC << 20n) + (1n << 19n), eth), // exactly .5 s
      block(le, 0x12345678, bytes(10, 3)), // unknown type: skipped by length
      block(le, 5, bytes(20, 4)), // interface statistics: skipped
      spb(le, bytes(200, 5), 200), // caplen limited to interface 0 ... snaplen 262144: 200
      pb(le, 1, SEC * 1_000_000_000n + 1n, raw),
    ]);
  }

  for (const le of [true, false]) {
    it(`reads a ${le ? 'little' : 'big'}-endian section with three interfaces, SPB, PB and unknown blocks`, async () => {
      const path = tmpFile(twoInterfaceSection(le), 'pcapng');
      const { result, packets } = await readBoth(path);
      expect(result).toMatchObject({
        format: 'pcapng',
        packets: 5,
        truncatedRecords: 0,
        malformedRecords: 0,
        warnings: [],
      });
      expect(packets.map((p) => [p.number, p.time, p.linkType, p.iface, p.caplen, p.origLen])).toEqual([
        [1, '1700000000.123456000', LINKTYPE_ETHERNET, 0, 64, 1514],
        [2, '1700000000.123456789', LINKTYPE_RAW, 1, 41, 41],
        [3, '1700003600.500000000', LINKTYPE_ETHERNET, 2, 64, 64],
        [4, '0.000000000', LINKTYPE_ETHERNET, 0, 200, 200],
        [5, '1700000000.000000001', LINKTYPE_RAW, 1, 41, 41],
      ]);
      expect(packets[0].hex).toBe(eth.toString('hex'));
      expect(packets[1].hex).toBe(raw.toString('hex'));
      expect(packets[3].hex).toBe(bytes(200, 5).toString('hex'));
    });
  }

  it('limits SPB caplen by the interface snaplen and by the block', async () => {
    const path = tmpFile(
      Buffer.concat([
        shb(true),
        idb(true, LINKTYPE_RAW, 50),
        spb(true, bytes(80, 1), 1500),
        spb(true, bytes(30, 2), 1500),
      ]),
      'pcapng',
    );
    const { packets } = await readBoth(path);
    expect(packets.map((p) => [p.caplen, p.origLen])).toEqual([
      [50, 1500],
      [32, 1500], // 30 bytes plus 2 of padding: the block cannot say which are padding
    ]);
  });

  it('resets interfaces and switches byte order at a new section', async () => {
    const path = tmpFile(
      Buffer.concat([
        shb(true),
        idb(true, LINKTYPE_ETHERNET, 0),
        idb(true, LINKTYPE_ETHERNET, 0),
        epb(true, 1, 1_000_000n, eth),
        shb(false),
        idb(false, LINKTYPE_RAW, 0, 9),
        epb(false, 0, 2_000_000_001n, raw),
        epb(false, 1, 0n, raw), // interface 1 belonged to the previous section
      ]),
      'pcapng',
    );
    const { result, packets } = await readBoth(path);
    expect(packets.map((p) => [p.time, p.linkType, p.iface])).toEqual([
      ['1.000000000', LINKTYPE_ETHERNET, 1],
      ['2.000000001', LINKTYPE_RAW, 0],
    ]);
    expect(result.malformedRecords).toBe(1);
    expect(result.warnings[0]).toContain('undeclared interface 1');
  });

  it('resynchronises after a block with a corrupt length', async () => {
    const a = epb(true, 0, 1n, eth);
    const bad = epb(true, 0, 2n, eth);
    bad.writeUInt32LE(0x7ffffff0, 4);
    const c = epb(true, 0, 3n, eth);
    const head = Buffer.concat([shb(true), idb(true, 1, 0)]);
    const path = tmpFile(Buffer.concat([head, a, bad, c]), 'pcapng');
    const { result, packets } = await readBoth(path);
    expect(packets.map((p) => p.time)).toEqual(['0.000001000', '0.000003000']);
    expect(result.malformedRecords).toBe(1);
    const badAt = head.length + a.length;
    expect(result.warnings[0]).toBe(
      `${path}: enhanced packet block with a bad length 2147483632 at byte offset ${badAt}`,
    );
    expect(result.warnings[1]).toContain(`at byte offset ${badAt + bad.length}`);
  });

  it('resynchronises after a trailing-length mismatch and skips bad EPB contents', async () => {
    const bad = epb(true, 0, 2n, eth);
    bad.writeUInt32LE(12345, bad.length - 4);
    const overflow = epb(true, 0, 4n, eth);
    overflow.writeUInt32LE(1000, 20); // caplen beyond the block
    const path = tmpFile(
      Buffer.concat([
        shb(true),
        idb(true, 1, 0),
        bad,
        epb(true, 0, 3n, eth),
        overflow,
        epb(true, 0, 5n, eth),
      ]),
      'pcapng',
    );
    const { result, packets } = await readBoth(path);
    expect(packets.map((p) => p.time)).toEqual(['0.000003000', '0.000005000']);
    expect(result.malformedRecords).toBe(2);
    expect(result.warnings.some((w) => w.includes('trailing length does not match'))).toBe(true);
    expect(result.warnings.some((w) => w.includes('caplen 1000 exceeds the block'))).toBe(true);
  });

  it('counts a block cut off by the end of the file', async () => {
    const full = Buffer.concat([
      shb(false),
      idb(false, 1, 0),
      epb(false, 0, 1n, eth),
      epb(false, 0, 2n, eth),
    ]);
    for (const cut of [3, 30]) {
      const path = tmpFile(full.subarray(0, full.length - cut), 'pcapng');
      const { result } = await readBoth(path);
      expect(result).toMatchObject({ packets: 1, truncatedRecords: 1, malformedRecords: 0 });
      expect(result.warnings[0]).toContain('enhanced packet block of 112 bytes cut off by end of file');
    }
  });

  it('skips a large unknown block without buffering it', async () => {
    const big = block(true, 0x0bad, Buffer.alloc(3 << 20, 0x41)); // custom block, 3 MiB
    const path = tmpFile(
      Buffer.concat([shb(true), idb(true, 1, 0), epb(true, 0, 1n, eth), big, epb(true, 0, 2n, eth)]),
    );
    let maxData = 0;
    const res = await readCaptureFile(
      path,
      (r) => {
        maxData = Math.max(maxData, r.data.length);
      },
      { chunkSize: 4096 },
    );
    expect(res).toMatchObject({ packets: 2, malformedRecords: 0, warnings: [] });
    expect(maxData).toBeLessThan(1 << 20);
    await readBoth(path);
  });

  it('rejects a file whose first section header is broken', async () => {
    const s = shb(true);
    s.writeUInt32LE(0x11111111, 8);
    await expect(readCaptureFile(tmpFile(s), () => {})).rejects.toThrow(CaptureFormatError);
    await expect(readCaptureFile(tmpFile(shb(true).subarray(0, 20)), () => {})).rejects.toThrow(/too short/);
  });

  it('converts timestamps exactly for every resolution', () => {
    const rec = { tsSec: 0, tsNsec: 0 } as PacketRecord;
    let seed = 12345;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed;
    };
    const resolutions = [0, 1, 3, 6, 9, 12, 0x80, 0x80 | 10, 0x80 | 30, 0x80 | 32];
    for (const tsresol of resolutions) {
      const t = new Timing(tsresol, -5);
      let hi = 0;
      for (let i = 0; i < 2000; i++) {
        // Odd i reuse the previous high word: the conversion caches it.
        hi = i < 4 ? [0, 0xffffffff, 395812, 0x17b4f2a8][i] : i & 1 ? hi : rnd();
        const lo = i < 4 ? [0, 0xffffffff, 999999, 0][i] : rnd();
        const ticks = (BigInt(hi) << 32n) | BigInt(lo);
        const perSec = tsresol & 0x80 ? 1n << BigInt(tsresol & 0x7f) : 10n ** BigInt(tsresol);
        t.set(rec, hi, lo);
        expect(rec.tsNsec).toBe(Number(((ticks % perSec) * 1_000_000_000n) / perSec));
        // Beyond 2^53 s (absurd times at coarse resolutions) a number cannot be exact anyway.
        const sec = ticks / perSec - 5n;
        if (sec <= BigInt(Number.MAX_SAFE_INTEGER)) expect(rec.tsSec).toBe(Number(sec));
      }
    }
  });
});

describe('errors and options', () => {
  it('rejects unknown magic naming the file and byte offset 0', async () => {
    const path = tmpFile(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const err = await readCaptureFile(path, () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureFormatError);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain('byte offset 0');
    expect((err as CaptureFormatError).byteOffset).toBe(0);
  });

  it('rejects a missing file, a directory, an empty file and a short header', async () => {
    const missing = join(dir, 'does-not-exist.pcap');
    await expect(readCaptureFile(missing, () => {})).rejects.toThrow(/ENOENT.*byte offset 0/);
    await expect(readCaptureFile(missing, () => {})).rejects.toBeInstanceOf(CaptureFormatError);
    await expect(readCaptureFile(dir, () => {})).rejects.toBeInstanceOf(CaptureFormatError);
    await expect(readCaptureFile(tmpFile(Buffer.alloc(0)), () => {})).rejects.toThrow(
      /too short.*byte offset 0/,
    );
    await expect(
      readCaptureFile(tmpFile(pcapHeader(true, false, 1).subarray(0, 20)), () => {}, { chunkSize: 1 }),
    ).rejects.toThrow(/too short for a pcap header/);
    await expect(readCaptureFile(tmpFile(Buffer.from([0x1f, 0x8b, 8, 0, 0])), () => {})).rejects.toThrow(
      /gzip/,
    );
  });

  it('reports progress per chunk and stops on abort', async () => {
    const recs = Array.from({ length: 100 }, (_, i) => ({ sec: i, frac: 0, data: bytes(100, i) }));
    const path = tmpFile(pcapFile(true, false, recs));
    const progress: number[] = [];
    const res = await readCaptureFile(path, () => {}, {
      chunkSize: 1000,
      onProgress: (n, total) => progress.push(n / total),
    });
    expect(res.packets).toBe(100);
    expect(progress.length).toBeGreaterThan(10);
    expect(progress.at(-1)).toBe(1);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);

    const ac = new AbortController();
    let seen = 0;
    const run = readCaptureFile(
      path,
      () => {
        if (++seen === 10) ac.abort();
      },
      { chunkSize: 500, signal: ac.signal },
    );
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen).toBeLessThan(100);
  });

  it('caps warnings at 100 entries', async () => {
    // 300 records with corrupt caplen, each followed by a good one: 300 corruptions, 300 resyncs.
    const parts: Buffer[] = [pcapHeader(true, false, 1)];
    for (let i = 0; i < 300; i++) {
      const rec = { sec: 1700000000 + i, frac: i * 1000, data: bytes(80, i) };
      const bad = pcapRecord(true, rec);
      bad.writeUInt32LE(0xffffffff, 8);
      parts.push(bad, pcapRecord(true, rec));
    }
    const { result } = await readBoth(tmpFile(Buffer.concat(parts)));
    expect(result.packets).toBe(300);
    expect(result.malformedRecords).toBe(300);
    expect(result.warnings).toHaveLength(100);
    expect(result.warnings[99]).toMatch(/501 more warning\(s\) not listed, the first at byte offset \d+$/);
  });
});

describe('PcapWriter round trip', () => {
  for (const nanosecond of [false, true]) {
    it(`reads back what PcapWriter wrote (${nanosecond ? 'ns' : 'µs'})`, async () => {
      const path = join(dir, `writer-${nanosecond}.pcap`);
      const w = new PcapWriter(path, { nanosecond, snaplen: 1000, linkType: LINKTYPE_RAW });
      const expected: [string, number, number, string][] = [];
      for (let i = 0; i < 3000; i++) {
        const frame = bytes((i * 37) % 1400, i);
        const sec = 1700000000 + i;
        const nsec = (i * 123456789) % 1_000_000_000;
        w.write(sec, nsec, frame);
        const keptNs = nanosecond ? nsec : Math.floor(nsec / 1000) * 1000;
        const caplen = Math.min(frame.length, 1000);
        expected.push([timeString(sec, keptNs), caplen, frame.length, frame.toString('hex', 0, caplen)]);
      }
      w.close();
      const { result, packets } = await collect(path);
      expect(result).toMatchObject({ packets: 3000, truncatedRecords: 0, malformedRecords: 0, warnings: [] });
      expect(packets.map((p) => [p.time, p.caplen, p.origLen, p.hex])).toEqual(expected);
      expect(packets.every((p) => p.linkType === LINKTYPE_RAW)).toBe(true);
      const odd = await collect(path, { chunkSize: 4093 });
      expect(odd).toEqual({ result, packets });
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Real captures against tshark

const PCAPS = SHARED_PCAPS ?? join(SHARED_DIR, 'pcaps');

function tsharkFrames(path: string): [string, number][] {
  const out = execFileSync(
    'tshark',
    ['-r', path, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.cap_len'],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  return out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [t, len] = l.split('\t');
      return [t, Number(len)];
    });
}

needs(SHARED_CAPTURES, 'tshark', 'editcap').describe(`real captures in ${PCAPS} (needs tshark)`, () => {
  const files = SHARED_PCAPS ? readdirSync(PCAPS).filter((f) => f.endsWith('.pcap')) : [];

  it('finds captures to test', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const f of files) {
    it(`${f}: pcap, pcapng and ns-pcap agree with tshark`, async () => {
      const src = join(PCAPS, f);
      const variants: [string, 'pcap' | 'pcapng'][] = [[src, 'pcap']];
      const ng = join(dir, `${basename(f, '.pcap')}.pcapng`);
      const ns = join(dir, `${basename(f, '.pcap')}.ns.pcap`);
      execFileSync('editcap', ['-F', 'pcapng', src, ng], { stdio: 'ignore' });
      execFileSync('editcap', ['-F', 'nsecpcap', src, ns], { stdio: 'ignore' });
      variants.push([ng, 'pcapng'], [ns, 'pcap']);
      let reference: Got[] | undefined;
      for (const [path, format] of variants) {
        const expected = tsharkFrames(path);
        const { result, packets } = await collect(path);
        expect(result).toMatchObject({ format, truncatedRecords: 0, malformedRecords: 0, warnings: [] });
        expect(result.packets).toBe(expected.length);
        expect(packets.map((p) => [p.time, p.caplen])).toEqual(expected);
        // Same packet bytes whatever the container; and odd chunk sizes change nothing.
        const strip = packets.map(({ fileOffset: _, ...rest }) => rest);
        if (reference) expect(strip).toEqual(reference);
        else reference = strip as Got[];
        expect(await collect(path, { chunkSize: 7 })).toEqual({ result, packets });
      }
    });
  }

  it('1-byte chunks give the same result on the smaller captures', async () => {
    for (const f of files.filter(
      (name) => name.startsWith('dtmf') || name.startsWith('sip_ipv6') || name === 'ipip.pcap',
    )) {
      await readBoth(join(PCAPS, f));
      await readBoth(join(dir, `${basename(f, '.pcap')}.pcapng`));
    }
  });
});

describe('throughput (informational)', () => {
  it('reads a 200k-packet file', async () => {
    const path = join(tmpdir(), `callscope-throughput-${process.pid}.pcap`);
    const ngPath = join(tmpdir(), `callscope-throughput-${process.pid}.pcapng`);
    try {
      const n = 200_000;
      const w = new PcapWriter(path);
      const frame = bytes(60, 7);
      const epbs: Buffer[] = [shb(true), idb(true, 1, 0)];
      for (let i = 0; i < n; i++) {
        w.write(1700000000 + (i >> 10), (i & 1023) * 1000, frame);
        epbs.push(epb(true, 0, 1_700_000_000_000_000n + BigInt(i), frame));
      }
      w.close();
      writeFileSync(ngPath, Buffer.concat(epbs));
      for (const [label, p] of [
        ['pcap', path],
        ['pcapng', ngPath],
      ] as const) {
        let sum = 0;
        const onPacket = (r: PacketRecord) => {
          sum += r.caplen + r.tsNsec;
        };
        // Warm-up lets the JIT optimise the parse loop; then the best of five runs, by wall clock and by
        // process CPU time (the latter is steadier on a shared machine).
        await readCaptureFile(p, onPacket);
        let bestWall = Number.POSITIVE_INFINITY;
        let bestCpu = Number.POSITIVE_INFINITY;
        for (let i = 0; i < 5; i++) {
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          const res = await readCaptureFile(p, onPacket);
          bestWall = Math.min(bestWall, performance.now() - t0);
          const cpu = process.cpuUsage(c0);
          bestCpu = Math.min(bestCpu, (cpu.user + cpu.system) / 1000);
          expect(res.packets).toBe(n);
        }
        const rate = (ms: number) => Math.round((n / ms) * 1000).toLocaleString('en');
        console.log(
          `readCaptureFile ${label}: ${n} packets of 60 bytes: ${rate(bestWall)} packets/s wall (${bestWall.toFixed(1)} ms), ${rate(bestCpu)} packets/s per CPU second (checksum ${sum})`,
        );
      }
    } finally {
      rmSync(path, { force: true });
      rmSync(ngPath, { force: true });
    }
  });
});
