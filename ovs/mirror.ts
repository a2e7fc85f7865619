/**
 * Mirror management through OVSDB (never ovs-vsctl).
 *
 * Direction, from the VM's point of view:
 * - `in`  = traffic going TO the VM   = packets leaving OVS on the VM's port  = Mirror.select_dst_port
 * - `out` = traffic the VM sends      = packets entering OVS on the VM's port = Mirror.select_src_port
 * - `both` = both columns list the port.
 *
 * Every change is one OVSDB transaction guarded by `wait` operations (the Bridge's `mirrors` column,
 * the edited Mirror row and every referenced Port must still be as read), retried from a fresh read
 * when another writer got there first; then `revalidator/purge` (without it cached datapath flows keep
 * the old mirror actions); then the rows are read back and checked.
 */
import {
  allPorts,
  buildSnapshot,
  type InventoryBridge,
  type InventoryMirror,
  type InventoryPort,
  type InventorySnapshot,
  OVS_DB,
  type OvsdbTransactor,
  type OvsRow,
  selectTables,
} from './inventory-snapshot.js';
import {
  asUuid,
  decodeSetLenient,
  EMPTY_SET,
  map,
  namedUuid,
  type OvsdbOperation,
  type OvsdbSet,
  OvsdbTransactionError,
  set,
  uuid,
} from './ovsdb/client.js';

export type MirrorDirection = 'both' | 'in' | 'out';

export interface MirrorRequest {
  bridge?: string;
  name?: string;
  /** VM ids or names: every port of each VM on the bridge is selected. */
  vms?: string[];
  ports?: string[];
  vlans?: number[];
  all?: boolean;
  direction?: MirrorDirection;
  /** Output port name (exactly one of toPort / outputVlan). */
  toPort?: string;
  outputVlan?: number;
  snaplen?: number;
  /**
   * Allow an output port OVS would take away from normal forwarding although it carries more than
   * copies: the bridge's internal (LOCAL) port or a physical uplink (see {@link outputPortHazard}).
   */
  force?: boolean;
}

/** What makes a mirror what it is (statistics and external_ids aside): planned, or read back. */
export type MirrorSettings = Pick<
  InventoryMirror,
  | 'bridge'
  | 'name'
  | 'selectAll'
  | 'selectSrcPorts'
  | 'selectDstPorts'
  | 'selectVlans'
  | 'outputPort'
  | 'outputVlan'
  | 'snaplen'
>;

/** Port names in `selectSrcPorts` / `selectDstPorts` are sorted. */
export interface MirrorPlan extends MirrorSettings {
  direction: MirrorDirection;
  /** The VMs the request named, with the ports selected for each. */
  vms: { id: string; name: string; ports: string[] }[];
  /** Against the snapshot planned from: no mirror of that name, an identical one, or one to update. */
  existing: 'none' | 'identical' | 'different';
}

/** The request does not fit what exists (unknown VM/port/bridge, a loop, out-of-range values). */
export class MirrorValidationError extends Error {
  override name = 'MirrorValidationError';
}

/** The rows read back after a change do not match what was written. */
export class MirrorVerifyError extends Error {
  override name = 'MirrorVerifyError';
}

/** Another writer kept changing the rows between read and write, `attempts` times in a row. */
export class MirrorConflictError extends Error {
  override name = 'MirrorConflictError';
}

/**
 * The OVSDB transaction committed (the mirror WAS changed) but `revalidator/purge` failed afterwards:
 * cached datapath flows keep the old mirror actions until they are revalidated.
 */
export class MirrorPurgeError extends Error {
  override name = 'MirrorPurgeError';
  constructor(
    /** What was committed, e.g. `mirror m1 committed on br0`. */
    readonly committed: string,
    options: { cause: unknown },
  ) {
    super(
      `${committed}; revalidator/purge failed: ${(options.cause as Error)?.message ?? String(options.cause)} — run ovs-appctl revalidator/purge`,
      options,
    );
  }
}

