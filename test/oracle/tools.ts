/**
 * Small helpers for tests that take their truth from outside tools (tshark, SIPp, tcpdump).
 * Nothing here imports product code: an oracle must not share the code it checks.
 */
import { accessSync, constants, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository root: the nearest ancestor of this module's directory that holds `package.json`.
 * Works both from the TypeScript sources (`test/oracle/`) and from the compiled copy (`dist/test/oracle/`).
 */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return resolve(dirname(fileURLToPath(import.meta.url)), '../..');
    dir = parent;
  }
}

export const REPO_ROOT: string = findRepoRoot();

/** `../shared` next to the repository: public captures, schemas, CONTEXT.md (may be absent). */
export const SHARED_DIR: string = resolve(REPO_ROOT, '../shared');

/** `${SHARED_DIR}/pcaps` if that directory exists, else null (tests that need it skip). */
export const SHARED_PCAPS: string | null = isDirectory(join(SHARED_DIR, 'pcaps'))
  ? join(SHARED_DIR, 'pcaps')
  : null;

/** Our own SIPp scenario files (`test/sipp/*.xml`). */
export const SIPP_SCENARIO_DIR: string = join(REPO_ROOT, 'test', 'sipp');

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const toolCache = new Map<string, string | null>();

/** Absolute path of an executable found on PATH (like `which`), or null; cached per process. */
export function toolPath(name: string): string | null {
  const cached = toolCache.get(name);
  if (cached !== undefined) return cached;
  let found: string | null = null;
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH ?? '').split(delimiter).map((d) => join(d || '.', name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) {
        found = candidate;
        break;
      }
    } catch {
      // not here
    }
  }
  toolCache.set(name, found);
  return found;
}

/** True when `name` is an executable on PATH (cached). */
export function haveTool(name: string): boolean {
  return toolPath(name) !== null;
}

/**
 * A fresh private directory under the OS temp dir (`mkdtemp`). The caller removes it, typically in
 * `afterAll` with {@link removeTmpDir}.
 */
export function tmpDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Removes a directory made by {@link tmpDir}. Set `CALLSCOPE_KEEP_TMP=1` to keep it (captures and SIPp
 * logs for debugging); the path is then printed instead.
 */
export function removeTmpDir(dir: string): void {
  if (process.env.CALLSCOPE_KEEP_TMP === '1') {
    console.log(`[oracle] keeping ${dir} (CALLSCOPE_KEEP_TMP=1)`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
}

/** True when running as root (uid 0): tcpdump and SIPp's pcap replay need it. */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}
