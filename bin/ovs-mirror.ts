#!/usr/bin/env node
/**
 * ovs-mirror: Open vSwitch port mirrors by VM, through OVSDB and ovs-vswitchd's control socket
 * (never ovs-vsctl). See docs/OVS.md.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Logger } from '../core/log.js';
import { type InventoryPort, type InventorySnapshot, readInventory } from '../ovs/inventory-snapshot.js';
import {
  applyMirror,
  clearMirrors,
  describeVm,
  MirrorConflictError,
  type MirrorDirection,
  MirrorPurgeError,
  type MirrorRate,
  type MirrorRequest,
  type MirrorSample,
  MirrorValidationError,
  MirrorVerifyError,
  type MirrorView,
  outputPortHazard,
  planMirror,
  rates,
  removeMirror,
  showMirrors,
  soleBridge,
  unknownBridgeError,
} from '../ovs/mirror.js';
import {
  JsonRpcConnectionError,
  JsonRpcProtocolError,
  JsonRpcRemoteError,
  OvsdbClient,
  OvsdbReplyError,
  OvsdbTransactionError,
} from '../ovs/ovsdb/client.js';
import { UnixctlClient, UnixctlError } from '../ovs/unixctl.js';
import { Settings, UsageError } from './config.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE } from './errors.js';
import { COMMON, loggerFor } from './flags.js';

/** sysexits.h: input data incorrect (unknown VM, port, bridge; a looping mirror). */
export const EXIT_VALIDATION = 65;

export const DEFAULT_OVS_DB = 'unix:/var/run/openvswitch/db.sock';

const HELP_COMMON = `Common options:
  --db TARGET            OVSDB: unix:/path or tcp:host:port
                         (default ${DEFAULT_OVS_DB}; env OVS_MIRROR_DB, CALLSCOPE_OVS_DB)
  --unixctl PATH         ovs-vswitchd's control socket (default: <rundir>/ovs-vswitchd.<pid>.ctl from
                         <rundir>/ovs-vswitchd.pid; rundir $OVS_RUNDIR or /var/run/openvswitch;
                         env CALLSCOPE_OVS_UNIXCTL)
  --timeout S            seconds to wait for OVSDB / ovs-vswitchd (default 10)
  --json                 machine-readable output on stdout
  --log-level LEVEL      debug, info, warn (default), error, silent
  --log-format FORMAT    json or text
  --config FILE          JSON file with the same settings (camelCase; db is "ovsDb")
  -h, --help             this help

Exit codes: 0 ok, 1 failure, 64 usage error, 65 invalid request (unknown VM, port, bridge or mirror;
output port also selected, or the bridge's internal port or an uplink without --force), 69 OVSDB or
ovs-vswitchd unreachable.
`;

const HELP = `ovs-mirror — Open vSwitch port mirrors by VM, for callscope

Usage:
  ovs-mirror list  [--bridge NAME]                 bridges → ports → interface, VM, MACs, mirrors
  ovs-mirror show  [--bridge NAME] [--interval S]  mirrors with statistics (and rates over S seconds)
  ovs-mirror watch [--bridge NAME] [--interval S] [--count N]   rates every S seconds (default 5)
  ovs-mirror add   (--vm ID|NAME ... | --port NAME ... | --vlan N ... | --all)
                   (--to PORT | --output-vlan N) [--direction both|in|out] [--snaplen N]
                   [--bridge NAME] [--name NAME] [--force]
  ovs-mirror remove NAME [--bridge NAME]
  ovs-mirror clear [--bridge NAME]
  ovs-mirror help COMMAND | COMMAND --help

Direction is seen from the VM: "in" = traffic going to the VM (OVS select_dst_port), "out" = traffic
the VM sends (select_src_port), "both" (default) = both.

${HELP_COMMON}`;

