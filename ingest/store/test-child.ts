/**
 * Test helper: EmbeddedStores in other processes, to check the cross-process lock (chDB lets
 * several connections share a directory inside one process, so only a second process meets the
 * engine's own lock). The store's sources are transpiled to a temporary directory for that
 * process, since Node 20 does not run TypeScript.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');

const CHILD = `
import { EmbeddedStore } from './ingest/store/embedded.js';
try {
  const store = await EmbeddedStore.start({ dataDir: process.argv[2], port: Number(process.argv[3] ?? 0) });
  console.log(JSON.stringify({ url: store.url }));
  await store.close();
} catch (error) {
  console.log(JSON.stringify({ error: error.message, code: error.code }));
}
`;

// Serves the store until its stdin closes.
const HOLDER = `
import { EmbeddedStore } from './ingest/store/embedded.js';
const store = await EmbeddedStore.start({ dataDir: process.argv[2] });
console.log(JSON.stringify({ url: store.url, pid: process.pid }));
process.stdin.resume();
process.stdin.on('end', () => store.close());
`;

/** Starts and closes a store on `dataDir` (and `port`) in another process: its URL or its error. */
export async function startStoreInChild(
  dataDir: string,
  port = 0,
): Promise<{ url?: string; error?: string; code?: string }> {
  const out = transpile();
  try {
    writeFileSync(join(out, 'child.mjs'), CHILD);
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(out, 'child.mjs'), dataDir, String(port)],
      {
        cwd: out,
      },
    );
    return JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

export interface HeldStore {
  url: string;
  pid: number;
  /** Closes the store and waits for the process to end. */
  stop(): Promise<void>;
}

/** A store on `dataDir` served by another process until `stop()`. */
export async function holdStoreInChild(dataDir: string): Promise<HeldStore> {
  const out = transpile();
  writeFileSync(join(out, 'holder.mjs'), HOLDER);
  const child = spawn(process.execPath, [join(out, 'holder.mjs'), dataDir], {
    cwd: out,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  const stop = async () => {
    child.stdin.end();
    await exited;
    rmSync(out, { recursive: true, force: true });
  };
  try {
    const [line] = (await Promise.race([
      once(child.stdout, 'data'),
      exited.then(() => {
        throw new Error('the store process ended before serving');
      }),
    ])) as [Buffer];
    const { url, pid } = JSON.parse(line.toString()) as { url: string; pid: number };
    return { url, pid, stop };
  } catch (error) {
    child.kill();
    await stop();
    throw error;
  }
}

/** The store's sources, transpiled to JavaScript in a new temporary directory. */
function transpile(): string {
  const out = mkdtempSync(join(tmpdir(), 'callscope-store-child-'));
  try {
    symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'), 'dir');
    writeFileSync(join(out, 'package.json'), '{"type":"module"}');
    const sources = readdirSync(here)
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && f !== 'test-child.ts')
      .map((f) => `ingest/store/${f}`)
      .concat('core/log.ts');
    for (const source of sources) {
      const { outputText } = ts.transpileModule(readFileSync(join(root, source), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
      });
      const target = join(out, source.replace(/\.ts$/, '.js'));
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, outputText);
    }
    return out;
  } catch (error) {
    rmSync(out, { recursive: true, force: true });
    throw error;
  }
}