/** Runs `revalidator/purge` after a committed change; a failure says the change was made. */
async function purgeAfterCommit(unixctl: PurgeTarget, committed: string): Promise<void> {
  try {
    await unixctl.revalidatorPurge();
  } catch (e) {
    throw new MirrorPurgeError(committed, { cause: e });
  }
}

/** The part of the unixctl client mirror changes need. */
export interface PurgeTarget {
  revalidatorPurge(): Promise<unknown>;
}

const MAX_NAME = 128;

function list(items: readonly string[], empty = '(none)'): string {
  return items.length > 0 ? items.join(', ') : empty;
}

/** `100 (pbx)`, or the id alone when the VM has no name. */
export function describeVm(vm: { id: string; name: string }): string {
  return vm.name ? `${vm.id} (${vm.name})` : vm.id;
}

/** A bridge name the snapshot does not have: the error lists the bridges it has. */
export function unknownBridgeError(snapshot: InventorySnapshot, bridge: string): MirrorValidationError {
  return new MirrorValidationError(
    `unknown bridge "${bridge}"; bridges: ${list(snapshot.bridges.map((b) => b.name))}`,
  );
}

const NO_BRIDGE = 'there is no OVS bridge';
const severalBridges = (names: readonly string[]) =>
  new MirrorValidationError(`several bridges (${list(names)}): choose one with --bridge`);

/** The name of the snapshot's only bridge; a validation error when it has none or several. */
export function soleBridge(snapshot: InventorySnapshot): string {
  const names = snapshot.bridges.map((b) => b.name);
  if (names.length === 0) throw new MirrorValidationError(NO_BRIDGE);
  if (names.length > 1) throw severalBridges(names);
  return names[0];
}

/** The default name from the selection: `callscope-vm100-vm101`, `callscope-tap100i0-in`, `callscope-all`. */
export function defaultMirrorName(request: MirrorRequest): string {
  const parts: string[] = [];
  if (request.all) parts.push('all');
  for (const vm of new Set(request.vms ?? [])) parts.push(`vm${vm}`);
  for (const port of new Set(request.ports ?? [])) parts.push(port);
  const vlans = [...new Set(request.vlans ?? [])].sort((a, b) => a - b);
  if (vlans.length > 0) parts.push(`vlan${vlans.join('-')}`);
  const direction = request.direction ?? 'both';
  if (direction !== 'both') parts.push(direction);
  let name = `callscope-${parts.join('-')}`.replace(/[^A-Za-z0-9_.:@-]/g, '_');
  if (name.length > 64) {
    let h = 0x811c9dc5;
    for (const ch of name) h = Math.imul(h ^ ch.codePointAt(0)!, 0x01000193) >>> 0;
    name = `${name.slice(0, 55)}-${h.toString(16).padStart(8, '0')}`;
  }
  return name;
}

function checkInt(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new MirrorValidationError(`${what} must be an integer ${min}..${max}, got ${value}`);
}

const sortNames = (names: Iterable<string>) => [...new Set(names)].sort();

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Whether an existing mirror already is what the plan asks for (statistics and external_ids aside). */
export function mirrorMatchesPlan(mirror: MirrorSettings, plan: MirrorSettings): boolean {
  return (
    mirror.name === plan.name &&
    mirror.bridge === plan.bridge &&
    mirror.selectAll === plan.selectAll &&
    sameList(mirror.selectSrcPorts, plan.selectSrcPorts) &&
    sameList(mirror.selectDstPorts, plan.selectDstPorts) &&
    sameList(mirror.selectVlans, plan.selectVlans) &&
    mirror.outputPort === plan.outputPort &&
    mirror.outputVlan === plan.outputVlan &&
    mirror.snaplen === plan.snaplen
  );
}

/**
 * Why sending mirror copies to `port` would break the bridge, or null. OVS reserves a mirror's output
 * port for the copies: it stops forwarding anything else to it and drops what arrives on it. That is
 * what a monitoring VM's port wants, but the bridge's internal (LOCAL) port (the host's own address on
 * the bridge) or a physical uplink (a port of type "" or "system" that is neither a VM's nor internal)
 * would be cut off normal traffic.
 */
