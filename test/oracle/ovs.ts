/**
 * A private Open vSwitch for tests: ovsdb-server (and ovs-vswitchd with the userspace datapath) run
 * from a temp dir, a uniquely named `datapath_type=netdev` bridge, and "VMs" as network namespaces on
 * veth ports. Follows the recipe in ../shared/CONTEXT.md. Nothing here imports product code: ovs-vsctl
 * and ovs-appctl are the outside oracle the product's OVSDB/unixctl clients are checked against.
 *
 * Isolation: by default ovs-vswitchd runs inside its own network namespace (`lab.netns`). Two netdev
 * vswitchds in one namespace fight over the `ovs-netdev` tap device (the second fails to create any
 * bridge), and a killed vswitchd leaves its tap devices behind; a private namespace avoids both and
 * keeps port names such as `tap9101i0` from colliding between test files running side by side.
 * Consequence: the switch's own ports (the OVS side of each veth) live in `lab.netns`, not in the
 * test process's namespace; use {@link OvsLab.addCapturePort} to get a mirror output visible here.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { NETNS, needs, type Requirement, ROOT, removeTmpDir, requirement, tmpDir, tool } from './tools.js';

const SCHEMA_CANDIDATES = [
  '/usr/share/openvswitch/vswitch.ovsschema',
  '/usr/local/share/openvswitch/vswitch.ovsschema',
];

function schemaPath(): string | null {
  return SCHEMA_CANDIDATES.find((p) => existsSync(p)) ?? null;
}

/** What a private OVS lab needs: its binaries, the vswitch schema, root and network namespaces. */
export const OVS_LAB: readonly Requirement[] = [
  ...['ovsdb-tool', 'ovsdb-server', 'ovs-vswitchd', 'ovs-vsctl', 'ovs-appctl', 'ip', 'ethtool'].map(tool),
  requirement('vswitch.ovsschema', 'apt-get install openvswitch-switch', () =>
    schemaPath() ? null : `not found in ${SCHEMA_CANDIDATES.join(', ')}`,
  ),
  ROOT,
  NETNS,
];

/** Why OVS tests cannot run here, or '' when they can. Tests gate with `needs(...OVS_LAB)`. */
export function ovsSkipReason(): string {
  return needs(...OVS_LAB).reason;
}

export interface OvsLabOptions {
  /** Start ovs-vswitchd too (default true). Without it, `vsctl` adds `--no-wait`. */
  vswitchd?: boolean;
  /** Create a uniquely named `datapath_type=netdev` bridge (default true). */
  bridge?: boolean;
  /** Run ovs-vswitchd in a private network namespace (default true; see the module comment). */
  isolated?: boolean;
  /** Also let ovsdb-server listen on TCP 127.0.0.1 (`lab.dbTcpTarget`). Default false. */
  tcp?: boolean;
}

export interface AddVmOptions {
  /** OVS-side interface name, e.g. `tap9101i0` (max 15 chars). */
  port: string;
  /** Address with prefix for the namespace side, e.g. `10.77.0.11/24`. */
  ip: string;
  /** MAC of the namespace side; default a random locally administered one. */
  mac?: string;
  /** Set on the OVS `Interface` row (e.g. `attached-mac`, `vm-id`, `iface-id`). */
  externalIds?: Record<string, string>;
}

export interface OvsVm {
  /** The VM's network namespace. */
  ns: string;
  /** OVS port (and Interface) name. */
  port: string;
  /** Interface name inside the namespace (`eth0`). */
  nsIf: string;
  /** Lower-case MAC of `nsIf`. */
  mac: string;
  /** Address without prefix, e.g. `10.77.0.11`. */
  ip: string;
  /** Address with prefix as given, e.g. `10.77.0.11/24`. */
  cidr: string;
}