const COMMAND_HELP: Record<string, string> = {
  list: `ovs-mirror list [--bridge NAME] [--json]

Every bridge, its ports and their interfaces (type, OpenFlow port), the VM each port belongs to
(Proxmox tap<VMID>i<N> / veth<VMID>i<N> / fwpr, fwln; libvirt and OpenStack external_ids vm-id,
vm-uuid, vm-name), the port's MACs (external_ids attached-mac, and the MACs ovs-vswitchd learned on it:
fdb/show) and the mirrors that select it or send to it.

${HELP_COMMON}`,
  show: `ovs-mirror show [--bridge NAME] [--interval S] [--json]

Every mirror: its selected ports with their VMs and direction, VLANs or "all", the output port (and its
VM) or output VLAN, snaplen, and statistics tx_packets / tx_bytes. With --interval S, samples twice S
seconds apart and adds packets/s and bits/s. ovs-vswitchd refreshes mirror statistics every 5 s
(other_config:stats-update-interval), so use S >= 5.

${HELP_COMMON}`,
  watch: `ovs-mirror watch [--bridge NAME] [--interval S] [--count N] [--json]

Prints each mirror's packets/s and bits/s every S seconds (default 5) until interrupted, or N times.
With --json, one JSON object per line.

${HELP_COMMON}`,
  add: `ovs-mirror add SELECTION OUTPUT [options]

Selection (at least one; --all alone):
  --vm ID|NAME           every port of the VM on the bridge (repeatable)
  --port NAME            a port (repeatable)
  --vlan N               packets on VLAN N (repeatable; with ports: only those VLANs)
  --all                  every packet on the bridge
Output (exactly one):
  --to PORT              send the copies to this port (must not be selected itself: a loop). OVS
                         takes the output port away from normal forwarding, so the bridge's
                         internal (LOCAL) port and a physical uplink (no VM, type "" or "system")
                         are refused: they would be cut off normal traffic
  --output-vlan N        send the copies to VLAN N
Options:
  --direction both|in|out  in = to the VM (select_dst_port), out = from the VM (select_src_port);
                           default both
  --snaplen N            truncate copies to N bytes (14..65535)
  --bridge NAME          default: the only bridge, or the one bridge the selection is on
  --name NAME            default: callscope-<selection>, e.g. callscope-vm100-vm101
  --force                allow --to the bridge's internal port or an uplink (cuts it off normal
                         traffic while the mirror exists)

One OVSDB transaction guarded against concurrent editors; if a mirror of that name exists it is updated,
and if it is already identical nothing changes ("changed": false). Then revalidator/purge, so cached
datapath flows take the new mirror at once, and the row is read back and checked. If revalidator/purge
fails after the transaction committed, the message says the mirror was changed (exit 1): run
ovs-appctl revalidator/purge.

${HELP_COMMON}`,
  remove: `ovs-mirror remove NAME [--bridge NAME] [--json]

Removes the mirror(s) named NAME (on --bridge, or on any bridge), then revalidator/purge.

${HELP_COMMON}`,
  clear: `ovs-mirror clear [--bridge NAME] [--json]

Removes every mirror of the bridge (default: the only bridge), then revalidator/purge.

${HELP_COMMON}`,
};

/** Its own connection flags, and those of callscope's common flags that apply here. */
const COMMON_FLAGS = {
  db: { type: 'string' },
  unixctl: { type: 'string' },
  timeout: { type: 'string' },
  json: COMMON.json,
  help: COMMON.help,
  'log-level': COMMON['log-level'],
  'log-format': COMMON['log-format'],
  config: COMMON.config,
} as const;

/** Where output goes (a test passes its own). */
export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Stops `watch` when aborted (the CLI aborts it on SIGINT/SIGTERM). */
  signal?: AbortSignal;
}

class Unavailable extends Error {
  override name = 'Unavailable';
}

interface Context {
  settings: Settings;
  json: boolean;
  io: Io;
  logger: Logger;
  dbTarget: string;
  timeoutMs: number;
}

