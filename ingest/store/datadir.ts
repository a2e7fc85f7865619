/**
 * What an embedded store's data directory holds, read without opening it in chDB (which would
 * create the directory, take its lock and print its own failures on stderr): whether it holds a
 * store, which process holds its lock, and the URL that process serves the store on.
 */
import { type BigIntStats, readFileSync, rmSync, type Stats, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LockHolder } from './errors.js';

/**
 * chDB writes `metadata/` when a database is first created (and `store/`, `data/` with the first
 * table); opening a directory alone leaves only `tmp/`. EmbeddedStore creates its default database
 * on every start, so any directory a store was opened on has `metadata/`.
 */
const STORE_MARKER = 'metadata';
/** ClickHouse's `status` file: `PID: N` of its owner, flock()ed for the owner's lifetime. */
const STATUS_FILE = 'status';
/** Ours: the URL the owner serves the store on, so another process can be told where to go. */
const SERVING_FILE = 'callscope-serving.json';

export type DataDirState = 'store' | 'nothing' | 'not a directory' | 'no store';

export function dataDirState(dataDir: string): DataDirState {
  const dir = statOrUndefined(dataDir);
  if (!dir) return 'nothing';
  if (!dir.isDirectory()) return 'not a directory';
  return statOrUndefined(join(dataDir, STORE_MARKER))?.isDirectory() ? 'store' : 'no store';
}

/**
 * The process holding the directory's lock, or undefined when none does. A `status` file left by
 * a process that died is not a lock: on Linux the kernel's lock table says who holds it; elsewhere
 * the file's PID is trusted when that process is alive.
 */
export function lockHolder(dataDir: string): LockHolder | undefined {
  const statusFile = join(dataDir, STATUS_FILE);
  let status: BigIntStats;
  let text: string;
  try {
    status = statSync(statusFile, { bigint: true });
    text = readFileSync(statusFile, 'utf8');
  } catch {
    return undefined;
  }
  let pid: number | undefined;
  const locks = readLocks();
  if (locks !== undefined) {
    const holder = flockHolder(locks, status.dev, status.ino);
    if (!holder) return undefined;
    pid = holder.pid;
  } else {
    pid = Number(/^PID:\s*(\d+)/m.exec(text)?.[1]) || undefined;
    if (pid === undefined || !pidAlive(pid)) return undefined;
  }
  return { pid, url: servedUrl(dataDir, pid) };
}

/** Records the URL this process serves the store on (removed by `withdrawServedUrl`). */
export function publishServedUrl(dataDir: string, url: string): void {
  writeFileSync(join(dataDir, SERVING_FILE), `${JSON.stringify({ pid: process.pid, url })}\n`);
}

export function withdrawServedUrl(dataDir: string): void {
  if (servedUrl(dataDir, process.pid) !== undefined) rmSync(join(dataDir, SERVING_FILE), { force: true });
}

/** The URL `pid` published for the directory; one left by an earlier owner does not count. */
function servedUrl(dataDir: string, pid: number | undefined): string | undefined {
  try {
    const served = JSON.parse(readFileSync(join(dataDir, SERVING_FILE), 'utf8')) as {
      pid?: unknown;
      url?: unknown;
    };
    return served.pid === pid && typeof served.url === 'string' ? served.url : undefined;
  } catch {
    return undefined;
  }
}

function readLocks(): string | undefined {
  try {
    return readFileSync('/proc/locks', 'utf8');
  } catch {
    return undefined;
  }
}

// `1: FLOCK  ADVISORY  WRITE 9492 fe:00:2147470 0 EOF`; waiters are listed with `->` and skipped.
const LOCK_LINE = /^\d+:\s+FLOCK\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/gm;

/**
 * Who holds a flock() on the file with device `dev` and inode `ino`, per /proc/locks; the pid is
 * missing when the holder lives in another pid namespace (the kernel shows 0 there).
 */
export function flockHolder(locks: string, dev: bigint, ino: bigint): { pid?: number } | undefined {
  // glibc's encoding of st_dev: major in bits 8–19 and 32–43, minor in bits 0–7 and 20–31.
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n);
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xffffff00n);
  for (const m of locks.matchAll(LOCK_LINE)) {
    if (BigInt(`0x${m[2]}`) === major && BigInt(`0x${m[3]}`) === minor && BigInt(m[4]) === ino) {
      const pid = Number(m[1]);
      return pid > 0 ? { pid } : {};
    }
  }
  return undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
