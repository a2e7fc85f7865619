/**
 * The producer's on-disk spool: FIFO order, surviving a restart, a torn tail after a crash, the
 * bound on bytes, and acks across segment boundaries.
 */
import {
  appendFileSync,
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log.js';
import { removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { Spool, type SpoolOptions } from './spool.js';

const dirs: string[] = [];
const open: Spool[] = [];

function fresh(): string {
  const d = tmpDir('callscope-spool-');
  dirs.push(d);
  return d;
}

function openSpool(options: SpoolOptions): Spool {
  const s = Spool.open(options);
  open.push(s);
  return s;
}

function capture(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, logger: createLogger({ level: 'debug', write: (l) => lines.push(l) }) };
}

const rec = (i: number, size = 10) => Buffer.from(`${String(i).padStart(6, '0')}`.padEnd(size, '.'));
const text = (bufs: Buffer[]) => bufs.map((b) => b.toString().slice(0, 6));
function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] ^= 0x01;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

const segFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.seg'));

afterEach(() => {
  for (const s of open.splice(0)) s.close();
  for (const d of dirs.splice(0)) removeTmpDir(d);
});

describe('spool', () => {
  it('is a FIFO across appends, peeks and acks, over many segments', () => {
    const dir = fresh();
    const s = openSpool({ dir, segmentBytes: 100, fsync: 'never' });
    expect(s.append([0, 1, 2, 3, 4].map((i) => rec(i)))).toBe(5);
    expect(text(s.peek(3))).toEqual(['000000', '000001', '000002']);
    s.ack(2);
    expect(s.size).toBe(3);
    expect(s.append([5, 6, 7, 8, 9, 10, 11].map((i) => rec(i)))).toBe(7);
    expect(segFiles(dir).length).toBeGreaterThan(2); // 18-byte records, 100-byte segments
    const seen: string[] = [];
    while (s.size > 0) {
      const batch = s.peek(4);
      seen.push(...text(batch));
      s.ack(batch.length);
    }
    expect(seen).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map((i) => String(i).padStart(6, '0')));
    // Consumed segments are deleted; an empty spool holds no data.
    expect(segFiles(dir)).toEqual([]);
    expect(s.bytes).toBe(0);
    // ack without a preceding peek works too (it reads the headers).
    s.append([20, 21, 22].map((i) => rec(i)));
    s.ack(2);
    expect(text(s.peek(5))).toEqual(['000022']);
    expect(() => s.ack(2)).toThrow(RangeError);
  });

  it('peek honours a byte budget but always returns at least one record', () => {
    const s = openSpool({ dir: fresh(), fsync: 'never' });
    s.append([rec(0, 50), rec(1, 50), rec(2, 50)]);
    expect(s.peek(10, 120).length).toBe(2);
    expect(s.peek(10, 10).length).toBe(1);
  });

  it('survives a restart: reopens with the unacked records, in order, and continues', () => {
    const dir = fresh();
    const a = Spool.open({ dir, segmentBytes: 64, fsync: 'always' });
    a.append([0, 1, 2, 3, 4, 5].map((i) => rec(i)));
    a.peek(2);
    a.ack(2);
    a.close();
    const b = openSpool({ dir, segmentBytes: 64, fsync: 'always' });
    expect(b.size).toBe(4);
    b.append([6, 7].map((i) => rec(i)));
    expect(text(b.peek(10))).toEqual(['000002', '000003', '000004', '000005', '000006', '000007']);
  });

  it('refuses a second owner while the first is open, and takes over a dead owner’s lock', () => {
    const dir = fresh();
    const a = openSpool({ dir });
    expect(() => Spool.open({ dir })).toThrow(/in use by process/);
    a.close();
    // A lock left by a crashed process (pid that cannot exist).
    writeFileSync(join(dir, 'lock'), '999999999');
    const { lines, logger } = capture();
    openSpool({ dir, logger });
    expect(lines.join('')).toMatch(/stale lock/);
  });

  it('detects a torn tail after a crash, truncates it with a warning, and appends after it', () => {
    const dir = fresh();
    const a = Spool.open({ dir, fsync: 'always' });
    a.append([0, 1, 2].map((i) => rec(i, 100)));
    a.close();
    const [seg] = segFiles(dir);
    const path = join(dir, seg);
    const full = statSync(path).size;
    // A crash in the middle of writing the fourth record: header and half of its payload.
    const torn = Buffer.alloc(8 + 50, 0x41);
    torn.writeUInt32BE(100, 0);
    appendFileSync(path, torn);
    const { lines, logger } = capture();
    const b = openSpool({ dir, logger, fsync: 'always' });
    expect(b.size).toBe(3);
    expect(statSync(path).size).toBe(full);
    const warning = lines.map((l) => JSON.parse(l)).find((l) => /torn or corrupt tail/.test(l.msg));
    expect(warning).toMatchObject({ level: 'warn', droppedBytes: 58, offset: full });
    b.append([rec(3, 100)]);
    expect(text(b.peek(10))).toEqual(['000000', '000001', '000002', '000003']);
  });

  it('treats a bit flip or a zero-filled tail as corruption (the CRC covers the length too)', () => {
    const dir = fresh();
    const a = Spool.open({ dir, fsync: 'always' });
    a.append([0, 1, 2].map((i) => rec(i, 100)));
    a.close();
    const path = join(dir, segFiles(dir)[0]);
    flipByte(path, 2 * 108 + 8 + 50); // inside the last record's payload
    const b = Spool.open({ dir });
    expect(text(b.peek(10))).toEqual(['000000', '000001']);
    b.close();

    const dir2 = fresh();
    const c = Spool.open({ dir: dir2, fsync: 'always' });
    c.append([0, 1].map((i) => rec(i, 100)));
    c.close();
    const path2 = join(dir2, segFiles(dir2)[0]);
    appendFileSync(path2, Buffer.alloc(4096)); // what a filesystem may leave after a power cut
    const { lines, logger } = capture();
    const d = openSpool({ dir: dir2, logger });
    expect(d.size).toBe(2);
    expect(statSync(path2).size).toBe(2 * 108);
    expect(lines.join('')).toMatch(/CRC mismatch/);
  });

  it('drops only what follows a corrupt record in the middle of the tail segment', () => {
    const dir = fresh();
    const a = Spool.open({ dir, fsync: 'always' });
    a.append([0, 1, 2, 3].map((i) => rec(i, 100)));
    a.close();
    const path = join(dir, segFiles(dir)[0]);
    // Corrupt a payload byte of record 2 (records are 108 bytes: 8 header + 100 payload).
    flipByte(path, 2 * 108 + 8 + 20);
    const { lines, logger } = capture();
    const b = openSpool({ dir, logger });
    expect(text(b.peek(10))).toEqual(['000000', '000001']);
    expect(lines.join('')).toMatch(/"droppedBytes":216/);
  });

  it('is bounded: appends what fits, then refuses until acks free whole segments', () => {
    const dir = fresh();
    // 108-byte records, 216-byte segments (two records each), 540 bytes in all: five records.
    const s = openSpool({ dir, maxBytes: 540, segmentBytes: 216, fsync: 'never' });
    expect(s.append([0, 1, 2, 3, 4, 5, 6].map((i) => rec(i, 100)))).toBe(5);
    expect(s.bytes).toBe(540);
    expect(s.append([rec(7, 100)])).toBe(0);
    s.peek(1);
    s.ack(1); // half of the first segment: still on disk
    expect(s.append([rec(7, 100)])).toBe(0);
    s.ack(1); // the first segment goes
    expect(s.append([rec(7, 100), rec(8, 100), rec(9, 100)])).toBe(2);
    expect(text(s.peek(10))).toEqual(['000002', '000003', '000004', '000007', '000008']);
    expect(() => s.append([Buffer.alloc(1000)])).toThrow(RangeError);
  });

  it('remembers acks across a restart, including a crash between the head update and a delete', () => {
    const dir = fresh();
    const a = Spool.open({ dir, segmentBytes: 216, fsync: 'always' });
    a.append([0, 1, 2, 3, 4].map((i) => rec(i, 100)));
    const firstSegment = segFiles(dir)[0];
    const copy = readFileSync(join(dir, firstSegment));
    a.peek(3);
    a.ack(3);
    a.close();
    // Bring back the deleted first segment, as if the process died before unlinking it.
    writeFileSync(join(dir, firstSegment), copy);
    const b = openSpool({ dir, segmentBytes: 216 });
    expect(b.size).toBe(2);
    expect(text(b.peek(10))).toEqual(['000003', '000004']);
    expect(segFiles(dir)).not.toContain(firstSegment);
  });
});
