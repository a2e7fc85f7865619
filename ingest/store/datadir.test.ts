import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataDirState, flockHolder, lockHolder, publishServedUrl, withdrawServedUrl } from './datadir.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'callscope-datadir-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** glibc's makedev(). */
function makedev(major: bigint, minor: bigint): bigint {
  return ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
}

describe('data directory', () => {
  it('recognises a store by the metadata/ directory chDB writes with the first database', () => {
    const store = join(dir, 'store');
    mkdirSync(join(store, 'metadata'), { recursive: true });
    const opened = join(dir, 'opened-only');
    mkdirSync(join(opened, 'tmp'), { recursive: true });
    writeFileSync(join(dir, 'file'), '');
    expect(dataDirState(store)).toBe('store');
    expect(dataDirState(opened)).toBe('no store');
    expect(dataDirState(join(dir, 'file'))).toBe('not a directory');
    expect(dataDirState(join(dir, 'missing'))).toBe('nothing');
  });

  it('reads the flock holder of a file from /proc/locks, skipping waiters and other files', () => {
    // st_dev 0xfe00 is device fe:00; the last line's device has both numbers' high parts set.
    const locks = [
      '1: FLOCK  ADVISORY  WRITE 9492 fe:00:2147470 0 EOF',
      '1: -> FLOCK  ADVISORY  WRITE 9500 fe:00:2147471 0 EOF',
      '2: POSIX  ADVISORY  WRITE 777 fe:00:2147472 0 EOF',
      '3: FLOCK  ADVISORY  WRITE 0 fe:00:2147473 0 EOF',
      '4: FLOCK  ADVISORY  WRITE 4242 1103:10001:12 0 EOF',
      '',
    ].join('\n');
    expect(flockHolder(locks, 0xfe00n, 2147470n)).toEqual({ pid: 9492 });
    expect(flockHolder(locks, 0xfe00n, 2147471n)).toBeUndefined();
    expect(flockHolder(locks, 0xfe00n, 2147472n)).toBeUndefined();
    expect(flockHolder(locks, 0xfe00n, 2147473n)).toEqual({});
    expect(flockHolder(locks, 0xfe01n, 2147470n)).toBeUndefined();
    expect(flockHolder(locks, makedev(0x1103n, 0x10001n), 12n)).toEqual({ pid: 4242 });
  });

  it.runIf(existsSync('/proc/locks'))('does not take a status file nobody locks for a lock', () => {
    const crashed = join(dir, 'crashed');
    mkdirSync(crashed);
    // What a store killed with SIGKILL leaves: its status file, naming a live pid (ours here).
    writeFileSync(join(crashed, 'status'), `PID: ${process.pid}\nStarted at: 2026-01-01 00:00:00\n`);
    expect(statSync(join(crashed, 'status')).isFile()).toBe(true);
    expect(lockHolder(crashed)).toBeUndefined();
  });

  it('publishes the served URL for its own pid only, and withdraws it', () => {
    const served = join(dir, 'served');
    mkdirSync(served);
    publishServedUrl(served, 'http://127.0.0.1:8123');
    expect(existsSync(join(served, 'callscope-serving.json'))).toBe(true);
    withdrawServedUrl(served);
    expect(existsSync(join(served, 'callscope-serving.json'))).toBe(false);
    // Another process's record is left alone.
    writeFileSync(
      join(served, 'callscope-serving.json'),
      JSON.stringify({ pid: 1, url: 'http://127.0.0.1:1' }),
    );
    withdrawServedUrl(served);
    expect(existsSync(join(served, 'callscope-serving.json'))).toBe(true);
  });
});
