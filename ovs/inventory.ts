/**
 * The port → VM → MAC inventory of the OVS bridges on this host.
 *
 * - VM recognition is by naming rule (Proxmox `tap<VMID>i<N>`, `veth<VMID>i<N>`, firewall ports
 *   `fwln<VMID>i<N>` / `fwpr<VMID>p<N>`) or by the `Interface.external_ids` that libvirt and OpenStack set
 *   (`vm-id` / `vm-uuid`, `attached-mac`, `iface-id`, `vm-name`).
 * - A port's MACs are the `attached-mac` of its interfaces plus the MACs ovs-vswitchd learned on it
 *   (`fdb/show`, matched by OpenFlow port number). `mac_in_use` is the host side of a tap/veth (or an
 *   internal port's own MAC), never the VM's, so it is reported but not counted as a VM MAC.
 * - `readInventory` takes one consistent snapshot (one OVSDB transaction of selects); `OvsInventory`
 *   keeps one current through an OVSDB monitor plus periodic `fdb/show` polling and answers
 *   `vmOfMac` for capture attribution.
 */
import { hostname } from 'node:os';
import { normaliseMac, type VmIdentity, type VmLookup } from '../capture/attribution.js';
import { type Logger, silentLogger } from '../core/log.js';
import type { VmInventoryEntry } from '../ingest/rows.js';
import { type OvsdbClient, OvsdbReplyError, type TableUpdates, type UpdateInfo } from './ovsdb/client.js';
import {
  asNumber,
  asString,
  asUuid,
  decodeMapRecordLenient,
  decodeOptionalLenient,
  decodeSetLenient,
} from './ovsdb/datum.js';
import type { FdbEntry, FdbTable, UnixctlClient } from './unixctl.js';

export const OVS_DB = 'Open_vSwitch';

// ---------------------------------------------------------------------------------------------
// VM recognition (pure)
// ---------------------------------------------------------------------------------------------

export type VmKind = 'proxmox-qemu' | 'proxmox-lxc' | 'proxmox' | 'libvirt';

/** A VM as recognised from one port or interface. */
export interface VmRef {
  /** Proxmox VMID, libvirt `vm-id` (domain UUID) or OpenStack `vm-uuid`. */
  id: string;
  /** `vm-name` from external_ids when present, else a name from a resolver, else ''. */
  name: string;
  kind: VmKind;
  /** Proxmox netN index (`tap100i2` → 2); null when the rule has none. */
  index: number | null;
}

/** Proxmox VMIDs are 100..999999999; netN indexes are small (net0..net31 today). */
const VMID = '([1-9][0-9]{0,8})';
const NETIDX = '(0|[1-9][0-9]{0,2})';
const PROXMOX_RULES: { re: RegExp; kind: VmKind }[] = [
  { re: new RegExp(`^tap${VMID}i${NETIDX}$`), kind: 'proxmox-qemu' },
  { re: new RegExp(`^veth${VMID}i${NETIDX}$`), kind: 'proxmox-lxc' },
  // Firewall plumbing between the guest's tap/veth and the bridge: fwpr<VMID>p<N> (the veth end in a
  // Linux bridge), fwln<VMID>i<N> / fwln<VMID>o<N> (the end in fwbr, or the OVS internal port).
  { re: new RegExp(`^fwpr${VMID}p${NETIDX}$`), kind: 'proxmox' },
  { re: new RegExp(`^fwln${VMID}[io]${NETIDX}$`), kind: 'proxmox' },
];

/**
 * The Proxmox VM a port name belongs to, or null. Only ASCII digits count, VMIDs have no leading
 * zero and at most 9 digits (Proxmox's limit), so `tap`, `tap12i`, `tapABCi0`, `tap0100i0` and
 * look-alike Unicode digits are not VMs.
 */
export function vmFromPortName(name: string): VmRef | null {
  if (typeof name !== 'string' || name.length > 64) return null;
  for (const { re, kind } of PROXMOX_RULES) {
    const m = re.exec(name);
    if (m) {
      const id = Number(m[1]);
      if (id < 100) return null; // Proxmox reserves VMIDs below 100
      return { id: m[1], name: '', kind, index: Number(m[2]) };
    }
  }
  return null;
}

/** Printable, bounded identifier from external_ids (they are set by whoever can write OVSDB). */
function cleanId(value: string | undefined): string | null {
  if (value === undefined) return null;
  const v = value.trim();
  if (v === '' || v.length > 256 || /[\u0000-\u001f\u007f]/.test(v)) return null;
  return v;
}

/**
 * The VM of an interface: libvirt/OpenStack `external_ids` first (`vm-id`, else `vm-uuid`), then the
 * Proxmox naming rules on the interface name (and the port name, when given). `vm-name` names the VM
 * whichever rule found it.
 */