export function outputPortHazard(bridge: InventoryBridge, port: InventoryPort): string | null {
  const internal = port.name === bridge.name || port.interfaces.some((i) => i.type === 'internal');
  if (internal)
    return `output port ${port.name} is bridge ${bridge.name}'s internal (LOCAL) port: mirroring to it would cut ${port.name} off normal traffic (the host's own traffic on the bridge)`;
  if (port.vm !== null) return null;
  if (port.interfaces.every((i) => i.type === '' || i.type === 'system'))
    return `output port ${port.name} is a physical uplink (no VM, type ${JSON.stringify(port.interfaces[0]?.type ?? '')}): mirroring to it would cut ${port.name} off normal traffic`;
  return null;
}

/**
 * Resolves and validates a request against a snapshot (pure). `--vm` selects every port of the VM on
 * the bridge. Without `bridge`: the only bridge, else the one bridge every selected port is on.
 */
export function planMirror(snapshot: InventorySnapshot, request: MirrorRequest): MirrorPlan {
  const direction = request.direction ?? 'both';
  if (direction !== 'both' && direction !== 'in' && direction !== 'out')
    throw new MirrorValidationError(`direction must be both, in or out, got "${String(direction)}"`);
  const vmsAsked = request.vms ?? [];
  const portsAsked = request.ports ?? [];
  const vlans = [...new Set(request.vlans ?? [])].sort((a, b) => a - b);
  const all = request.all === true;
  for (const v of vlans) checkInt(v, 0, 4095, 'VLAN');
  if (!all && vmsAsked.length === 0 && portsAsked.length === 0 && vlans.length === 0)
    throw new MirrorValidationError('nothing selected: give a VM, a port, a VLAN or all');
  if (all && (vmsAsked.length > 0 || portsAsked.length > 0 || vlans.length > 0))
    throw new MirrorValidationError(
      '"all" selects every packet on the bridge: do not combine it with VMs, ports or VLANs',
    );
  if (direction !== 'both' && vmsAsked.length === 0 && portsAsked.length === 0)
    throw new MirrorValidationError(
      `direction "${direction}" applies to ports: select a VM or a port (a mirror of all traffic or of VLANs has no direction)`,
    );
  if ((request.toPort === undefined) === (request.outputVlan === undefined))
    throw new MirrorValidationError('give exactly one output: a port (--to) or a VLAN (--output-vlan)');
  if (request.outputVlan !== undefined) checkInt(request.outputVlan, 1, 4095, 'output VLAN');
  if (request.snaplen !== undefined) checkInt(request.snaplen, 14, 65535, 'snaplen');

  const bridgeNames = snapshot.bridges.map((b) => b.name);
  if (bridgeNames.length === 0) throw new MirrorValidationError(NO_BRIDGE);

  // VMs: by id, else by name (a name shared by several VMs is ambiguous).
  const vms = vmsAsked.map((asked) => {
    const byId = snapshot.vms.find((vm) => vm.id === asked);
    if (byId) return byId;
    const named = snapshot.vms.filter((vm) => vm.name !== '' && vm.name === asked);
    if (named.length === 1) return named[0];
    if (named.length > 1)
      throw new MirrorValidationError(
        `VM name "${asked}" is ambiguous: ${named.map(describeVm).join(', ')}; use the VM id`,
      );
    throw new MirrorValidationError(
      `unknown VM "${asked}"; known VMs: ${list(snapshot.vms.map(describeVm))}`,
    );
  });

  let bridgeName = request.bridge;
  if (bridgeName !== undefined) {
    if (!bridgeNames.includes(bridgeName)) throw unknownBridgeError(snapshot, bridgeName);
  } else if (bridgeNames.length === 1) {
    bridgeName = bridgeNames[0];
  } else {
    const used = new Set<string>();
    for (const vm of vms) for (const p of vm.ports) used.add(p.bridge);
    for (const name of portsAsked)
      for (const p of allPorts(snapshot)) if (p.name === name) used.add(p.bridge);
    if (request.toPort !== undefined)
      for (const p of allPorts(snapshot)) if (p.name === request.toPort) used.add(p.bridge);
    if (used.size !== 1) throw severalBridges(bridgeNames);
    bridgeName = [...used][0];
  }
  const bridge = snapshot.bridges.find((b) => b.name === bridgeName)!;
  const portNames = bridge.ports.map((p) => p.name);

  const selected: string[] = [];
  const vmPlans = vms.map((vm) => {
    const ports = vm.ports.filter((p) => p.bridge === bridge.name).map((p) => p.port);
    if (ports.length === 0)
      throw new MirrorValidationError(
        `VM ${describeVm(vm)} has no port on bridge ${bridge.name}; its ports: ${list(vm.ports.map((p) => `${p.bridge}/${p.port}`))}`,
      );
    selected.push(...ports);
    return { id: vm.id, name: vm.name, ports: sortNames(ports) };
  });
  for (const name of portsAsked) {
    if (!portNames.includes(name))
      throw new MirrorValidationError(
        `unknown port "${name}" on bridge ${bridge.name}; ports: ${list(portNames)}`,
      );
    selected.push(name);
  }
  const ports = sortNames(selected);

  let outputPort: string | null = null;
  if (request.toPort !== undefined) {
    if (!portNames.includes(request.toPort))
      throw new MirrorValidationError(
        `unknown output port "${request.toPort}" on bridge ${bridge.name}; ports: ${list(portNames)}`,
      );
    if (ports.includes(request.toPort))
      throw new MirrorValidationError(
        `output port ${request.toPort} is also selected: its own mirrored copies would be mirrored again (a loop); choose another output port`,
      );
    const hazard = outputPortHazard(bridge, bridge.ports.find((p) => p.name === request.toPort)!);
    if (hazard !== null && request.force !== true)
      throw new MirrorValidationError(`${hazard}; choose a monitoring VM's port, or force it (--force)`);
    outputPort = request.toPort;
  }

  const name = request.name ?? defaultMirrorName(request);
  if (name === '' || name.length > MAX_NAME || /[\u0000-\u001f\u007f]/.test(name))
    throw new MirrorValidationError(`mirror name must be 1..${MAX_NAME} printable characters`);
  const elsewhere = snapshot.bridges.find(
    (b) => b.name !== bridge.name && b.mirrors.some((m) => m.name === name),
  );
  if (elsewhere)
    throw new MirrorValidationError(`a mirror named "${name}" already exists on bridge ${elsewhere.name}`);

  const plan: MirrorPlan = {
    bridge: bridge.name,
    name,
    direction,
    selectAll: all,
    selectSrcPorts: direction === 'in' ? [] : ports,
    selectDstPorts: direction === 'out' ? [] : ports,
    selectVlans: vlans,
    outputPort,
    outputVlan: request.outputVlan ?? null,
    snaplen: request.snaplen ?? null,
    vms: vmPlans,
    existing: 'none',
  };
  const same = bridge.mirrors.filter((m) => m.name === name);
  if (same.length > 1)
    throw new MirrorValidationError(
      `bridge ${bridge.name} has ${same.length} mirrors named "${name}"; remove them first`,
    );
  if (same.length === 1) plan.existing = mirrorMatchesPlan(same[0], plan) ? 'identical' : 'different';
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

export interface ApplyOptions {
  /** Attempts when another writer changed the rows between read and write (default 8). */
  attempts?: number;
  /** Text of the transaction's comment (shows in ovsdb-server's log). */
  comment?: string;
}

export interface ApplyResult {
  changed: boolean;
  created: boolean;
  /** The mirror as read back after the change. */
  mirror: InventoryMirror;
  attempts: number;
  plan: MirrorPlan;
}

const byUuid = (id: string) => [['_uuid', '==', uuid(id)]];
const uuidSetDatum = (ids: readonly string[]) => set(ids.map(uuid));

/** Adds mirror references to a Bridge's `mirrors`, or drops them. */
function mutateBridgeMirrors(
  bridgeUuid: string,
  mutator: 'insert' | 'delete',
  mirrors: OvsdbSet,
): OvsdbOperation {
  return {
    op: 'mutate',
    table: 'Bridge',
    where: byUuid(bridgeUuid),
    mutations: [['mirrors', mutator, mirrors]],
  };
}

/** A `wait` that fails the transaction unless the row still has the values read. */
function waitFor(table: string, id: string, row: OvsRow, columns: readonly string[]): OvsdbOperation {
  return {
    op: 'wait',
    table,
    timeout: 0,
    where: byUuid(id),
    columns: [...columns],
    until: '==',
    rows: [Object.fromEntries(columns.map((c) => [c, row[c]]))],
  };
}

/** A transaction that failed only because a `wait` saw rows changed by someone else. */
function isWaitConflict(e: unknown, ops: readonly OvsdbOperation[]): boolean {
  return e instanceof OvsdbTransactionError && ops[e.index]?.op === 'wait' && e.error === 'timed out';
}

type Attempt<T> = () => Promise<{ ops: OvsdbOperation[] | null; finish: (results: unknown[] | null) => T }>;

/**
 * Optimistic concurrency: `attempt` reads fresh rows and builds guarded operations; when a `wait`
 * fails because another writer changed the rows in between, read and try again.
 */
async function transactWithRetries<T>(
  client: OvsdbTransactor,
  attempts: number,
  attempt: Attempt<T>,
): Promise<{ value: T; attempts: number }> {
  let lastError: unknown;
  for (let n = 1; n <= attempts; n++) {
    const { ops, finish } = await attempt();
    if (ops === null) return { value: finish(null), attempts: n };
    try {
      const results = await client.transact(OVS_DB, ops);
      return { value: finish(results), attempts: n };
    } catch (e) {
      if (!isWaitConflict(e, ops)) throw e;
      lastError = e;
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * n));
    }
  }
  throw new MirrorConflictError(
    `gave up after ${attempts} attempts: other writers kept changing the mirrors (${(lastError as Error)?.message ?? ''})`,
  );
}

