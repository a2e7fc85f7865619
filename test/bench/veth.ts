/**
 * A veth pair for live-capture tests and the live bench: one end (`capture`) in this process's network
 * namespace, where callscope captures; the other (`peer`) in a network namespace of its own, created
 * here, where tcpreplay sends. Nothing is routed: neither end has an address (IPv6 is off on both, so
 * the kernel sends nothing of its own), the replayed frames are addressed to MACs that are not ours,
 * and everything stays inside the pair. Names are unique per process; `destroy()` removes it all.
 */
import { spawn, spawnSync } from 'node:child_process';
import { haveTool, isRoot } from '../oracle/tools.js';

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

function sysctl(ns: string | null, key: string, value: string): void {
  const cmd = ns
    ? ['ip', 'netns', 'exec', ns, 'sysctl', '-qw', `${key}=${value}`]
    : ['sysctl', '-qw', `${key}=${value}`];
  spawnSync(cmd[0]!, cmd.slice(1));
}

/** Why live capture over veth cannot be tested here, or null when it can. */
export function vethUnavailableReason(): string | null {
  if (!isRoot()) return 'needs root (network namespaces, veth, packet capture)';
  for (const tool of ['ip', 'tcpreplay']) if (!haveTool(tool)) return `needs ${tool}`;
  return null;
}

export interface ReplayResult {
  sent: number;
  seconds: number;
  /** tcpreplay's own rate figure. */
  pps: number;
  failed: number;
}

export class VethPair {
  readonly ns: string;
  readonly capture: string;
  readonly peer: string;

  constructor(tag: string) {
    const id = `${tag}${process.pid % 100000}`.slice(0, 11);
    this.ns = `cs-${id}`;
    this.capture = `${id}a`;
    this.peer = `${id}b`;
    this.destroy();
    ip(['netns', 'add', this.ns]);
    this.link();
  }

  /** Creates (again) the veth pair with the same names. */
  link(): void {
    ip(['link', 'add', this.capture, 'type', 'veth', 'peer', 'name', this.peer, 'netns', this.ns]);
    sysctl(null, `net.ipv6.conf.${this.capture}.disable_ipv6`, '1');
    sysctl(this.ns, `net.ipv6.conf.${this.peer}.disable_ipv6`, '1');
    ip(['link', 'set', this.capture, 'up']);
    ip(['-n', this.ns, 'link', 'set', this.peer, 'up']);
  }

  /** Deletes the pair (both ends). */
  unlink(): void {
    spawnSync('ip', ['link', 'del', this.capture]);
  }

  setCaptureEnd(state: 'up' | 'down'): void {
    ip(['link', 'set', this.capture, state]);
  }

  /** tcpreplay of `file` from the peer end; `args` e.g. ['--pps', '5000'] or ['--topspeed']. */
  replay(file: string, args: string[]): Promise<ReplayResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', this.ns, 'tcpreplay', '-i', this.peer, ...args, file], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        out += d;
      });
      child.on('error', reject);
      child.on('close', (code) => {
        const actual = /Actual: (\d+) packets .* in ([\d.]+) seconds/.exec(out);
        const rated = /Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps/.exec(out);
        const failed = /Failed packets:\s+(\d+)/.exec(out);
        if (code !== 0 || !actual) {
          reject(new Error(`tcpreplay failed (${code}): ${out.slice(-500)}`));
          return;
        }
        resolve({
          sent: Number(actual[1]),
          seconds: Number(actual[2]),
          pps: rated ? Number(rated[1]) : 0,
          failed: failed ? Number(failed[1]) : 0,
        });
      });
    });
  }

  destroy(): void {
    spawnSync('ip', ['link', 'del', this.capture], { stdio: 'ignore' });
    spawnSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore' });
  }
}