export function vmFromInterface(
  name: string,
  externalIds: Readonly<Record<string, string>> = {},
  portName?: string,
): VmRef | null {
  const vmName = cleanId(externalIds['vm-name']) ?? '';
  const id = cleanId(externalIds['vm-id']) ?? cleanId(externalIds['vm-uuid']);
  if (id !== null) return { id, name: vmName, kind: 'libvirt', index: null };
  const byName = vmFromPortName(name) ?? (portName !== undefined ? vmFromPortName(portName) : null);
  if (byName) return { ...byName, name: vmName };
  return null;
}

// ---------------------------------------------------------------------------------------------
// Rows as OVSDB sends them (decoded leniently with ./ovsdb/datum.ts: an odd cell reads as absent)
// ---------------------------------------------------------------------------------------------

export type OvsRow = Record<string, unknown>;
export type { TableUpdates };

// ---------------------------------------------------------------------------------------------
// What this module needs from the OVSDB and unixctl clients
// ---------------------------------------------------------------------------------------------

/** The part of the OVSDB client a snapshot needs. */
export type OvsdbTransactor = Pick<OvsdbClient, 'transact'>;

export type { FdbEntry };

/** The part of the unixctl client the inventory needs (`fdbTable` also counts unparsable lines). */
export type FdbSource = Pick<UnixctlClient, 'fdbShow'> & Partial<Pick<UnixctlClient, 'fdbTable'>>;

/** Columns read per table (statistics included: a snapshot is also what `show` prints). */
export const INVENTORY_COLUMNS = {
  Bridge: ['name', 'ports', 'mirrors', 'datapath_type'],
  Port: ['name', 'interfaces', 'tag', 'trunks'],
  Interface: ['name', 'type', 'ofport', 'mac_in_use', 'external_ids', 'statistics'],
  Mirror: [
    'name',
    'select_all',
    'select_src_port',
    'select_dst_port',
    'select_vlan',
    'output_port',
    'output_vlan',
    'snaplen',
    'statistics',
    'external_ids',
  ],
} as const;

export type InventoryTable = keyof typeof INVENTORY_COLUMNS;
export const INVENTORY_TABLES = Object.keys(INVENTORY_COLUMNS) as InventoryTable[];

/** Rows by UUID, per table: what a select or a monitor gives. */
export type RawTables = Record<InventoryTable, Map<string, OvsRow>>;

export function emptyTables(): RawTables {
  return { Bridge: new Map(), Port: new Map(), Interface: new Map(), Mirror: new Map() };
}

/**
 * Rows skipped because they did not have the shape OVSDB sends (a null row, a row without a UUID, a
 * change that is not an object): counted, with the first reason kept for the log.
 */
export interface BadRows {
  count: number;
  /** The first skipped row's table and reason, e.g. `select Port: row 3 is null`. */
  first: string | null;
}

export function noBadRows(): BadRows {
  return { count: 0, first: null };
}

