/**
 * Child processes of the pipeline tests: the scripts of this folder transpiled with the project's
 * TypeScript (Node 20 does not run TypeScript) into a cache directory inside node_modules, where Node
 * finds kafkajs, chdb and @clickhouse/client by walking up; and a handle that reads their JSON-line
 * output.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from '../oracle/tools.js';

export interface PipelineScripts {
  storeHost: string;
  consumeToStore: string;
  /** The product's CLI (bin/callscope.ts), for `callscope ingest`. */
  callscope: string;
}

let compiled: PipelineScripts | undefined;

/**
 * Transpiles store-host.ts, consume-to-store.ts and bin/callscope.ts and every project module they import (relative
 * `.js` imports of `.ts` sources), once per process. Types are checked by the project's own tsc run;
 * the children only need JavaScript, and transpiling module by module takes well under a second.
 */
export function compilePipelineScripts(): PipelineScripts {
  if (compiled) return compiled;
  const outDir = join(REPO_ROOT, 'node_modules', '.cache', 'callscope-pipeline-child');
  mkdirSync(outDir, { recursive: true });
  const todo = [
    join(REPO_ROOT, 'test', 'pipeline', 'store-host.ts'),
    join(REPO_ROOT, 'test', 'pipeline', 'consume-to-store.ts'),
    join(REPO_ROOT, 'bin', 'callscope.ts'),
  ];
  const done = new Set<string>();
  while (todo.length > 0) {
    const source = todo.pop()!;
    if (done.has(source)) continue;
    done.add(source);
    const text = readFileSync(source, 'utf8');
    for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
      if (!fileName.startsWith('.')) continue; // packages: found in node_modules
      todo.push(resolve(dirname(source), fileName.replace(/\.js$/, '.ts')));
    }
    const { outputText } = ts.transpileModule(text, {
      fileName: source,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        esModuleInterop: true,
      },
    });
    const target = join(outDir, relative(REPO_ROOT, source)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  }
  writeFileSync(join(outDir, 'package.json'), '{"type":"module"}\n');
  compiled = {
    storeHost: join(outDir, 'test', 'pipeline', 'store-host.js'),
    consumeToStore: join(outDir, 'test', 'pipeline', 'consume-to-store.js'),
    callscope: join(outDir, 'bin', 'callscope.js'),
  };
  return compiled;
}

export type ChildLine = Record<string, unknown> & { event: string };

/** A child speaking JSON lines on stdout; keeps every line and the tail of stderr. */
export class JsonLineChild {
  readonly process: ChildProcess;
  readonly lines: ChildLine[] = [];
  private stderr = '';
  private readonly waiters = new Set<() => void>();
  onLine: ((line: ChildLine) => void) | null = null;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.process = spawn(process.execPath, [script, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let out = '';
    this.process.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const text = out.slice(0, nl);
        out = out.slice(nl + 1);
        let line: ChildLine;
        try {
          line = JSON.parse(text) as ChildLine;
        } catch {
          line = { event: 'text', text };
        }
        this.lines.push(line);
        this.onLine?.(line);
        for (const w of [...this.waiters]) w();
      }
    });
    this.process.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code, signal) => {
        resolve({ code, signal });
        for (const w of [...this.waiters]) w();
      });
    });
  }

  get alive(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  get stderrTail(): string {
    return this.stderr.trim();
  }

  send(command: string): void {
    this.process.stdin!.write(`${command}\n`);
  }

  /** The first line from index `from` on that matches; rejects on exit or timeout. */
  next(match: (line: ChildLine) => boolean, timeoutMs: number, from = 0): Promise<ChildLine> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = (): void => {
        const found = this.lines.slice(from).find(match);
        if (found) finish(() => resolve(found));
        else if (!this.alive)
          finish(() =>
            reject(
              new Error(`child exited (${this.process.exitCode ?? this.process.signalCode}): ${this.stderr}`),
            ),
          );
      };
      const finish = (f: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      timer = setTimeout(
        () =>
          finish(() =>
            reject(new Error(`no matching line from the child within ${timeoutMs} ms: ${this.stderr}`)),
          ),
        timeoutMs,
      );
      this.waiters.add(check);
      check();
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.process.kill(signal);
  }
}
