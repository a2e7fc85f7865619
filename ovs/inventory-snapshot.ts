/**
 * The inventory snapshot: bridges → ports → interfaces, each port's VM, MACs and mirrors, and the VMs,
 * built from the rows of four OVSDB tables and the MACs ovs-vswitchd learned.
 *
 * - A port's MACs are the `attached-mac` of its interfaces plus the MACs ovs-vswitchd learned on it
 *   (`fdb/show`, matched by OpenFlow port number). `mac_in_use` is the host side of a tap/veth (or an
 *   internal port's own MAC), never the VM's, so it is reported but not counted as a VM MAC.
 * - `readInventory` takes one consistent snapshot (one OVSDB transaction of selects); `buildSnapshot`
 *   is the pure part, also used by the live inventory (./inventory.ts).
 */
import { normaliseMac, type VmIdentity } from '../capture/attribution.js';
import { type OvsdbClient, OvsdbReplyError } from './ovsdb/client.js';
import {
  asNumber,
  asString,
  asUuid,
  decodeMapRecordLenient,
  decodeOptionalLenient,
  decodeSetLenient,
} from './ovsdb/datum.js';
import type { FdbEntry, FdbTable, UnixctlClient } from './unixctl.js';
import { cleanExternalId, type VmKind, type VmRef, vmFromInterface, vmFromPortName } from './vm-naming.js';

export const OVS_DB = 'Open_vSwitch';

// ---------------------------------------------------------------------------------------------
// Rows as OVSDB sends them (decoded leniently with ./ovsdb/datum.ts: an odd cell reads as absent)
// ---------------------------------------------------------------------------------------------

export type OvsRow = Record<string, unknown>;

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

/** Counts one skipped row in `bad` (when given), keeping the first reason. */
export function countBad(bad: BadRows | undefined, why: string): void {
  if (!bad) return;
  bad.count++;
  bad.first ??= why;
}

/** A JSON object: not null, not an array. */
export const isRecord = (v: unknown): v is Record<string, unknown> =>
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
      if (vm && vm.name === '' && options.vmName)
        vm = { ...vm, name: cleanExternalId(options.vmName(vm)) ?? '' };

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
