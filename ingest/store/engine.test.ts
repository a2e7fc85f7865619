import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// chDB's native library (libchdb.so, 566 MB, and its addon) shows in /proc/PID/maps once loaded.
const CHDB_MAPPING = /chdb/i;
const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'dist/bin/callscope.js');
const sample = join(root, 'capture/sample/calls.pcap');
let dir: string;
let probe: string;

function chdbMapped(): boolean {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .some((line) => CHDB_MAPPING.test(line));
}

/** Whether dist/ is older than a source of this folder (then the CLI under test would be stale). */
function distStale(): boolean {
  if (!existsSync(cli)) return true;
  const built = statSync(join(root, 'dist/ingest/store/engine.js'), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const here = join(root, 'ingest/store');
  return readdirSync(here).some(
    (f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && statSync(join(here, f)).mtimeMs > built,
  );
}

beforeAll(() => {
  if (distStale()) spawnSync('npx', ['tsc', '-p', root], { cwd: root, stdio: 'inherit' });
  dir = mkdtempSync(join(tmpdir(), 'callscope-lazy-'));
  // Preloaded into the CLI: reports, as the process ends, whether chDB was ever mapped into it.
  probe = join(dir, 'probe.mjs');
  writeFileSync(
    probe,
    `import { readFileSync, writeSync } from 'node:fs';
process.on('exit', () => {
  const mapped = readFileSync('/proc/self/maps', 'utf8').split('\\n').some((l) => ${CHDB_MAPPING}.test(l));
  writeSync(2, '\\nchdb-mapped=' + mapped + '\\n');
});
`,
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The probe's verdict from a CLI run's stderr. */
function verdict(stderr: string): boolean | undefined {
  const m = /chdb-mapped=(true|false)/.exec(stderr);
  return m ? m[1] === 'true' : undefined;
}

describe.runIf(existsSync('/proc/self/maps'))('loading chDB', () => {
  it('is not done by importing the store modules, only by loadChdb (the first store opened)', async () => {
    expect(chdbMapped()).toBe(false);
    await import('./client.js');
    await import('./embedded.js');
    const engine = await import('./engine.js');
    expect(chdbMapped()).toBe(false);
    const first = await engine.loadChdb();
    expect(chdbMapped()).toBe(true);
    expect(await engine.loadChdb()).toBe(first);
  });

  it('is not done by `callscope analyze`, which imports the whole command table', () => {
    const r = spawnSync(process.execPath, ['--import', probe, cli, 'analyze', sample, '--json'], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).packets).toBeGreaterThan(0);
    expect(verdict(r.stderr), r.stderr).toBe(false);
  });

  it('is done by `callscope store`, which opens an embedded store', async () => {
    const child = spawn(
      process.execPath,
      ['--import', probe, cli, 'store', '--data-dir', join(dir, 'data'), '--port', '0', '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = once(child, 'exit');
    // Serving: the store is open.
    await Promise.race([once(child.stdout, 'data'), exited]);
    child.kill('SIGTERM');
    await exited;
    expect(verdict(stderr), stderr).toBe(true);
  });
});