async function freshState(client: OvsdbTransactor) {
  const tables = await selectTables(client);
  return { tables, snapshot: buildSnapshot(tables, { takenMs: Date.now() }) };
}

function mirrorOfState(snapshot: InventorySnapshot, bridge: string, uuid: string): InventoryMirror | null {
  return snapshot.bridges.find((b) => b.name === bridge)?.mirrors.find((m) => m.uuid === uuid) ?? null;
}

/**
 * Creates the planned mirror, or updates the mirror of that name on the bridge, in one guarded
 * transaction; then purges the datapath flows and reads the row back. An identical mirror is left
 * alone (`changed: false`).
 */
export async function applyMirror(
  client: OvsdbTransactor,
  unixctl: PurgeTarget,
  plan: MirrorPlan,
  options: ApplyOptions = {},
): Promise<ApplyResult> {
  let target: { uuid: string | null; created: boolean; changed: boolean } = {
    uuid: null,
    created: false,
    changed: false,
  };
  const { attempts } = await transactWithRetries(client, options.attempts ?? 8, async () => {
    const { tables, snapshot } = await freshState(client);
    const bridge = snapshot.bridges.find((b) => b.name === plan.bridge);
    if (!bridge) throw new MirrorValidationError(`bridge ${plan.bridge} no longer exists`);
    const portUuid = new Map(bridge.ports.map((p) => [p.name, p.uuid] as const));
    const uuidOfPort = (name: string) => {
      const uuid = portUuid.get(name);
      if (uuid === undefined)
        throw new MirrorValidationError(`port ${name} is no longer on bridge ${plan.bridge}`);
      return uuid;
    };
    const same = bridge.mirrors.filter((m) => m.name === plan.name);
    if (same.length > 1)
      throw new MirrorValidationError(
        `bridge ${plan.bridge} has ${same.length} mirrors named "${plan.name}"`,
      );
    const existing = same[0] ?? null;
    if (existing && mirrorMatchesPlan(existing, plan)) {
      return {
        ops: null,
        finish: () => {
          target = { uuid: existing.uuid, created: false, changed: false };
        },
      };
    }
    const referenced = sortNames([
      ...plan.selectSrcPorts,
      ...plan.selectDstPorts,
      ...(plan.outputPort ? [plan.outputPort] : []),
    ]);
    const row = {
      name: plan.name,
      select_all: plan.selectAll,
      select_src_port: uuidSetDatum(plan.selectSrcPorts.map(uuidOfPort)),
      select_dst_port: uuidSetDatum(plan.selectDstPorts.map(uuidOfPort)),
      select_vlan: set(plan.selectVlans),
      output_port: plan.outputPort === null ? EMPTY_SET : set([uuid(uuidOfPort(plan.outputPort))]),
      output_vlan: plan.outputVlan === null ? EMPTY_SET : set([plan.outputVlan]),
      snaplen: plan.snaplen === null ? EMPTY_SET : set([plan.snaplen]),
    };
    const bridgeRow = tables.Bridge.get(bridge.uuid)!;
    const ops: OvsdbOperation[] = [waitFor('Bridge', bridge.uuid, bridgeRow, ['mirrors'])];
    for (const name of referenced) {
      const uuid = uuidOfPort(name);
      ops.push(waitFor('Port', uuid, tables.Port.get(uuid)!, ['name']));
    }
    let insertIndex = -1;
    if (existing) {
      // Guard exactly the columns this update writes.
      ops.push(waitFor('Mirror', existing.uuid, tables.Mirror.get(existing.uuid)!, Object.keys(row)));
      ops.push({ op: 'update', table: 'Mirror', where: byUuid(existing.uuid), row });
    } else {
      insertIndex = ops.length;
      ops.push({
        op: 'insert',
        table: 'Mirror',
        'uuid-name': 'new_mirror',
        row: { ...row, external_ids: map({ 'created-by': 'callscope ovs-mirror' }) },
      });
      ops.push(mutateBridgeMirrors(bridge.uuid, 'insert', set([namedUuid('new_mirror')])));
    }
    ops.push({
      op: 'comment',
      comment: options.comment ?? `ovs-mirror: set mirror ${plan.name} on ${plan.bridge}`,
    });
    return {
      ops,
      finish: (results) => {
        const uuid = existing
          ? existing.uuid
          : asUuid((results?.[insertIndex] as { uuid?: unknown } | undefined)?.uuid);
        if (uuid === null) throw new Error('OVSDB did not return the new mirror row UUID');
        target = { uuid, created: existing === null, changed: true };
      },
    };
  });
  if (target.changed)
    await purgeAfterCommit(
      unixctl,
      `mirror ${plan.name} committed on ${plan.bridge} (${target.created ? 'created' : 'updated'})`,
    );
  const { snapshot } = await freshState(client);
  const mirror = target.uuid === null ? null : mirrorOfState(snapshot, plan.bridge, target.uuid);
  if (!mirror)
    throw new MirrorVerifyError(`mirror ${plan.name} is not on bridge ${plan.bridge} after the change`);
  if (!mirrorMatchesPlan(mirror, plan))
    throw new MirrorVerifyError(
      `mirror ${plan.name} read back differs from what was written: ${JSON.stringify(mirror)}`,
    );
  return { changed: target.changed, created: target.created, mirror, attempts, plan };
}

