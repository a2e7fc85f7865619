/**
 * `callscope run --interface` on an OVS lab's monitoring VM (a namespace): the capture of the mirror
 * into an embedded store, started and stopped as the end-to-end tests need it, its JSON summary read
 * when it exits.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { OvsLab, OvsVm } from './ovs.js';
import { REPO_ROOT } from './tools.js';

const CALLSCOPE = join(REPO_ROOT, 'dist/bin/callscope.js');

export interface LiveRunResult {
  exitCode: number | null;
  out: Record<string, unknown>;
  stderr: string;
}

export interface LiveRun {
  child: ChildProcess;
  dataDir: string;
  /** Resolves once the capture says it is live (its structured log), rejects if it exits first. */
  live: Promise<void>;
  /** What it logged so far (JSON lines). */
  stderr(): string;
  /** SIGINT, then its exit and the JSON summary it printed. */
  stop(): Promise<LiveRunResult>;
}

export function startLiveRun(lab: OvsLab, monitor: OvsVm, dataDir: string, args: string[] = []): LiveRun {
  // biome-ignore format: option/value pairs
  const child = lab.spawnIn(monitor.ns, process.execPath, [
    CALLSCOPE, 'run', '--interface', monitor.nsIf, '--data-dir', dataDir,
    '--ovs-db', lab.dbTarget, '--ovs-unixctl', lab.vswitchdCtl!, '--json',
    '--log-level', 'info', '--log-format', 'json', '--no-progress', ...args,
  ]);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const live = (async () => {
    const deadline = Date.now() + 30_000;
    while (!/live capture started/.test(stderr)) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`callscope run did not start capturing:\n${stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    child,
    dataDir,
    live,
    stderr: () => stderr,
    async stop() {
      child.kill('SIGINT');
      const exitCode = await exit;
      try {
        return { exitCode, out: JSON.parse(stdout) as Record<string, unknown>, stderr };
      } catch {
        throw new Error(
          `callscope run printed no JSON (exit ${exitCode}):\n${stdout}\n${stderr.slice(-3000)}`,
        );
      }
    },
  };
}
