/**
 * Test helper: tries to start an EmbeddedStore in another process, to check the cross-process
 * lock (chDB lets several connections share a directory inside one process, so only a second
 * process meets the engine's own lock). The store's sources are transpiled to a temporary
 * directory for that process, since Node 20 does not run TypeScript.
 */
import { execFile } from 'node:child_process';
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
  const store = await EmbeddedStore.start({ dataDir: process.argv[2] });
  console.log(JSON.stringify({ url: store.url }));
  await store.close();
} catch (error) {
  console.log(JSON.stringify({ error: error.message }));
}
`;

export async function startStoreInChild(dataDir: string): Promise<{ url?: string; error?: string }> {
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
    writeFileSync(join(out, 'child.mjs'), CHILD);
    const { stdout } = await promisify(execFile)(process.execPath, [join(out, 'child.mjs'), dataDir], {
      cwd: out,
    });
    return JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