export interface RemoveResult {
  changed: boolean;
  removed: { bridge: string; name: string; uuid: string }[];
  attempts: number;
}

async function removeWhere(
  client: OvsdbTransactor,
  unixctl: PurgeTarget,
  pick: (snapshot: InventorySnapshot) => { bridge: string; mirrors: InventoryMirror[] }[],
  comment: string,
  attempts = 8,
): Promise<RemoveResult> {
  let removed: RemoveResult['removed'] = [];
  const result = await transactWithRetries(client, attempts, async () => {
    const { tables, snapshot } = await freshState(client);
    const picked = pick(snapshot).filter((p) => p.mirrors.length > 0);
    removed = picked.flatMap((p) => p.mirrors.map((m) => ({ bridge: p.bridge, name: m.name, uuid: m.uuid })));
    if (picked.length === 0) return { ops: null, finish: () => undefined };
    const ops: OvsdbOperation[] = [];
    for (const p of picked) {
      const bridge = snapshot.bridges.find((b) => b.name === p.bridge)!;
      ops.push(waitFor('Bridge', bridge.uuid, tables.Bridge.get(bridge.uuid)!, ['mirrors']));
      // Mirror rows are not roots: dropping the Bridge's reference deletes them.
      ops.push(mutateBridgeMirrors(bridge.uuid, 'delete', uuidSetDatum(p.mirrors.map((m) => m.uuid))));
    }
    ops.push({ op: 'comment', comment });
    return { ops, finish: () => undefined };
  });
  if (removed.length > 0)
    await purgeAfterCommit(
      unixctl,
      `removal of ${removed.map((r) => `mirror ${r.name} from ${r.bridge}`).join(', ')} committed`,
    );
  const tables = await selectTables(client);
  for (const r of removed) {
    if (tables.Mirror.has(r.uuid))
      throw new MirrorVerifyError(`mirror ${r.name} (${r.uuid}) is still present after its removal`);
  }
  for (const row of tables.Bridge.values()) {
    const left = decodeSetLenient(row.mirrors, asUuid).filter((u) => removed.some((r) => r.uuid === u));
    if (left.length > 0)
      throw new MirrorVerifyError(`bridge ${String(row.name)} still references removed mirrors`);
  }
  return { changed: removed.length > 0, removed, attempts: result.attempts };
}