function contextOf(values: Record<string, string | boolean | string[] | undefined>, io: Io): Context {
  const flags: Record<string, string | boolean | undefined> = {};
  for (const [k, v] of Object.entries(values)) if (!Array.isArray(v)) flags[k] = v;
  // --db is also `ovs-db` for Settings: env CALLSCOPE_OVS_DB, config key ovsDb (as `callscope run`).
  flags['ovs-db'] = (values.db as string | undefined) ?? io.env.OVS_MIRROR_DB;
  flags['ovs-unixctl'] = values.unixctl as string | undefined;
  const settings = new Settings(flags, io.env);
  const timeout = settings.number('timeout', 10);
  if (!(timeout > 0)) throw new UsageError(`--timeout must be a positive number of seconds, got ${timeout}`);
  const dbTarget = settings.string('ovs-db', DEFAULT_OVS_DB);
  if (!/^(unix:.+|tcp:.+:\d+|\/.+)$/.test(dbTarget))
    throw new UsageError(`--db expects unix:/path or tcp:host:port, got "${dbTarget}"`);
  return {
    settings,
    json: values.json === true,
    io,
    logger: loggerFor(settings),
    dbTarget,
    timeoutMs: timeout * 1000,
  };
}

async function connect(ctx: Context): Promise<OvsdbClient> {
  try {
    return await OvsdbClient.connect(ctx.dbTarget, {
      reconnect: false,
      keepaliveIntervalMs: 0,
      connectTimeoutMs: ctx.timeoutMs,
      requestTimeoutMs: ctx.timeoutMs,
      onError: (e) => ctx.logger.warn('OVSDB problem', { target: ctx.dbTarget, error: e.message }),
    });
  } catch (e) {
    if (e instanceof JsonRpcConnectionError)
      throw new Unavailable(`cannot reach OVSDB at ${ctx.dbTarget}: ${stripTarget(e.message, ctx.dbTarget)}`);
    throw e;
  }
}

function stripTarget(message: string, target: string): string {
  return message.startsWith(`${target}: `) ? message.slice(target.length + 2) : message;
}

function unixctlOf(ctx: Context): UnixctlClient {
  const path = ctx.settings.string('ovs-unixctl');
  return new UnixctlClient(
    path
      ? { socketPath: path, timeoutMs: ctx.timeoutMs }
      : { rundir: ctx.io.env.OVS_RUNDIR, timeoutMs: ctx.timeoutMs },
  );
}

/** Changes need revalidator/purge afterwards: check ovs-vswitchd answers before changing anything. */
async function reachableUnixctl(ctx: Context): Promise<UnixctlClient> {
  const unixctl = unixctlOf(ctx);
  try {
    await unixctl.version();
  } catch (e) {
    throw new Unavailable(
      `cannot reach ovs-vswitchd's control socket (needed for revalidator/purge; nothing was changed): ${(e as Error).message}; give --unixctl PATH or set OVS_RUNDIR`,
    );
  }
  return unixctl;
}

async function withDb<T>(ctx: Context, body: (client: OvsdbClient) => Promise<T>): Promise<T> {
  const client = await connect(ctx);
  try {
    return await body(client);
  } catch (e) {
    if (e instanceof JsonRpcConnectionError)
      throw new Unavailable(`lost OVSDB at ${ctx.dbTarget}: ${stripTarget(e.message, ctx.dbTarget)}`);
    throw e;
  } finally {
    client.close();
  }
}

function printJson(ctx: Context, value: unknown): void {
  ctx.io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------
// Text formatting

function table(rows: string[][], indent = '  '): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, [...cell].length);
    });
  }
  return rows
    .map((row) =>
      `${indent}${row.map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat(widths[i] - [...cell].length))).join('  ')}`.trimEnd(),
    )
    .join('\n');
}

function vmText(vm: { id: string; name: string } | null | undefined): string {
  return vm ? describeVm(vm) : '-';
}

function portMirrorsText(port: InventoryPort): string {
  if (port.mirrors.length === 0) return '-';
  return port.mirrors
    .map((m) =>
      [m.selects ? `${m.mirror} [${m.selects}]` : '', m.output ? `→ output of ${m.mirror}` : '']
        .filter(Boolean)
        .join(' '),
    )
    .join(', ');
}