function countBad(bad: BadRows | undefined, why: string): void {
  if (!bad) return;
  bad.count++;
  bad.first ??= why;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * One transaction of four selects: a consistent view of the four tables. A reply without a `rows`
 * array for a table is an error naming the table; rows that are not objects or have no UUID are
 * skipped and counted in `bad`.
 */
export async function selectTables(client: OvsdbTransactor, bad?: BadRows): Promise<RawTables> {
  const ops = INVENTORY_TABLES.map((table) => ({
    op: 'select',
    table,
    where: [],
    columns: ['_uuid', ...INVENTORY_COLUMNS[table]],
  }));
  const results: unknown = await client.transact(OVS_DB, ops);
  const target = (client as { target?: unknown }).target;
  const malformed = (message: string) =>
    new OvsdbReplyError(typeof target === 'string' ? target : 'OVSDB', `transact ${OVS_DB}`, message);
  if (!Array.isArray(results))
    throw malformed(`the selects of ${INVENTORY_TABLES.join(', ')} have no array of results`);
  const tables = emptyTables();
  INVENTORY_TABLES.forEach((table, i) => {
    const result: unknown = results[i];
    const rows = isRecord(result) ? result.rows : undefined;
    if (!Array.isArray(rows))
      throw malformed(`select ${table}: no rows array (got ${JSON.stringify(result)?.slice(0, 100)})`);
    rows.forEach((row: unknown, n) => {
      const uuid = isRecord(row) ? asUuid(row._uuid) : null;
      if (isRecord(row) && uuid !== null) tables[table].set(uuid, row);
      else if (!isRecord(row))
        countBad(bad, `select ${table}: row ${n} is ${JSON.stringify(row)?.slice(0, 60)}`);
      else countBad(bad, `select ${table}: row ${n} has no _uuid`);
    });
  });
  return tables;
}

// ---------------------------------------------------------------------------------------------
// Snapshot
// ---------------------------------------------------------------------------------------------

export interface InventoryInterface {
  uuid: string;
  name: string;
  type: string;
  /** OpenFlow port number; null until vswitchd assigns one, -1 when the interface failed. */
  ofport: number | null;
  /** The MAC of the host side of this interface (not the VM's). */
  macInUse: string | null;
  externalIds: Record<string, string>;
  statistics: Record<string, number>;
}

export interface PortMac {
  mac: string;
  source: 'attached-mac' | 'fdb';
  /** Learned entries only (ageSec null: a static entry). */
  vlan?: number;
  ageSec?: number | null;
}

/**
 * How a mirror selects a port: `in` = packets OVS delivers to the port (select_dst_port, i.e. traffic
 * going TO the VM), `out` = packets OVS receives on the port (select_src_port, what the VM sends),
 * `both`, `all` (select_all) or `vlan` (the mirror selects by VLAN only and the port carries one of them).
 * `output` marks the port a mirror sends its copies to.
 */
export interface PortMirror {
  mirror: string;
  selects: 'in' | 'out' | 'both' | 'all' | 'vlan' | null;
  output: boolean;
}

export interface InventoryPort {
  uuid: string;
  name: string;
  bridge: string;
  tag: number | null;
  trunks: number[];
  interfaces: InventoryInterface[];
  vm: VmRef | null;
  /** attached-mac first, then learned MACs (youngest first); duplicates removed. */
  macs: PortMac[];
  mirrors: PortMirror[];
}

export interface InventoryMirror {
  uuid: string;
  name: string;
  bridge: string;
  selectAll: boolean;
  /** Port names (a reference to a vanished port shows its UUID). */
  selectSrcPorts: string[];
  selectDstPorts: string[];
  selectVlans: number[];
  outputPort: string | null;
  outputVlan: number | null;
  snaplen: number | null;
  /** OVS's own keys (`tx_packets`, `tx_bytes`); empty until ovs-vswitchd publishes them. */
  statistics: Record<string, number>;
  externalIds: Record<string, string>;
}

export interface InventoryBridge {
  uuid: string;
  name: string;
  datapathType: string;
  ports: InventoryPort[];
  mirrors: InventoryMirror[];
}

export interface InventoryVm {
  id: string;
  name: string;
  kind: VmKind;
  ports: { bridge: string; port: string; interface: string }[];
  macs: string[];
}

export interface InventorySnapshot {
  takenMs: number;
  bridges: InventoryBridge[];
  vms: InventoryVm[];
  /** Bridges whose `fdb/show` failed (their learned MACs are missing or last known). */
  fdbErrors: { bridge: string; error: string }[];
}

export interface SnapshotOptions {
  takenMs?: number;
  /** Learned MACs per bridge name. */
  fdb?: ReadonlyMap<string, readonly FdbEntry[]>;
  fdbErrors?: { bridge: string; error: string }[];
  /** Names VMs the rows do not name (for example from Proxmox's guest configs). */
  vmName?: (vm: VmRef) => string | undefined;
}

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function portVlansSelected(port: { tag: number | null; trunks: number[] }, vlans: number[]): boolean {
  if (port.tag !== null) return vlans.includes(port.tag);
  if (port.trunks.length === 0) return true; // an untagged trunk port carries every VLAN
  return port.trunks.some((t) => vlans.includes(t));
}

/** Builds the snapshot from table rows and learned MACs (pure). */
export function buildSnapshot(tables: RawTables, options: SnapshotOptions = {}): InventorySnapshot {
  const takenMs = options.takenMs ?? Date.now();
  const fdb = options.fdb ?? new Map<string, FdbEntry[]>();
  const portNames = new Map<string, string>();
  for (const [uuid, row] of tables.Port) portNames.set(uuid, String(row.name ?? uuid));
  const nameOfPort = (uuid: string) => portNames.get(uuid) ?? uuid;

  const interfaceOf = (uuid: string): InventoryInterface | null => {
    const row = tables.Interface.get(uuid);
    if (!row) return null;
    return {
      uuid,
      name: String(row.name ?? ''),
      type: typeof row.type === 'string' ? row.type : '',
      ofport: decodeOptionalLenient(row.ofport, asNumber),
      macInUse: normaliseMac(decodeOptionalLenient(row.mac_in_use, asString)),
      externalIds: decodeMapRecordLenient(row.external_ids, asString),
      statistics: decodeMapRecordLenient(row.statistics, asNumber),
    };
  };

  const mirrorOf = (uuid: string, bridge: string): InventoryMirror | null => {
    const row = tables.Mirror.get(uuid);
    if (!row) return null;
    const outputUuid = decodeOptionalLenient(row.output_port, asUuid);
    return {
      uuid,
      name: String(row.name ?? ''),
      bridge,
      selectAll: row.select_all === true,
      selectSrcPorts: decodeSetLenient(row.select_src_port, asUuid).map(nameOfPort).sort(),
      selectDstPorts: decodeSetLenient(row.select_dst_port, asUuid).map(nameOfPort).sort(),
      selectVlans: decodeSetLenient(row.select_vlan, asNumber).sort((a, b) => a - b),
      outputPort: outputUuid === null ? null : nameOfPort(outputUuid),
      outputVlan: decodeOptionalLenient(row.output_vlan, asNumber),
      snaplen: decodeOptionalLenient(row.snaplen, asNumber),
      statistics: decodeMapRecordLenient(row.statistics, asNumber),
      externalIds: decodeMapRecordLenient(row.external_ids, asString),
    };
  };

  const bridges: InventoryBridge[] = [];
  const vms = new Map<string, InventoryVm>();
  for (const [bridgeUuid, row] of tables.Bridge) {
    const bridgeName = String(row.name ?? bridgeUuid);
    const mirrors = decodeSetLenient(row.mirrors, asUuid)
      .map((u) => mirrorOf(u, bridgeName))
      .filter((m): m is InventoryMirror => m !== null)
      .sort(byName);
    const learned = fdb.get(bridgeName) ?? [];
    const ports: InventoryPort[] = [];
    for (const portUuid of decodeSetLenient(row.ports, asUuid)) {
      const prow = tables.Port.get(portUuid);
      if (!prow) continue;
      const name = String(prow.name ?? portUuid);
      const interfaces = decodeSetLenient(prow.interfaces, asUuid)
        .map(interfaceOf)
        .filter((i): i is InventoryInterface => i !== null)
        .sort(byName);
      let vm: VmRef | null = null;
      for (const iface of interfaces) {
        vm = vmFromInterface(iface.name, iface.externalIds, name);
        if (vm) break;
      }
      if (!vm && interfaces.length === 0) vm = vmFromPortName(name);
      if (vm && vm.name === '' && options.vmName) vm = { ...vm, name: cleanId(options.vmName(vm)) ?? '' };

      const macs: PortMac[] = [];
      const seen = new Set<string>();
      for (const iface of interfaces) {
        const mac = normaliseMac(iface.externalIds['attached-mac']);
        if (mac && !seen.has(mac)) {
          seen.add(mac);
          macs.push({ mac, source: 'attached-mac' });
        }
      }
      const ofports = new Set<string>();
      for (const iface of interfaces) {
        if (iface.ofport !== null && iface.ofport >= 0) ofports.add(String(iface.ofport));
        if (iface.ofport === 65534) ofports.add('LOCAL');
      }
      const mine = learned
        .filter((e) => ofports.has(String(e.port)))
        .slice()
        .sort((a, b) => (a.ageSec ?? -1) - (b.ageSec ?? -1));
      for (const e of mine) {
        const mac = normaliseMac(e.mac);
        if (mac && !seen.has(mac)) {
          seen.add(mac);
          macs.push({ mac, source: 'fdb', vlan: e.vlan, ageSec: e.ageSec });
        }
      }

      const tag = decodeOptionalLenient(prow.tag, asNumber);
      const trunks = decodeSetLenient(prow.trunks, asNumber).sort((a, b) => a - b);
      const portMirrors: PortMirror[] = [];
      for (const m of mirrors) {
        const src = m.selectSrcPorts.includes(name);
        const dst = m.selectDstPorts.includes(name);
        let selects: PortMirror['selects'] = null;
        if (m.selectAll) selects = 'all';
        else if (src && dst) selects = 'both';
        else if (src) selects = 'out';
        else if (dst) selects = 'in';
        else if (
          m.selectSrcPorts.length === 0 &&
          m.selectDstPorts.length === 0 &&
          m.selectVlans.length > 0 &&
          portVlansSelected({ tag, trunks }, m.selectVlans)
        )
          selects = 'vlan';
        const output = m.outputPort === name;
        if (selects !== null || output) portMirrors.push({ mirror: m.name, selects, output });
      }

      const port: InventoryPort = {
        uuid: portUuid,
        name,
        bridge: bridgeName,
        tag,
        trunks,
        interfaces,
        vm,
        macs,
        mirrors: portMirrors,
      };
      ports.push(port);
      if (vm) {
        let entry = vms.get(vm.id);
        if (!entry) {
          entry = { id: vm.id, name: vm.name, kind: vm.kind, ports: [], macs: [] };
          vms.set(vm.id, entry);
        }
        if (entry.name === '' && vm.name !== '') entry.name = vm.name;
        // A tap/veth names the guest type; a firewall port does not.
        if (entry.kind === 'proxmox' && vm.kind !== 'proxmox') entry.kind = vm.kind;
        entry.ports.push({ bridge: bridgeName, port: name, interface: interfaces[0]?.name ?? name });
        for (const m of macs) if (!entry.macs.includes(m.mac)) entry.macs.push(m.mac);
      }
    }
    ports.sort(byName);
    bridges.push({
      uuid: bridgeUuid,
      name: bridgeName,
      datapathType: typeof row.datapath_type === 'string' ? row.datapath_type : '',
      ports,
      mirrors,
    });
  }
  bridges.sort(byName);
  const vmList = [...vms.values()].sort((a, b) => compareVmIds(a.id, b.id));
  for (const vm of vmList) vm.ports.sort((a, b) => (a.port < b.port ? -1 : a.port > b.port ? 1 : 0));
  return { takenMs, bridges, vms: vmList, fdbErrors: options.fdbErrors ?? [] };
}

/** Numeric VMIDs in numeric order, then the rest in string order. */
function compareVmIds(a: string, b: string): number {
  const na = /^[0-9]+$/.test(a);
  const nb = /^[0-9]+$/.test(b);
  if (na && nb) return Number(a) - Number(b);
  if (na !== nb) return na ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every port of every bridge. */
export function allPorts(snapshot: InventorySnapshot): InventoryPort[] {
  return snapshot.bridges.flatMap((b) => b.ports);
}

/**
 * MAC → VM for every MAC on a VM's port (attached-mac and learned; MACs learned on other ports, such
 * as an uplink or a patch port to another bridge, never count). A MAC on several VM ports goes to its
 * attached-mac, else to the port that learned it most recently (static entries before aged ones).
 */
export function macIndex(snapshot: InventorySnapshot): Map<string, VmIdentity> {
  const best = new Map<string, { vm: VmIdentity; rank: number }>();
  for (const port of allPorts(snapshot)) {
    if (!port.vm) continue;
    for (const m of port.macs) {
      const rank =
        m.source === 'attached-mac' ? -2 : m.ageSec === null || m.ageSec === undefined ? -1 : m.ageSec;
      const prev = best.get(m.mac);
      if (!prev || rank < prev.rank) best.set(m.mac, { vm: { id: port.vm.id, name: port.vm.name }, rank });
    }
  }
  return new Map([...best].map(([mac, { vm }]) => [mac, vm]));
}

/** Reads learned MACs of each bridge; failures are reported per bridge, never thrown. */
export async function readFdb(
  unixctl: FdbSource,
  bridges: readonly string[],
): Promise<{
  fdb: Map<string, FdbEntry[]>;
  errors: { bridge: string; error: string }[];
  /** Bridges whose `fdb/show` had lines that did not parse (skipped). */
  badLines: { bridge: string; count: number; first: string | null }[];
}> {
  const fdb = new Map<string, FdbEntry[]>();
  const errors: { bridge: string; error: string }[] = [];
  const badLines: { bridge: string; count: number; first: string | null }[] = [];
  await Promise.all(
    bridges.map(async (bridge) => {
      try {
        if (unixctl.fdbTable) {
          const table: FdbTable = await unixctl.fdbTable(bridge);
          fdb.set(bridge, table.entries);
          if (table.badLines > 0) badLines.push({ bridge, count: table.badLines, first: table.firstBadLine });
        } else fdb.set(bridge, await unixctl.fdbShow(bridge));
      } catch (e) {
        errors.push({ bridge, error: (e as Error).message });
      }
    }),
  );
  return { fdb, errors, badLines };
}

/** One consistent snapshot: the four tables in one transaction, then `fdb/show` per bridge. */
export async function readInventory(
  client: OvsdbTransactor,
  unixctl?: FdbSource | null,
  options: Pick<SnapshotOptions, 'vmName'> = {},
): Promise<InventorySnapshot> {
  const tables = await selectTables(client);
  const bridgeNames = [...tables.Bridge.values()].map((r) => String(r.name));
  const { fdb, errors } = unixctl ? await readFdb(unixctl, bridgeNames) : { fdb: new Map(), errors: [] };
  return buildSnapshot(tables, { fdb, fdbErrors: errors, vmName: options.vmName });
}

// ---------------------------------------------------------------------------------------------
// Live inventory
// ---------------------------------------------------------------------------------------------

/** The part of the OVSDB client the live inventory needs. */
export type OvsdbMonitorClient = Pick<OvsdbClient, 'monitor'> & Partial<Pick<OvsdbClient, 'monitorCancel'>>;

export interface OvsInventoryOptions {
  db: OvsdbMonitorClient;
  unixctl?: FdbSource | null;
  /** `fdb/show` polling period (default 5000 ms; 0 disables polling). */
  fdbPollMs?: number;
  logger?: Logger;
  /** Called after any change of VMs, ports, MACs or mirrors. */
  onChange?: (snapshot: InventorySnapshot) => void;
  /** The `hypervisor` column of vm_inventory rows (default: this host's name). */
  hypervisor?: string;
  vmName?: (vm: VmRef) => string | undefined;
  /** Monitor id (default 'callscope-inventory'). */
  monitorId?: string;
  /** At most this many learned (bridge, MAC) entries are kept (default 100,000); more are dropped and counted. */
  maxLearnedMacs?: number;
}

export const DEFAULT_MAX_LEARNED_MACS = 100_000;

export interface OvsInventoryStats {
  monitorUpdates: number;
  fdbPolls: number;
  fdbFailures: number;
  changes: number;
  /** Learned (bridge, MAC) entries kept now. */
  learnedMacs: number;
  /** Learned entries on non-VM ports dropped after the switch aged them out. */
  learnedExpired: number;
  /** Learned entries not kept because `maxLearnedMacs` was reached. */
  learnedDropped: number;
  /** `fdb/show` lines skipped because they did not parse. */
  fdbBadLines: number;
  /** OVSDB rows and changes skipped because of their shape. */
  badRows: number;
}

/** Monitored columns: statistics change every few seconds and are left out. */
const MONITOR_REQUESTS: Record<string, { columns: string[] }> = Object.fromEntries(
  INVENTORY_TABLES.map((t) => [t, { columns: INVENTORY_COLUMNS[t].filter((c) => c !== 'statistics') }]),
);

/**
 * Applies monitor updates to cached rows. With plain `monitor` (RFC 7047) `new` carries every monitored
 * column, so it replaces the row; a missing `new` deletes it. Changes of the wrong shape (a table that
 * is not an object, a null change, a `new` that is not an object) are skipped and counted; the return
 * value is how many were skipped. `updates` itself not being an object is an error.
 */
export function applyTableUpdates(tables: RawTables, updates: TableUpdates, bad?: BadRows): number {
  if (!isRecord(updates))
    throw new Error(
      `OVSDB monitor ${OVS_DB}: table-updates is not an object (got ${JSON.stringify(updates)?.slice(0, 100)})`,
    );
  let skipped = 0;
  const skip = (why: string) => {
    skipped++;
    countBad(bad, why);
  };
  for (const table of INVENTORY_TABLES) {
    const rows: unknown = updates[table];
    if (rows === undefined) continue;
    if (!isRecord(rows)) {
      skip(`monitor ${table}: table-update is ${JSON.stringify(rows)?.slice(0, 60)}`);
      continue;
    }
    for (const [uuid, change] of Object.entries(rows)) {
      if (!isRecord(change)) {
        skip(`monitor ${table}: change of row ${uuid} is ${JSON.stringify(change)?.slice(0, 60)}`);
        continue;
      }
      const row: unknown = change.new;
      if (row === undefined) tables[table].delete(uuid);
      else if (isRecord(row)) tables[table].set(uuid, { ...(tables[table].get(uuid) ?? {}), ...row });
      else skip(`monitor ${table}: new row ${uuid} is ${JSON.stringify(row)?.slice(0, 60)}`);
    }
  }
  return skipped;
}

interface StickyMac {
  bridge: string;
  /** The MAC normalised. */
  entry: FdbEntry;
  /** When fdb/show last listed it. */
  seenMs: number;
}

const stickyKey = (bridge: string, mac: string) => `${bridge}\u0000${mac}`;

/**
 * The live inventory. Learned MACs are kept per bridge and MAC: with bridges joined by patch ports a
 * VM's MAC is learned on its tap in one bridge and on the patch port in the other, and both stay
 * (only VM ports count for {@link vmOfMac}). A MAC learned on a VM port stays attributed to it after
 * it ages out of the switch's table (a quiet VM still owns its MAC) until the bridge learns it on
 * another port or the port disappears; one learned on any other port (uplink, patch, internal) goes
 * once the switch has aged it out. At most `maxLearnedMacs` entries are kept.
 */
export class OvsInventory implements VmLookup {
  readonly stats: OvsInventoryStats = {
    monitorUpdates: 0,
    fdbPolls: 0,
    fdbFailures: 0,
    changes: 0,
    learnedMacs: 0,
    learnedExpired: 0,
    learnedDropped: 0,
    fdbBadLines: 0,
    badRows: 0,
  };
  private tables = emptyTables();
  /** Learned MACs by bridge and MAC. */
  private readonly sticky = new Map<string, StickyMac>();
  private readonly fdbErrors = new Map<string, string>();
  private readonly fdbBadLineLogged = new Map<string, string>();
  private learnedFull = false;
  private readonly maxLearned: number;
  private snapshot: InventorySnapshot;
  private macs = new Map<string, VmIdentity>();
  private signature = '';
  private readonly firstSeen = new Map<string, number>();
  private readonly lastSeen = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private closed = false;
  private monitorId: string | null = null;
  private readonly logger: Logger;
  private readonly hypervisor: string;

  private constructor(private readonly options: OvsInventoryOptions) {
    this.logger = options.logger ?? silentLogger;
    this.hypervisor = options.hypervisor ?? hostname();
    this.maxLearned = Math.max(0, options.maxLearnedMacs ?? DEFAULT_MAX_LEARNED_MACS);
    this.snapshot = buildSnapshot(this.tables);
  }

  static async start(options: OvsInventoryOptions): Promise<OvsInventory> {
    const inventory = new OvsInventory(options);
    const id = options.monitorId ?? 'callscope-inventory';
    inventory.monitorId = id;
    const initial = await options.db.monitor(OVS_DB, id, MONITOR_REQUESTS, (updates, info) =>
      inventory.onMonitorUpdate(updates, info),
    );
    inventory.replaceTables(initial);
    await inventory.pollFdb();
    const period = options.fdbPollMs ?? 5000;
    if (period > 0 && options.unixctl) {
      inventory.timer = setInterval(() => {
        if (!inventory.polling)
          inventory.polling = inventory.pollFdb().finally(() => (inventory.polling = null));
      }, period);
      inventory.timer.unref();
    }
    return inventory;
  }

  /** The current snapshot (learned MACs as of the last poll). */
  current(): InventorySnapshot {
    return this.snapshot;
  }

  vmOfMac(mac: string): VmIdentity | null {
    return this.macs.get(mac.toLowerCase()) ?? null;
  }

  /**
   * Rows for the vm_inventory table: one per VM interface (the table keeps one row per hypervisor, VM
   * and interface), with its attached-mac or else its most recently learned MAC.
   */
  entries(options: { ipsOf?: (vmId: string) => string[] } = {}): VmInventoryEntry[] {
    const out: VmInventoryEntry[] = [];
    for (const port of allPorts(this.snapshot)) {
      if (!port.vm) continue;
      const iface = port.interfaces[0]?.name ?? port.name;
      const key = this.entryKey(port.vm.id, iface);
      out.push({
        vmId: port.vm.id,
        vmName: port.vm.name,
        hypervisor: this.hypervisor,
        bridge: port.bridge,
        port: port.name,
        interface: iface,
        mac: port.macs[0]?.mac ?? '',
        ips: options.ipsOf?.(port.vm.id) ?? [],
        firstSeenMs: this.firstSeen.get(key) ?? this.snapshot.takenMs,
        lastSeenMs: this.lastSeen.get(key) ?? this.snapshot.takenMs,
      });
    }
    return out;
  }

  /**
   * Replaces every cached row with a monitor's initial contents (first start, or a client that re-issued
   * the monitor after a reconnection): rows deleted while disconnected go away.
   */
  replaceTables(initial: TableUpdates): void {
    const tables = emptyTables();
    this.applyUpdates(tables, initial);
    this.tables = tables;
    this.rebuild();
  }

  /** {@link applyTableUpdates}, counting and logging the changes skipped for their shape. */
  private applyUpdates(tables: RawTables, updates: TableUpdates): void {
    const bad = noBadRows();
    const skipped = applyTableUpdates(tables, updates, bad);
    if (skipped === 0) return;
    this.stats.badRows += skipped;
    this.logger.warn('OVSDB monitor update had malformed rows; skipped', { skipped, first: bad.first });
  }

  /** Stops polling and cancels the monitor (the OVSDB client stays open: it belongs to the caller). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.polling;
    if (this.monitorId !== null && this.options.db.monitorCancel) {
      await this.options.db.monitorCancel(this.monitorId).catch(() => undefined);
    }
  }

  /** Polls `fdb/show` once now (also run by the timer). */
  async pollFdb(): Promise<void> {
    const unixctl = this.options.unixctl;
    if (!unixctl || this.closed) return;
    const bridges = [...this.tables.Bridge.values()].map((r) => String(r.name));
    this.stats.fdbPolls++;
    const { fdb, errors, badLines } = await readFdb(unixctl, bridges);
    const now = Date.now();
    for (const { bridge, error } of errors) {
      this.stats.fdbFailures++;
      if (this.fdbErrors.get(bridge) !== error)
        this.logger.warn('fdb/show failed; keeping the MACs learned before', { bridge, error });
      this.fdbErrors.set(bridge, error);
    }
    for (const { bridge, count, first } of badLines) {
      this.stats.fdbBadLines += count;
      if (this.fdbBadLineLogged.get(bridge) !== first)
        this.logger.warn('fdb/show lines that do not parse were skipped', { bridge, count, first });
      this.fdbBadLineLogged.set(bridge, first ?? '');
    }
    const vmOfports = this.vmOfportsByBridge();
    let dropped = 0;
    for (const [bridge, entries] of fdb) {
      if (this.fdbErrors.delete(bridge)) this.logger.info('fdb/show works again', { bridge });
      const vmPorts = vmOfports.get(bridge) ?? new Set<string>();
      const onVm = (e: FdbEntry) => vmPorts.has(String(e.port));
      // One entry per MAC (a MAC may be listed on several VLANs): a VM port's, then the youngest.
      const fresh = new Map<string, FdbEntry>();
      for (const entry of entries) {
        const mac = normaliseMac(entry.mac);
        if (!mac) continue;
        const e = { ...entry, mac };
        const prev = fresh.get(mac);
        if (
          !prev ||
          (onVm(e) && !onVm(prev)) ||
          (onVm(e) === onVm(prev) && (e.ageSec ?? -1) < (prev.ageSec ?? -1))
        )
          fresh.set(mac, e);
      }
      // Aged out of the switch: kept on a VM port, dropped on any other.
      for (const [key, s] of this.sticky) {
        if (s.bridge !== bridge || fresh.has(s.entry.mac) || onVm(s.entry)) continue;
        this.sticky.delete(key);
        this.stats.learnedExpired++;
      }
      // VM ports first, so a full table keeps VMs' MACs rather than an uplink's.
      const ordered = [...fresh.values()].sort((a, b) => Number(onVm(b)) - Number(onVm(a)));
      for (const entry of ordered) {
        const key = stickyKey(bridge, entry.mac);
        if (!this.sticky.has(key) && this.sticky.size >= this.maxLearned) {
          dropped++;
          continue;
        }
        this.sticky.set(key, { bridge, entry, seenMs: now });
      }
    }
    this.stats.learnedDropped += dropped;
    if (dropped > 0 && !this.learnedFull)
      this.logger.warn('learned MAC table full: new MACs are not kept', {
        max: this.maxLearned,
        dropped,
      });
    this.learnedFull = dropped > 0;
    this.rebuild();
  }

  /** OpenFlow port numbers (as fdb/show prints them) of the VM ports, per bridge. */
  private vmOfportsByBridge(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const bridge of this.snapshot.bridges) {
      const set = new Set<string>();
      for (const port of bridge.ports) {
        if (!port.vm) continue;
        for (const iface of port.interfaces) {
          if (iface.ofport === null || iface.ofport < 0) continue;
          set.add(String(iface.ofport));
          if (iface.ofport === 65534) set.add('LOCAL');
        }
      }
      out.set(bridge.name, set);
    }
    return out;
  }

  private onMonitorUpdate(updates: TableUpdates, info?: UpdateInfo): void {
    if (this.closed) return;
    this.stats.monitorUpdates++;
    if (info?.replace) {
      // The client reconnected and re-issued the monitor: this is the full contents now.
      this.logger.info('OVSDB monitor re-established; inventory reloaded');
      this.replaceTables(updates);
      return;
    }
    this.applyUpdates(this.tables, updates);
    this.rebuild();
  }

  private entryKey(vmId: string, iface: string): string {
    return `${vmId}\u0000${iface}`;
  }

  private rebuild(): void {
    const now = Date.now();
    // Sticky learned MACs: current ports only, each MAC on the port it was last learned on.
    const ofportsByBridge = new Map<string, Set<string>>();
    for (const row of this.tables.Bridge.values()) {
      const ofports = new Set<string>();
      for (const p of decodeSetLenient(row.ports, asUuid)) {
        for (const i of decodeSetLenient(this.tables.Port.get(p)?.interfaces, asUuid)) {
          const ofport = decodeOptionalLenient(this.tables.Interface.get(i)?.ofport, asNumber);
          if (ofport !== null) ofports.add(String(ofport));
          if (ofport === 65534) ofports.add('LOCAL');
        }
      }
      ofportsByBridge.set(String(row.name), ofports);
    }
    const fdb = new Map<string, FdbEntry[]>();
    for (const [key, s] of this.sticky) {
      if (!ofportsByBridge.get(s.bridge)?.has(String(s.entry.port))) {
        this.sticky.delete(key);
        continue;
      }
      const list = fdb.get(s.bridge) ?? [];
      const age = s.entry.ageSec === null ? null : s.entry.ageSec + Math.round((now - s.seenMs) / 1000);
      list.push({ ...s.entry, ageSec: age });
      fdb.set(s.bridge, list);
    }
    this.stats.learnedMacs = this.sticky.size;
    const snapshot = buildSnapshot(this.tables, {
      takenMs: now,
      fdb,
      fdbErrors: [...this.fdbErrors].map(([bridge, error]) => ({ bridge, error })),
      vmName: this.options.vmName,
    });
    this.snapshot = snapshot;
    this.macs = macIndex(snapshot);
    for (const port of allPorts(snapshot)) {
      if (!port.vm) continue;
      const key = this.entryKey(port.vm.id, port.interfaces[0]?.name ?? port.name);
      if (!this.firstSeen.has(key)) this.firstSeen.set(key, now);
      this.lastSeen.set(key, now);
    }
    const signature = JSON.stringify(
      snapshot.bridges.map((b) => [
        b.name,
        b.ports.map((p) => [p.name, p.vm, p.macs.map((m) => m.mac), p.mirrors]),
        b.mirrors.map((m) => ({ ...m, statistics: {} })),
      ]),
    );
    if (signature !== this.signature) {
      this.signature = signature;
      this.stats.changes++;
      try {
        this.options.onChange?.(snapshot);
      } catch (e) {
        this.logger.warn('inventory onChange handler failed', { error: (e as Error).message });
      }
    }
  }
}