/**
 * Removes the mirror(s) of that name (on `bridge`, or on any bridge). Unknown name → validation error
 * listing the mirrors that exist.
 */
export async function removeMirror(
  client: OvsdbTransactor,
  unixctl: PurgeTarget,
  name: string,
  options: { bridge?: string; attempts?: number } = {},
): Promise<RemoveResult> {
  const { snapshot } = await freshState(client);
  const bridges = snapshot.bridges.filter((b) => options.bridge === undefined || b.name === options.bridge);
  if (options.bridge !== undefined && bridges.length === 0)
    throw unknownBridgeError(snapshot, options.bridge);
  if (!bridges.some((b) => b.mirrors.some((m) => m.name === name))) {
    const known = bridges.flatMap((b) => b.mirrors.map((m) => `${m.name} (${b.name})`));
    throw new MirrorValidationError(`no mirror named "${name}"; mirrors: ${list(known)}`);
  }
  return removeWhere(
    client,
    unixctl,
    (s) =>
      s.bridges
        .filter((b) => options.bridge === undefined || b.name === options.bridge)
        .map((b) => ({ bridge: b.name, mirrors: b.mirrors.filter((m) => m.name === name) })),
    `ovs-mirror: remove mirror ${name}`,
    options.attempts,
  );
}

/** Removes every mirror of a bridge (an empty bridge is not an error: `changed: false`). */
export async function clearMirrors(
  client: OvsdbTransactor,
  unixctl: PurgeTarget,
  bridge: string,
  options: { attempts?: number } = {},
): Promise<RemoveResult> {
  const { snapshot } = await freshState(client);
  if (!snapshot.bridges.some((b) => b.name === bridge)) throw unknownBridgeError(snapshot, bridge);
  return removeWhere(
    client,
    unixctl,
    (s) => s.bridges.filter((b) => b.name === bridge).map((b) => ({ bridge: b.name, mirrors: b.mirrors })),
    `ovs-mirror: clear mirrors of ${bridge}`,
    options.attempts,
  );
}