function formatList(snapshot: InventorySnapshot): string {
  if (snapshot.bridges.length === 0) return 'no bridges\n';
  const out: string[] = [];
  for (const b of snapshot.bridges) {
    out.push(
      `bridge ${b.name}${b.datapathType ? ` (datapath ${b.datapathType})` : ''}: ${b.ports.length} ports, ${b.mirrors.length} mirrors`,
    );
    const rows: string[][] = [['PORT', 'INTERFACE', 'OFPORT', 'VM', 'KIND', 'MACS', 'MIRRORS']];
    for (const p of b.ports) {
      const iface = p.interfaces[0];
      rows.push([
        p.name,
        p.interfaces.map((i) => (i.type ? `${i.name} (${i.type})` : i.name)).join(', ') || '-',
        iface?.ofport === null || iface === undefined ? '-' : String(iface.ofport),
        vmText(p.vm),
        p.vm?.kind ?? '-',
        p.macs.map((m) => (m.source === 'attached-mac' ? `${m.mac} (attached)` : m.mac)).join(', ') || '-',
        portMirrorsText(p),
      ]);
    }
    out.push(table(rows));
  }
  if (snapshot.vms.length > 0) {
    out.push('');
    out.push(
      `VMs: ${snapshot.vms.map((vm) => `${vmText(vm)} [${vm.ports.map((p) => p.port).join(', ')}]`).join('; ')}`,
    );
  }
  for (const e of snapshot.fdbErrors)
    out.push(`warning: learned MACs of ${e.bridge} unavailable: ${e.error}`);
  return `${out.join('\n')}\n`;
}

function bits(n: number): string {
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(n < 10 && i > 0 ? 2 : i > 0 ? 1 : 0)} ${units[i]}`;
}

function rateText(r: MirrorRate | undefined): string {
  if (!r) return '';
  if (r.packetsPerSec === null || r.bitsPerSec === null)
    return `rate: n/a over ${r.intervalSec.toFixed(1)} s`;
  return `rate: ${r.packetsPerSec.toFixed(1)} packets/s, ${bits(r.bitsPerSec)} over ${r.intervalSec.toFixed(1)} s`;
}

function formatMirror(m: MirrorView, rate?: MirrorRate): string {
  const lines = [`mirror ${m.name} on ${m.bridge}`];
  let selection: string;
  if (m.selectAll) selection = 'all packets on the bridge';
  else {
    const ports = m.ports
      .map((p) => `${p.port}${p.vm ? ` (VM ${vmText(p.vm)})` : ''} ${p.direction}`)
      .join(', ');
    selection = [ports, m.vlans.length > 0 ? `VLAN ${m.vlans.join(',')}` : ''].filter(Boolean).join('; ');
  }
  lines.push(`  selects:   ${selection || '(nothing)'}`);
  lines.push(`  direction: ${m.direction}`);
  const output =
    m.outputPort !== null
      ? `port ${m.outputPort}${m.outputVm ? ` (VM ${vmText(m.outputVm)})` : ''}`
      : m.outputVlan !== null
        ? `VLAN ${m.outputVlan}`
        : '(none)';
  lines.push(`  output:    ${output}`);
  if (m.snaplen !== null) lines.push(`  snaplen:   ${m.snaplen}`);
  const tx = m.statistics;
  lines.push(
    `  tx:        ${tx.tx_packets === undefined ? 'no statistics yet' : `${tx.tx_packets} packets, ${tx.tx_bytes ?? 0} bytes`}`,
  );
  if (rate) lines.push(`  ${rateText(rate)}`);
  return lines.join('\n');
}

function formatShow(sample: MirrorSample, rateList?: MirrorRate[]): string {
  if (sample.mirrors.length === 0) return 'no mirrors\n';
  return `${sample.mirrors
    .map((m) =>
      formatMirror(
        m,
        rateList?.find((r) => r.bridge === m.bridge && r.name === m.name),
      ),
    )
    .join('\n\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Commands

type FlagSpec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;

function parse<T extends FlagSpec>(argv: string[], options: T) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { ...COMMON_FLAGS, ...options },
  });
}