export interface OvsLab {
  /** Private run/log/db directory (also OVS_RUNDIR etc. of the daemons). */
  readonly dir: string;
  /** `unix:<dir>/db.sock` */
  readonly dbTarget: string;
  /** `tcp:127.0.0.1:<port>` when started with `tcp: true`, else null. */
  readonly dbTcpTarget: string | null;
  /** ovs-vswitchd's unixctl socket (`<dir>/ovs-vswitchd.<pid>.ctl`), or null without vswitchd. */
  readonly vswitchdCtl: string | null;
  /** ovsdb-server's unixctl socket. */
  readonly ovsdbCtl: string;
  /** The bridge's name, or null with `bridge: false`. */
  readonly bridge: string | null;
  /** Namespace ovs-vswitchd and the switch-side ports live in; null = the test's own namespace. */
  readonly netns: string | null;
  /** Environment (OVS_RUNDIR, ...) the daemons were started with. */
  readonly env: Record<string, string>;
  /** `ovs-vsctl --db=unix:... --timeout=10 ...args` → stdout. Throws with stderr on failure. */
  vsctl(...args: string[]): Promise<string>;
  /** `ovs-appctl -t <vswitchdCtl> ...args` → stdout. */
  appctl(...args: string[]): Promise<string>;
  /** `ovs-appctl -t <ovsdbCtl> ...args` → stdout. */
  ovsdbAppctl(...args: string[]): Promise<string>;
  /** A namespace with a veth whose OVS side (`port`) is on the bridge. */
  addVm(options: AddVmOptions): Promise<OvsVm>;
  /**
   * A veth whose OVS side `port` is on the bridge and whose other side (`peer`, up, TX offload off)
   * is in the test process's own namespace: use it as a mirror output to capture from here.
   */
  addCapturePort(options: { port: string; peer?: string }): Promise<{ port: string; peer: string }>;
  /** Runs `cmd args` inside namespace `ns` (null = own namespace) → stdout. */
  exec(ns: string | null, cmd: string, args: string[], options?: { timeoutMs?: number }): Promise<string>;
  /** Spawns `cmd args` inside `ns` (null = own namespace); killed by `close()` if still running. */
  spawnIn(ns: string | null, cmd: string, args: string[]): ChildProcess;
  /**
   * UDP round trip: an echo server in `to`'s namespace, `count` datagrams from `from` → number of
   * echoes received (there is no ping on Debian's minimal images; this also proves checksums pass).
   */
  udpEcho(
    from: OvsVm,
    to: OvsVm,
    options?: { count?: number; port?: number; timeoutMs?: number },
  ): Promise<number>;
  /** Stops ovsdb-server (SIGTERM, or SIGKILL with `hard`), keeping its database. */
  stopOvsdb(options?: { hard?: boolean }): Promise<void>;
  /** Starts ovsdb-server again on the same database, socket and TCP port. */
  startOvsdb(): Promise<void>;
  /** Removes bridge, namespaces, daemons and the temp dir. Safe to call twice. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------

function run(cmd: string, args: string[], env?: Record<string, string>, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { env: env ? { ...process.env, ...env } : process.env, timeout: timeoutMs, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${cmd} ${args.join(' ')} failed: ${String(stderr).trim() || err.message}`));
        } else {
          resolve(String(stdout));
        }
      },
    );
  });
}

function nsArgs(ns: string | null, cmd: string, args: string[]): [string, string[]] {
  return ns ? ['ip', ['netns', 'exec', ns, cmd, ...args]] : [cmd, args];
}

function readPid(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0) but is gone for our purposes.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function killPid(pid: number, hard: boolean): Promise<void> {
  try {
    process.kill(pid, hard ? 'SIGKILL' : 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 5000;
  while (alive(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return;
      }
    }
    if (Date.now() > deadline + 2000) return;
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfc) | 0x02; // locally administered, unicast
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Quotes a string the way ovs-vsctl's column syntax accepts (C/JSON-like string). */
function vsctlString(s: string): string {
  return JSON.stringify(s);
}

// Labs still open when the process exits (a crashed test) are torn down synchronously.
const openLabs = new Set<{ syncCleanup: () => void }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lab of openLabs) lab.syncCleanup();
  });
}