// ---------------------------------------------------------------------------------------------
// Show and rates
// ---------------------------------------------------------------------------------------------

export interface MirrorView {
  bridge: string;
  name: string;
  uuid: string;
  /** both/in/out for port selections; all; vlan (VLANs only); mixed (different src and dst ports). */
  direction: MirrorDirection | 'all' | 'vlan' | 'mixed';
  selectAll: boolean;
  /** Every selected port with its VM and the direction selected on it. */
  ports: { port: string; vm: { id: string; name: string } | null; direction: MirrorDirection }[];
  vlans: number[];
  outputPort: string | null;
  outputVm: { id: string; name: string } | null;
  outputVlan: number | null;
  snaplen: number | null;
  /**
   * OVS's own keys: `tx_packets`, `tx_bytes` (copies sent to the output). Empty until ovs-vswitchd
   * publishes them; refreshed every `other_config:stats-update-interval` (5 s by default).
   */
  statistics: Record<string, number>;
  externalIds: Record<string, string>;
}

/** Every mirror of a snapshot, described for people (pure). */
export function mirrorViews(snapshot: InventorySnapshot): MirrorView[] {
  const out: MirrorView[] = [];
  for (const bridge of snapshot.bridges) {
    const portByName = new Map<string, InventoryPort>(bridge.ports.map((p) => [p.name, p]));
    const vmOf = (name: string | null) => {
      const vm = name === null ? null : portByName.get(name)?.vm;
      return vm ? { id: vm.id, name: vm.name } : null;
    };
    for (const m of bridge.mirrors) {
      const names = sortNames([...m.selectSrcPorts, ...m.selectDstPorts]);
      const ports = names.map((port) => {
        const src = m.selectSrcPorts.includes(port);
        const dst = m.selectDstPorts.includes(port);
        return {
          port,
          vm: vmOf(port),
          direction: (src && dst ? 'both' : src ? 'out' : 'in') as MirrorDirection,
        };
      });
      let direction: MirrorView['direction'];
      if (m.selectAll) direction = 'all';
      else if (ports.length === 0) direction = 'vlan';
      else if (sameList(m.selectSrcPorts, m.selectDstPorts)) direction = 'both';
      else if (m.selectDstPorts.length === 0) direction = 'out';
      else if (m.selectSrcPorts.length === 0) direction = 'in';
      else direction = 'mixed';
      out.push({
        bridge: bridge.name,
        name: m.name,
        uuid: m.uuid,
        direction,
        selectAll: m.selectAll,
        ports,
        vlans: m.selectVlans,
        outputPort: m.outputPort,
        outputVm: vmOf(m.outputPort),
        outputVlan: m.outputVlan,
        snaplen: m.snaplen,
        statistics: m.statistics,
        externalIds: m.externalIds,
      });
    }
  }
  return out;
}