function noPositionals(command: string, positionals: string[]): void {
  if (positionals.length > 0) throw new UsageError(`${command} takes no arguments, got "${positionals[0]}"`);
}

function filterBridge(snapshot: InventorySnapshot, bridge: string | undefined): InventorySnapshot {
  if (bridge === undefined) return snapshot;
  if (!snapshot.bridges.some((b) => b.name === bridge)) throw unknownBridgeError(snapshot, bridge);
  return { ...snapshot, bridges: snapshot.bridges.filter((b) => b.name === bridge) };
}

async function listCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { bridge: { type: 'string' } } as const);
  if (values.help) return help(io, 'list');
  noPositionals('list', positionals);
  const ctx = contextOf(values, io);
  const snapshot = await withDb(ctx, async (client) => {
    const unixctl = unixctlOf(ctx);
    const s = await readInventory(client, unixctl);
    for (const e of s.fdbErrors)
      ctx.logger.warn('fdb/show failed: learned MACs missing', { bridge: e.bridge, error: e.error });
    return s;
  });
  const shown = filterBridge(snapshot, values.bridge);
  if (ctx.json) printJson(ctx, shown);
  else io.stdout(formatList(shown));
  return EXIT_OK;
}

function positiveSeconds(settings: Settings, name: string, fallback: number): number {
  const s = settings.number(name, fallback);
  if (!(s > 0) || s > 86_400) throw new UsageError(`--${name} must be 0 < S <= 86400 seconds, got ${s}`);
  return s;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** An unknown --bridge is an error listing the bridges (exit 65), not an empty answer. */
async function checkBridge(client: OvsdbClient, bridge: string | undefined): Promise<void> {
  if (bridge !== undefined) filterBridge(await readInventory(client), bridge);
}

function onlyBridge(sample: MirrorSample, bridge: string | undefined): MirrorSample {
  return bridge === undefined
    ? sample
    : { ...sample, mirrors: sample.mirrors.filter((m) => m.bridge === bridge) };
}

async function showCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    bridge: { type: 'string' },
    interval: { type: 'string' },
  } as const);
  if (values.help) return help(io, 'show');
  noPositionals('show', positionals);
  const ctx = contextOf(values, io);
  const interval = values.interval === undefined ? null : positiveSeconds(ctx.settings, 'interval', 5);
  await withDb(ctx, async (client) => {
    await checkBridge(client, values.bridge);
    const first = onlyBridge(await showMirrors(client), values.bridge);
    if (interval === null) {
      if (ctx.json) printJson(ctx, first);
      else io.stdout(formatShow(first));
      return;
    }
    await sleep(interval * 1000, io.signal);
    const second = onlyBridge(await showMirrors(client), values.bridge);
    const r = rates(first, second);
    if (ctx.json) printJson(ctx, { ...second, rates: r });
    else io.stdout(formatShow(second, r));
  });
  return EXIT_OK;
}

async function watchCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    bridge: { type: 'string' },
    interval: { type: 'string' },
    count: { type: 'string' },
  } as const);
  if (values.help) return help(io, 'watch');
  noPositionals('watch', positionals);
  const ctx = contextOf(values, io);
  const interval = positiveSeconds(ctx.settings, 'interval', 5);
  const count = values.count === undefined ? Number.POSITIVE_INFINITY : Number(values.count);
  if (!(Number.isInteger(count) && count > 0) && count !== Number.POSITIVE_INFINITY)
    throw new UsageError(`--count must be a positive integer, got "${values.count}"`);
  await withDb(ctx, async (client) => {
    await checkBridge(client, values.bridge);
    let prev = onlyBridge(await showMirrors(client), values.bridge);
    for (let n = 0; n < count && !io.signal?.aborted; n++) {
      await sleep(interval * 1000, io.signal);
      if (io.signal?.aborted) break;
      const cur = onlyBridge(await showMirrors(client), values.bridge);
      const r = rates(prev, cur);
      if (ctx.json) io.stdout(`${JSON.stringify({ takenMs: cur.takenMs, rates: r })}\n`);
      else {
        const time = new Date(cur.takenMs).toISOString().slice(11, 19);
        const rows = r.map((x) => [
          time,
          x.bridge,
          x.name,
          x.packetsPerSec === null ? 'n/a' : `${x.packetsPerSec.toFixed(1)} pkt/s`,
          x.bitsPerSec === null ? 'n/a' : bits(x.bitsPerSec),
          `${x.txPackets ?? '-'} packets total`,
        ]);
        io.stdout(rows.length > 0 ? `${table(rows, '')}\n` : `${time}  no mirrors\n`);
      }
      prev = cur;
    }
  });
  return EXIT_OK;
}

