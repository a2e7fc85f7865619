/**
 * The live inventory of the OVS bridges on this host: `OvsInventory` keeps a snapshot
 * (./inventory-snapshot.ts) current through an OVSDB monitor plus periodic `fdb/show` polling, keeps
 * learned MACs as they age, and answers `vmOfMac` for capture attribution.
 */
import { hostname } from 'node:os';
import { normaliseMac, type VmIdentity, type VmLookup } from '../capture/attribution.js';
import { type Logger, silentLogger } from '../core/log.js';
import type { VmInventoryEntry } from '../core/vm.js';
import {
  allPorts,
  type BadRows,
  buildSnapshot,
  countBad,
  emptyTables,
  type FdbSource,
  INVENTORY_COLUMNS,
  INVENTORY_TABLES,
  type InventorySnapshot,
  isRecord,
  macIndex,
  noBadRows,
  OVS_DB,
  type RawTables,
  readFdb,
} from './inventory-snapshot.js';
import type { OvsdbClient, TableUpdates, UpdateInfo } from './ovsdb/client.js';
import { asNumber, asUuid, decodeOptionalLenient, decodeSetLenient } from './ovsdb/datum.js';
import type { FdbEntry } from './unixctl.js';
import type { VmRef } from './vm-naming.js';

export type { TableUpdates };

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