export interface MirrorSample {
  takenMs: number;
  mirrors: MirrorView[];
}

/** Reads every mirror with its statistics. */
export async function showMirrors(client: OvsdbTransactor): Promise<MirrorSample> {
  const { snapshot } = await freshState(client);
  return { takenMs: snapshot.takenMs, mirrors: mirrorViews(snapshot) };
}

export interface MirrorRate {
  bridge: string;
  name: string;
  intervalSec: number;
  txPackets: number | null;
  txBytes: number | null;
  /** null when either sample lacks statistics, the mirror was re-created or its counters went back. */
  packetsPerSec: number | null;
  bitsPerSec: number | null;
}

/**
 * Rates between two samples, per mirror of the later sample. ovs-vswitchd refreshes mirror statistics
 * every `other_config:stats-update-interval` (5 s by default), so intervals shorter than that show
 * steps rather than rates.
 */
export function rates(prev: MirrorSample, cur: MirrorSample): MirrorRate[] {
  const intervalSec = (cur.takenMs - prev.takenMs) / 1000;
  return cur.mirrors.map((m) => {
    const before = prev.mirrors.find((p) => p.uuid === m.uuid);
    const p0 = before?.statistics.tx_packets;
    const b0 = before?.statistics.tx_bytes;
    const p1 = m.statistics.tx_packets;
    const b1 = m.statistics.tx_bytes;
    let packetsPerSec: number | null = null;
    let bitsPerSec: number | null = null;
    if (
      p0 !== undefined &&
      b0 !== undefined &&
      p1 !== undefined &&
      b1 !== undefined &&
      intervalSec > 0 &&
      p1 >= p0 &&
      b1 >= b0
    ) {
      packetsPerSec = (p1 - p0) / intervalSec;
      bitsPerSec = ((b1 - b0) * 8) / intervalSec;
    }
    return {
      bridge: m.bridge,
      name: m.name,
      intervalSec,
      txPackets: p1 ?? null,
      txBytes: b1 ?? null,
      packetsPerSec,
      bitsPerSec,
    };
  });
}
