/**
 * Where `run` and `capture` learn which VM owns a MAC: the live OVS inventory (`--ovs-db`, kept current
 * by an OVSDB monitor and fdb/show polling) or a static map file (`--vm-map`) for a capture point that
 * cannot reach the hypervisor's OVSDB.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { StaticVmMap, VmAttribution, type VmAttributionStats } from '../capture/attribution.js';
import type { Logger } from '../core/log.js';
import type { VmInventoryEntry } from '../ingest/rows.js';
import { OvsInventory } from '../ovs/inventory.js';
import { OvsdbClient } from '../ovs/ovsdb/client.js';
import { UnixctlClient } from '../ovs/unixctl.js';
import { type Settings, UsageError } from './config.js';

export const VM_FLAGS = {
  'ovs-db': { type: 'string' },
  'ovs-unixctl': { type: 'string' },
  'vm-map': { type: 'string' },
} as const;

export const VM_HELP = `VM attribution (analyze, run, capture):
  --ovs-db TARGET        OVSDB of the hypervisor (unix:/var/run/openvswitch/db.sock,
                         tcp:HOST:PORT): VMs from port names and external_ids,
                         MACs from fdb/show                             env CALLSCOPE_OVS_DB
  --ovs-unixctl PATH     ovs-vswitchd control socket (default: found in
                         OVS_RUNDIR or /var/run/openvswitch)            env CALLSCOPE_OVS_UNIXCTL
  --vm-map FILE          static map instead: JSON [{"mac","id","name"}]  env CALLSCOPE_VM_MAP
`;

/** --ovs-db names an OVSDB that does not answer (exit 69, as ovs-mirror). */
export class VmSourceError extends Error {
  override name = 'VmSourceError';
}

/** A source of VM identities for one capture run, owned by the command that opened it. */
export interface VmSource {
  /** Attribution over this source, owned for the run (the addresses it learns feed `entries`). */
  readonly attribution: VmAttribution;
  /** Where it comes from, for logs and --json output. */
  readonly description: string;
  /** vm_inventory rows now; `ipsOf` adds the addresses attribution learned. */
  entries(ipsOf?: (vmId: string) => string[]): VmInventoryEntry[];
  /** Called when the inventory changes (never for a static map). */
  onChange(listener: () => void): void;
  close(): Promise<void>;
}

/** The VM source the settings name, or null without --ovs-db / --vm-map. */
export async function vmSourceFor(settings: Settings, logger: Logger): Promise<VmSource | null> {
  const db = settings.string('ovs-db');
  const mapFile = settings.string('vm-map');
  if (db && mapFile) throw new UsageError('--ovs-db and --vm-map are alternatives: give one');
  const hypervisor = settings.string('node-name') || hostname();
  if (mapFile) return staticSource(mapFile, hypervisor);
  if (!db) return null;
  return ovsSource(db, settings.string('ovs-unixctl'), hypervisor, logger);
}

function staticSource(file: string, hypervisor: string): VmSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read --vm-map ${file}: ${(e as Error).message}`);
  }
  let map: StaticVmMap;
  try {
    map = StaticVmMap.parse(text, file);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const started = Date.now();
  return {
    attribution: new VmAttribution(map),
    description: `vm map ${file} (${map.size} MACs)`,
    entries: (ipsOf) =>
      map.list().map((vm) => ({
        vmId: vm.id,
        vmName: vm.name,
        hypervisor,
        bridge: '',
        port: '',
        interface: vm.mac,
        mac: vm.mac,
        ips: ipsOf?.(vm.id) ?? [],
        firstSeenMs: started,
        lastSeenMs: Date.now(),
      })),
    onChange: () => {},
    close: async () => {},
  };
}

async function ovsSource(
  db: string,
  unixctlPath: string | undefined,
  hypervisor: string,
  logger: Logger,
): Promise<VmSource> {
  let failures = 0;
  let client: OvsdbClient;
  try {
    client = await OvsdbClient.connect(db, {
      onReconnect: () => logger.info('OVSDB reconnected', { db }),
      onDisconnect: (reason) =>
        logger.warn('OVSDB connection lost, reconnecting', { db, reason: reason?.message ?? 'closed' }),
      // Failed reconnect attempts repeat every few seconds: the first few and then every 100th.
      onError: (error) => {
        failures++;
        if (failures <= 5 || failures % 100 === 0)
          logger.warn('OVSDB problem; VM attribution keeps the last inventory', {
            db,
            error: error.message,
            failures,
          });
      },
    });
  } catch (error) {
    throw new VmSourceError(`cannot reach OVSDB at ${db} (--ovs-db): ${(error as Error).message}`);
  }
  const unixctl = new UnixctlClient(unixctlPath ? { socketPath: unixctlPath } : {});
  const listeners: Array<() => void> = [];
  let inventory: OvsInventory;
  try {
    inventory = await OvsInventory.start({
      db: client,
      unixctl,
      hypervisor,
      logger,
      onChange: () => {
        for (const listener of listeners) listener();
      },
    });
  } catch (e) {
    await client.close();
    throw e;
  }
  const vms = inventory.current().vms;
  logger.info('OVS inventory', { db, vms: vms.length, ports: vms.reduce((n, vm) => n + vm.ports.length, 0) });
  return {
    attribution: new VmAttribution(inventory),
    description: `OVSDB ${db}`,
    entries: (ipsOf) => inventory.entries({ ipsOf }),
    onChange: (listener) => listeners.push(listener),
    close: async () => {
      await inventory.close();
      await client.close();
    },
  };
}

/** The `vms` member of a run's --json output: null without a VM source. */
export function vmReport(source: VmSource | null): ({ source: string } & VmAttributionStats) | null {
  return source === null ? null : { source: source.description, ...source.attribution.stats };
}