function integers(values: string[] | undefined, flag: string): number[] {
  return (values ?? []).map((v) => {
    if (!/^[0-9]+$/.test(v)) throw new UsageError(`--${flag} expects an integer, got "${v}"`);
    return Number(v);
  });
}

function oneInteger(value: string | undefined, flag: string): number | undefined {
  return value === undefined ? undefined : integers([value], flag)[0];
}

async function addCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    vm: { type: 'string', multiple: true },
    port: { type: 'string', multiple: true },
    vlan: { type: 'string', multiple: true },
    all: { type: 'boolean' },
    direction: { type: 'string' },
    to: { type: 'string' },
    'output-vlan': { type: 'string' },
    snaplen: { type: 'string' },
    bridge: { type: 'string' },
    name: { type: 'string' },
    force: { type: 'boolean' },
  } as const);
  if (values.help) return help(io, 'add');
  noPositionals('add', positionals);
  const direction = (values.direction ?? 'both') as MirrorDirection;
  if (!['both', 'in', 'out'].includes(direction))
    throw new UsageError(`--direction expects both, in or out, got "${values.direction}"`);
  if (!values.vm && !values.port && !values.vlan && !values.all)
    throw new UsageError('add needs a selection: --vm, --port, --vlan or --all');
  if ((values.to === undefined) === (values['output-vlan'] === undefined))
    throw new UsageError('add needs exactly one output: --to PORT or --output-vlan N');
  const request: MirrorRequest = {
    bridge: values.bridge,
    name: values.name,
    vms: values.vm,
    ports: values.port,
    vlans: integers(values.vlan, 'vlan'),
    all: values.all,
    direction,
    toPort: values.to,
    outputVlan: oneInteger(values['output-vlan'], 'output-vlan'),
    snaplen: oneInteger(values.snaplen, 'snaplen'),
    force: values.force === true,
  };
  const ctx = contextOf(values, io);
  const result = await withDb(ctx, async (client) => {
    const unixctl = await reachableUnixctl(ctx);
    // Planning needs ports and VMs, not learned MACs: no fdb/show.
    const snapshot = await readInventory(client);
    const plan = planMirror(snapshot, request);
    ctx.logger.info('mirror planned', { bridge: plan.bridge, name: plan.name, existing: plan.existing });
    const bridge = snapshot.bridges.find((b) => b.name === plan.bridge);
    const output = bridge?.ports.find((p) => p.name === plan.outputPort);
    const hazard = bridge && output ? outputPortHazard(bridge, output) : null;
    if (hazard !== null)
      ctx.logger.warn('--force: mirroring to a port OVS takes off normal traffic', { hazard });
    const applied = await applyMirror(client, unixctl, plan);
    const view = (await showMirrors(client)).mirrors.find((m) => m.uuid === applied.mirror.uuid) ?? null;
    return { ...applied, view };
  });
  if (ctx.json) {
    printJson(ctx, {
      changed: result.changed,
      created: result.created,
      bridge: result.plan.bridge,
      name: result.plan.name,
      uuid: result.mirror.uuid,
      attempts: result.attempts,
      vms: result.plan.vms,
      mirror: result.view,
    });
  } else {
    const verb = !result.changed
      ? 'unchanged (already as requested)'
      : result.created
        ? 'created'
        : 'updated';
    io.stdout(`mirror ${result.plan.name} on ${result.plan.bridge}: ${verb}\n`);
    if (result.view) io.stdout(`${formatMirror(result.view)}\n`);
  }
  return EXIT_OK;
}

