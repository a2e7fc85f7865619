import { readdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTmpDir, tmpDir } from '../test/oracle/tools.js';
import { readCaptureFile } from './file/reader.js';
import { emptyPacketRecord, LINKTYPE_ETHERNET, LINKTYPE_RAW, type PacketRecord } from './file/record.js';
import { RtpSpool, spooledFiles } from './rtp-spool.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeTmpDir(d);
});
function dir(): string {
  const d = tmpDir('callscope-rtp-spool-');
  dirs.push(d);
  return d;
}

/** A 200-byte packet record at second `t`. */
function packet(t: number, linkType = LINKTYPE_ETHERNET, size = 200): PacketRecord {
  const r = emptyPacketRecord(Buffer.alloc(size, t & 0xff));
  r.caplen = size;
  r.origLen = size;
  r.tsSec = 1_700_000_000 + t;
  r.tsNsec = 123_456_789;
  r.linkType = linkType;
  return r;
}

async function readBack(path: string): Promise<PacketRecord[]> {
  const out: PacketRecord[] = [];
  await readCaptureFile(path, (r) =>
    out.push({ ...r, data: Buffer.from(r.data.subarray(r.offset, r.offset + r.caplen)), offset: 0 }),
  );
  return out;
}

describe('the per-call RTP spool', () => {
  it("writes each call's packets to its own pcap, readable as captured (nanosecond times, bytes)", async () => {
    const d = dir();
    const spool = new RtpSpool({ dir: d });
    for (let i = 0; i < 10; i++) spool.add(packet(i), i % 2 === 0 ? 'call-a@x' : 'call/b "quoted"');
    spool.close();
    const [a] = spooledFiles(d, 'call-a@x');
    const [b] = spooledFiles(d, 'call/b "quoted"');
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    expect(a).not.toBe(b);
    const back = await readBack(a!);
    expect(back).toHaveLength(5);
    expect(back[1]!.tsSec).toBe(1_700_000_002);
    expect(back[1]!.tsNsec).toBe(123_456_789);
    expect(back[1]!.data.equals(Buffer.alloc(200, 2))).toBe(true);
    expect(spool.stats()).toMatchObject({ packets: 10, files: 2 });
  });

  it('a call past its cap: the rest of its packets dropped and counted, other calls still spooled', async () => {
    const d = dir();
    const spool = new RtpSpool({ dir: d, maxCallBytes: 24 + 3 * 216 });
    for (let i = 0; i < 10; i++) spool.add(packet(i), 'long');
    spool.add(packet(20), 'other');
    spool.close();
    expect(spool.stats().dropped['call-full']).toBe(7);
    expect(await readBack(spooledFiles(d, 'long')[0]!)).toHaveLength(3);
    expect(await readBack(spooledFiles(d, 'other')[0]!)).toHaveLength(1);
  });

  it('the disk cap: the least recently written files go first; alone over it, packets are dropped and counted', async () => {
    const d = dir();
    const cap = 2 * (24 + 5 * 216);
    const spool = new RtpSpool({ dir: d, maxBytes: cap });
    for (const call of ['first', 'second', 'third'])
      for (let i = 0; i < 5; i++) {
        spool.add(packet(i), call);
        spool.flush();
      }
    expect(spooledFiles(d, 'first')).toHaveLength(0);
    expect(spooledFiles(d, 'third')).toHaveLength(1);
    expect(spool.stats().filesDeleted).toBe(1);
    // One call bigger than the whole cap keeps what fits.
    for (let i = 0; i < 20; i++) spool.add(packet(i), 'huge');
    spool.close();
    expect(spool.stats().dropped['disk-full']).toBeGreaterThan(0);
    let total = 0;
    for (const day of readdirSync(d))
      for (const f of readdirSync(join(d, day))) total += statSync(join(d, day, f)).size;
    expect(total).toBeLessThanOrEqual(cap);
  });

  it('files past their age are deleted, those an earlier run left included; another link type is refused', () => {
    const d = dir();
    const before = new RtpSpool({ dir: d });
    before.add(packet(1), 'old');
    before.close();
    const [old] = spooledFiles(d, 'old');
    const longAgo = new Date(Date.now() - 48 * 3_600_000);
    utimesSync(old!, longAgo, longAgo);
    const spool = new RtpSpool({ dir: d, maxAgeMs: 24 * 3_600_000 });
    spool.add(packet(2), 'new');
    spool.add(packet(3, LINKTYPE_RAW), 'new');
    spool.close();
    expect(spooledFiles(d, 'old')).toHaveLength(0);
    expect(spooledFiles(d, 'new')).toHaveLength(1);
    expect(spool.stats().dropped['link-type']).toBe(1);
  });
});