let labCounter = 0;

/** Starts a private OVS (see {@link OvsLabOptions}). Call `close()` (e.g. in afterAll). */
export async function startOvs(options: OvsLabOptions = {}): Promise<OvsLab> {
  const reason = ovsSkipReason();
  if (reason) throw new Error(`startOvs: cannot run Open vSwitch here: ${reason}`);
  const withVswitchd = options.vswitchd ?? true;
  const withBridge = options.bridge ?? true;
  const isolated = options.isolated ?? true;
  const tag = `${randomBytes(2).toString('hex')}${(labCounter++ % 36).toString(36)}`;
  const dir = tmpDir('csovs-');
  const env: Record<string, string> = {
    OVS_RUNDIR: dir,
    OVS_LOGDIR: dir,
    OVS_DBDIR: dir,
    OVS_SYSCONFDIR: dir,
  };
  const dbSock = join(dir, 'db.sock');
  const dbTarget = `unix:${dbSock}`;
  const ovsdbPidFile = join(dir, 'ovsdb-server.pid');
  const vswitchdPidFile = join(dir, 'ovs-vswitchd.pid');
  const ovsdbCtl = join(dir, 'ovsdb-server.ctl');
  const netns = withVswitchd && isolated ? `cs${tag}-sw` : null;
  const bridge = withBridge ? `csbr${tag}` : null;
  const tcpPort = options.tcp ? await freeTcpPort() : 0;
  const dbTcpTarget = options.tcp ? `tcp:127.0.0.1:${tcpPort}` : null;
  const namespaces: string[] = [];
  const rootLinks: string[] = [];
  let vswitchdCtl: string | null = null;
  let vswitchdRunning = false;
  const children = new Set<ChildProcess>();
  let vmCounter = 0;

  const ovsdbArgs = [
    join(dir, 'conf.db'),
    `--remote=punix:${dbSock}`,
    ...(options.tcp ? [`--remote=ptcp:${tcpPort}:127.0.0.1`] : []),
    `--pidfile=${ovsdbPidFile}`,
    `--unixctl=${ovsdbCtl}`,
    `--log-file=${join(dir, 'ovsdb-server.log')}`,
    '-vconsole:off',
    '--detach',
  ];

  const baseVsctl = (args: string[]): Promise<string> =>
    run(
      'ovs-vsctl',
      [`--db=${dbTarget}`, '--timeout=10', ...(vswitchdRunning ? [] : ['--no-wait']), ...args],
      env,
    );

  const syncCleanup = (): void => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const f of [vswitchdPidFile, ovsdbPidFile]) {
      const pid = readPid(f);
      if (pid && alive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    for (const link of rootLinks) {
      try {
        execFileSync('ip', ['link', 'del', link], { stdio: 'ignore' });
      } catch {
        // gone with its peer's namespace
      }
    }
    for (const ns of namespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already deleted
      }
    }
    removeTmpDir(dir);
  };
  const registration = { syncCleanup };
  installExitHook();
  openLabs.add(registration);

  const exec = (ns: string | null, cmd: string, args: string[], o?: { timeoutMs?: number }) => {
    const [c, a] = nsArgs(ns, cmd, args);
    return run(c, a, undefined, o?.timeoutMs ?? 30_000);
  };
  const ipIn = (ns: string | null, args: string[]) => run('ip', ns ? ['-n', ns, ...args] : args);

  const startOvsdb = async (): Promise<void> => {
    await run('ovsdb-server', ovsdbArgs, env);
  };

  const stopOvsdb = async (o?: { hard?: boolean }): Promise<void> => {
    const pid = readPid(ovsdbPidFile);
    if (pid) await killPid(pid, o?.hard ?? false);
  };

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= doClose();
    return closing;
  };
  const doClose = async (): Promise<void> => {
    try {
      for (const child of children)
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      const dbPid = readPid(ovsdbPidFile);
      if (bridge && dbPid && alive(dbPid)) {
        // --no-wait: a dead or stopped vswitchd would otherwise hold this up for the full timeout.
        await run(
          'ovs-vsctl',
          [`--db=${dbTarget}`, '--timeout=5', '--no-wait', '--if-exists', 'del-br', bridge],
          env,
        ).catch(() => undefined);
      }
    } finally {
      for (const f of [vswitchdPidFile, ovsdbPidFile]) {
        const pid = readPid(f);
        if (pid) await killPid(pid, false);
      }
      vswitchdRunning = false;
      syncCleanup();
      openLabs.delete(registration);
    }
  };

  try {
    const schema = schemaPath() as string;
    await run('ovsdb-tool', ['create', join(dir, 'conf.db'), schema], env);
    await startOvsdb();
    await baseVsctl(['init']);
    if (withVswitchd) {
      if (netns) {
        await run('ip', ['netns', 'add', netns]);
        namespaces.push(netns);
        await ipIn(netns, ['link', 'set', 'lo', 'up']);
      }
      const [c, a] = nsArgs(netns, 'ovs-vswitchd', [
        dbTarget,
        `--pidfile=${vswitchdPidFile}`,
        `--log-file=${join(dir, 'ovs-vswitchd.log')}`,
        '-vconsole:off',
        '--detach',
      ]);
      await run(c, a, env);
      const pid = readPid(vswitchdPidFile);
      if (!pid) throw new Error(`ovs-vswitchd wrote no pidfile ${vswitchdPidFile}`);
      // Default unixctl name (no --unixctl) so the product's rundir/pidfile lookup is exercised.
      vswitchdCtl = join(dir, `ovs-vswitchd.${pid}.ctl`);
      vswitchdRunning = true;
    }
    if (bridge) {
      await baseVsctl(['add-br', bridge, '--', 'set', 'bridge', bridge, 'datapath_type=netdev']);
    }
  } catch (err) {
    await close();
    throw err;
  }

  const needBridge = (what: string): string => {
    if (!bridge) throw new Error(`${what}: lab started with bridge: false`);
    return bridge;
  };
  const checkIfName = (name: string, what: string): void => {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) {
      throw new Error(`${what}: interface name ${JSON.stringify(name)} must be 1-15 chars [A-Za-z0-9_.-]`);
    }
  };

  const addVm = async (o: AddVmOptions): Promise<OvsVm> => {
    const br = needBridge('addVm');
    checkIfName(o.port, 'addVm');
    const n = ++vmCounter;
    const ns = `cs${tag}-${n}`;
    const nsIf = 'eth0';
    const mac = (o.mac ?? randomMac()).toLowerCase();
    const ip = o.ip.split('/')[0];
    await run('ip', ['netns', 'add', ns]);
    namespaces.push(ns);
    // The peer is created directly in the VM namespace, so `eth0` never collides in ours.
    await ipIn(netns, ['link', 'add', o.port, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns]);
    if (!netns) rootLinks.push(o.port);
    await ipIn(ns, ['link', 'set', 'lo', 'up']);
    await ipIn(ns, ['link', 'set', nsIf, 'address', mac]);
    await ipIn(ns, ['addr', 'add', o.ip, 'dev', nsIf]);
    await ipIn(ns, ['link', 'set', nsIf, 'up']);
    await ipIn(netns, ['link', 'set', o.port, 'up']);
    // Without this, UDP/TCP checksums are left to an offload that never happens and OVS drops them.
    await exec(ns, 'ethtool', ['-K', nsIf, 'tx', 'off']);
    const ids = Object.entries(o.externalIds ?? {});
    const extra = ids.length
      ? [
          '--',
          'set',
          'Interface',
          o.port,
          ...ids.map(([k, v]) => `external_ids:${vsctlString(k)}=${vsctlString(v)}`),
        ]
      : [];
    await baseVsctl(['add-port', br, o.port, ...extra]);
    return { ns, port: o.port, nsIf, mac, ip, cidr: o.ip };
  };

  const addCapturePort = async (o: { port: string; peer?: string }) => {
    const br = needBridge('addCapturePort');
    checkIfName(o.port, 'addCapturePort');
    const peer = o.peer ?? `cs${tag}c${++vmCounter}`;
    checkIfName(peer, 'addCapturePort');
    if (netns) {
      // `netns <pid>`: the peer lands in this test process's namespace.
      await ipIn(netns, [
        'link',
        'add',
        o.port,
        'type',
        'veth',
        'peer',
        'name',
        peer,
        'netns',
        String(process.pid),
      ]);
    } else {
      await ipIn(null, ['link', 'add', o.port, 'type', 'veth', 'peer', 'name', peer]);
      rootLinks.push(o.port);
    }
    rootLinks.push(peer);
    await ipIn(null, ['link', 'set', peer, 'up']);
    await ipIn(netns, ['link', 'set', o.port, 'up']);
    await run('ethtool', ['-K', peer, 'tx', 'off']);
    await baseVsctl(['add-port', br, o.port]);
    return { port: o.port, peer };
  };

  const spawnIn = (ns: string | null, cmd: string, args: string[]): ChildProcess => {
    const [c, a] = nsArgs(ns, cmd, args);
    const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    // Killed by close() if still running: deleting a namespace does not end its processes.
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };

  const udpEcho = async (
    from: OvsVm,
    to: OvsVm,
    o?: { count?: number; port?: number; timeoutMs?: number },
  ): Promise<number> => {
    const count = o?.count ?? 3;
    const port = o?.port ?? 40_000 + Math.floor(Math.random() * 20_000);
    const timeoutMs = o?.timeoutMs ?? 2000;
    const server = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(${port},${JSON.stringify(to.ip)},()=>console.log('ready'));setTimeout(()=>process.exit(0),${timeoutMs + 5000});`;
    const client = `const s=require('dgram').createSocket('udp4');let n=0;s.on('message',()=>{n++;if(n>=${count}){console.log(n);process.exit(0)}});s.bind(0,()=>{for(let i=0;i<${count};i++)s.send('callscope-'+i,${port},${JSON.stringify(to.ip)})});setTimeout(()=>{console.log(n);process.exit(0)},${timeoutMs});`;
    const srv = spawnIn(to.ns, process.execPath, ['-e', server]);
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`udpEcho: echo server in ${to.ns} did not start`)),
          10_000,
        );
        srv.stdout?.on('data', (d: Buffer) => {
          if (d.toString().includes('ready')) {
            clearTimeout(t);
            resolve();
          }
        });
        srv.once('exit', (code) => {
          clearTimeout(t);
          reject(new Error(`udpEcho: echo server in ${to.ns} exited with ${code}`));
        });
      });
      const out = await exec(from.ns, process.execPath, ['-e', client], { timeoutMs: timeoutMs + 10_000 });
      return Number.parseInt(out.trim(), 10) || 0;
    } finally {
      if (srv.exitCode === null) srv.kill('SIGKILL');
    }
  };

  return {
    dir,
    dbTarget,
    dbTcpTarget,
    vswitchdCtl,
    ovsdbCtl,
    bridge,
    netns,
    env,
    vsctl: (...args) => baseVsctl(args),
    appctl: (...args) => {
      if (!vswitchdCtl) return Promise.reject(new Error('appctl: lab started without ovs-vswitchd'));
      return run('ovs-appctl', ['-t', vswitchdCtl, ...args], env);
    },
    ovsdbAppctl: (...args) => run('ovs-appctl', ['-t', ovsdbCtl, ...args], env),
    addVm,
    addCapturePort,
    exec,
    spawnIn,
    udpEcho,
    stopOvsdb,
    startOvsdb,
    close,
  };
}