async function removeCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { bridge: { type: 'string' } } as const);
  if (values.help) return help(io, 'remove');
  if (positionals.length !== 1) throw new UsageError('remove takes exactly one mirror name');
  const ctx = contextOf(values, io);
  const name = positionals[0];
  const result = await withDb(ctx, async (client) => {
    const unixctl = await reachableUnixctl(ctx);
    return removeMirror(client, unixctl, name, { bridge: values.bridge });
  });
  if (ctx.json) printJson(ctx, result);
  else io.stdout(`removed ${result.removed.map((r) => `mirror ${r.name} from ${r.bridge}`).join(', ')}\n`);
  return EXIT_OK;
}

async function clearCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, { bridge: { type: 'string' } } as const);
  if (values.help) return help(io, 'clear');
  noPositionals('clear', positionals);
  const ctx = contextOf(values, io);
  const result = await withDb(ctx, async (client) => {
    const bridge = values.bridge ?? soleBridge(await readInventory(client));
    const unixctl = await reachableUnixctl(ctx);
    return { bridge, ...(await clearMirrors(client, unixctl, bridge)) };
  });
  if (ctx.json) printJson(ctx, result);
  else
    io.stdout(
      result.changed
        ? `removed ${result.removed.length} mirror(s) from ${result.bridge}: ${result.removed.map((r) => r.name).join(', ')}\n`
        : `bridge ${result.bridge} has no mirrors; nothing changed\n`,
    );
  return EXIT_OK;
}

function help(io: Io, command?: string): number {
  io.stdout(command !== undefined && COMMAND_HELP[command] ? COMMAND_HELP[command] : HELP);
  return EXIT_OK;
}

const defaultIo = (): Io => ({
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
});

export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'list':
        return await listCommand(rest, io);
      case 'show':
        return await showCommand(rest, io);
      case 'watch':
        return await watchCommand(rest, io);
      case 'add':
        return await addCommand(rest, io);
      case 'remove':
      case 'rm':
        return await removeCommand(rest, io);
      case 'clear':
        return await clearCommand(rest, io);
      case 'help':
        if (rest[0] !== undefined && !COMMAND_HELP[rest[0]])
          throw new UsageError(`unknown command "${rest[0]}"`);
        return help(io, rest[0]);
      case undefined:
        help(io);
        return EXIT_USAGE;
      case '--help':
      case '-h':
        return help(io);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      const hint = command && COMMAND_HELP[command] ? `ovs-mirror ${command} --help` : 'ovs-mirror --help';
      io.stderr(`ovs-mirror: ${(e as Error).message}\nTry '${hint}'.\n`);
      return EXIT_USAGE;
    }
    if (e instanceof MirrorValidationError) {
      io.stderr(`ovs-mirror: ${e.message}\n`);
      return EXIT_VALIDATION;
    }
    if (e instanceof Unavailable) {
      io.stderr(`ovs-mirror: ${e.message}\n`);
      return EXIT_UNAVAILABLE;
    }
    if (e instanceof JsonRpcConnectionError) {
      io.stderr(`ovs-mirror: ${oneLine(e.message)}\n`);
      return EXIT_UNAVAILABLE;
    }
    if (
      e instanceof MirrorVerifyError ||
      e instanceof MirrorPurgeError ||
      e instanceof MirrorConflictError ||
      e instanceof UnixctlError ||
      e instanceof OvsdbTransactionError ||
      e instanceof OvsdbReplyError ||
      e instanceof JsonRpcRemoteError ||
      e instanceof JsonRpcProtocolError
    ) {
      io.stderr(`ovs-mirror: ${oneLine(e.message)}\n`);
      return EXIT_FAILURE;
    }
    io.stderr(`ovs-mirror: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT_FAILURE;
  }
}

/** Messages quote server text: keep them on one line. */
function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ');
}

function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  main(process.argv.slice(2), { ...defaultIo(), signal: controller.signal }).then((code) => {
    process.exitCode = code;
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  });
}
