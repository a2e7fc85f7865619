import { describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import { labFdb, labTables, rowUuid, uuidSet } from '../test/fixtures/ovs-tables.js';
import { applyTableUpdates, OvsInventory, type TableUpdates } from './inventory.js';
import { allPorts, emptyTables, noBadRows, type RawTables } from './inventory-snapshot.js';
import { map } from './ovsdb/datum.js';
import type { FdbEntry } from './unixctl.js';

describe('OvsInventory', () => {
  function fakeDb(tables: RawTables) {
    let onUpdate: ((u: TableUpdates, info: { initial: boolean; replace: boolean }) => void) | null = null;
    const initial: TableUpdates = {};
    for (const [table, rows] of Object.entries(tables)) {
      initial[table] = Object.fromEntries([...rows].map(([u, row]) => [u, { new: row }]));
    }
    return {
      push: (u: TableUpdates, replace = false) => onUpdate?.(u, { initial: replace, replace }),
      initial,
      db: {
        monitor: async (_db: string, _id: unknown, _req: unknown, cb: typeof onUpdate) => {
          onUpdate = cb;
          return initial;
        },
      },
    };
  }

  it('follows monitor updates, keeps learned MACs through fdb failures and ageing, reloads on replace', async () => {
    const fake = fakeDb(labTables());
    let fdbResult: FdbEntry[] | Error = labFdb();
    const changes: number[] = [];
    const inv = await OvsInventory.start({
      db: fake.db as never,
      unixctl: {
        fdbShow: async () => {
          if (fdbResult instanceof Error) throw fdbResult;
          return fdbResult;
        },
      },
      fdbPollMs: 0,
      hypervisor: 'pve1',
      onChange: (s) => changes.push(s.bridges.length),
    });
    expect(inv.vmOfMac('AA:00:00:00:00:01')).toEqual({ id: '100', name: '' });
    expect(inv.vmOfMac('52:54:00:00:00:07')).toEqual({ id: 'uuid-a', name: 'pbx' });
    const rows = inv.entries({ ipsOf: (id) => (id === '100' ? ['10.0.0.1'] : []) });
    expect(rows.map((r) => [r.vmId, r.port, r.mac, r.hypervisor, r.ips])).toEqual([
      ['100', 'tap100i0', 'aa:00:00:00:00:02', 'pve1', ['10.0.0.1']],
      ['100', 'tap100i1', 'aa:00:00:00:00:03', 'pve1', ['10.0.0.1']],
      ['uuid-a', 'vnet7', '52:54:00:00:00:07', 'pve1', []],
    ]);
    expect(rows[0].firstSeenMs).toBeLessThanOrEqual(rows[0].lastSeenMs);

    // fdb/show fails: counted, last learned MACs kept.
    fdbResult = new Error('connection refused');
    await inv.pollFdb();
    expect(inv.stats.fdbFailures).toBe(1);
    expect(inv.current().fdbErrors).toEqual([{ bridge: 'br0', error: 'connection refused' }]);
    expect(inv.vmOfMac('aa:00:00:00:00:01')?.id).toBe('100');
    // The MAC aged out of the switch: still attributed.
    fdbResult = [];
    await inv.pollFdb();
    expect(inv.current().fdbErrors).toEqual([]);
    expect(inv.vmOfMac('aa:00:00:00:00:01')?.id).toBe('100');
    // The MAC moves to another port: it follows.
    fdbResult = [{ port: '3', vlan: 0, mac: 'aa:00:00:00:00:01', ageSec: 0 }];
    await inv.pollFdb();
    expect(inv.vmOfMac('aa:00:00:00:00:01')?.id).toBe('uuid-a');

    // A port goes away: its VM and MACs go with it.
    fake.push({
      Port: { [rowUuid(12)]: { old: {} } },
      Bridge: {
        [rowUuid(1)]: { new: { ...labTables().Bridge.get(rowUuid(1))!, ports: uuidSet(10, 11, 13, 14) } },
      },
    });
    expect(inv.entries().map((r) => r.port)).toEqual(['tap100i0', 'vnet7']);
    expect(inv.vmOfMac('aa:00:00:00:00:03')).toBeNull();

    // After a reconnect the client delivers the full contents with replace: rows not in it are gone.
    const only = emptyTables();
    only.Bridge.set(rowUuid(1), { name: 'br0', ports: uuidSet(13), mirrors: ['set', []], datapath_type: '' });
    only.Port.set(rowUuid(13), labTables().Port.get(rowUuid(13))!);
    only.Interface.set(rowUuid(23), labTables().Interface.get(rowUuid(23))!);
    const full: TableUpdates = {};
    for (const [table, rowsOf] of Object.entries(only))
      full[table] = Object.fromEntries([...rowsOf].map(([u, row]) => [u, { new: row }]));
    fake.push(full, true);
    expect(inv.entries().map((r) => r.port)).toEqual(['vnet7']);
    expect(inv.vmOfMac('aa:00:00:00:00:02')).toBeNull();
    expect(changes.length).toBeGreaterThanOrEqual(3);
    await inv.close();
  });

  it('applyTableUpdates inserts, modifies and deletes', () => {
    const t = emptyTables();
    applyTableUpdates(t, { Port: { a: { new: { name: 'x' } } } });
    applyTableUpdates(t, { Port: { a: { old: { name: 'x' }, new: { name: 'y' } } } });
    expect(t.Port.get('a')).toEqual({ name: 'y' });
    applyTableUpdates(t, { Port: { a: { old: { name: 'y' } } }, Unknown: { b: { new: {} } } });
    expect(t.Port.size).toBe(0);
  });
});

// --- Learned MACs across bridges joined by patch ports -------------------------------------------

/**
 * br0: tap100i0 (ofport 1), patch-br1 (2, patch), eth0 (3, the uplink); br1: patch-br0 (1, patch),
 * tap200i0 (2). VM 100's MAC is learned on its tap in br0 and on patch-br0 in br1; VM 200's the other
 * way round.
 */
function patched(): RawTables {
  const t = emptyTables();
  t.Bridge.set(rowUuid(1), { name: 'br0', ports: uuidSet(11, 12, 13), mirrors: ['set', []] });
  t.Bridge.set(rowUuid(2), { name: 'br1', ports: uuidSet(14, 15), mirrors: ['set', []] });
  const port = (n: number, name: string, ofport: number, type = '') => {
    t.Port.set(rowUuid(n), { name, interfaces: uuidSet(n + 10), tag: ['set', []], trunks: ['set', []] });
    t.Interface.set(rowUuid(n + 10), { name, type, ofport, external_ids: map({}) });
  };
  port(11, 'tap100i0', 1);
  port(12, 'patch-br1', 2, 'patch');
  port(13, 'eth0', 3, 'system');
  port(14, 'patch-br0', 1, 'patch');
  port(15, 'tap200i0', 2);
  return t;
}

const VM100 = 'aa:00:00:00:01:00';
const VM200 = 'aa:00:00:00:02:00';
const REMOTE = 'cc:00:00:00:00:01';

function fakeMonitor(tables: RawTables) {
  let onUpdate: ((u: TableUpdates, info: { initial: boolean; replace: boolean }) => void) | null = null;
  const initial: TableUpdates = {};
  for (const [table, rows] of Object.entries(tables))
    initial[table] = Object.fromEntries([...rows].map(([u, row]) => [u, { new: row }]));
  return {
    push: (u: TableUpdates) => onUpdate?.(u, { initial: false, replace: false }),
    db: {
      monitor: async (_db: string, _id: unknown, _req: unknown, cb: typeof onUpdate) => {
        onUpdate = cb;
        return initial;
      },
    } as never,
  };
}

describe('OvsInventory learned MACs', () => {
  it('keys learned MACs by bridge: attribution does not flap with the order fdb/show replies come in', async () => {
    const tables: Record<string, FdbEntry[]> = {
      br0: [
        { port: '1', vlan: 0, mac: VM100, ageSec: 1 },
        { port: '2', vlan: 0, mac: VM200, ageSec: 1 },
      ],
      br1: [
        { port: '1', vlan: 0, mac: VM100, ageSec: 1 },
        { port: '2', vlan: 0, mac: VM200, ageSec: 1 },
      ],
    };
    let last = 'br1'; // the bridge whose fdb/show finishes last
    const inv = await OvsInventory.start({
      db: fakeMonitor(patched()).db,
      unixctl: {
        fdbShow: async (bridge: string) => {
          await new Promise((r) => setTimeout(r, bridge === last ? 15 : 1));
          return tables[bridge];
        },
      },
      fdbPollMs: 0,
    });
    for (const order of ['br0', 'br1', 'br0', 'br1']) {
      last = order;
      await inv.pollFdb();
      expect(inv.vmOfMac(VM100), `br ${order} last`).toEqual({ id: '100', name: '' });
      expect(inv.vmOfMac(VM200), `br ${order} last`).toEqual({ id: '200', name: '' });
    }
    // Both learnings are shown: the VM's tap and the patch port in the other bridge.
    const ports = allPorts(inv.current());
    const macsOf = (name: string) => ports.find((p) => p.name === name)!.macs.map((m) => m.mac);
    expect(macsOf('tap100i0')).toEqual([VM100]);
    expect(macsOf('patch-br0')).toEqual([VM100]);
    expect(macsOf('tap200i0')).toEqual([VM200]);
    expect(macsOf('patch-br1')).toEqual([VM200]);
    expect(inv.stats.learnedMacs).toBe(4);
    await inv.close();
  });

  it('a MAC on a VM port and a non-VM port of one bridge goes to the VM port', async () => {
    const inv = await OvsInventory.start({
      db: fakeMonitor(patched()).db,
      unixctl: {
        fdbShow: async (bridge: string) =>
          bridge === 'br0'
            ? [
                { port: '3', vlan: 20, mac: VM100, ageSec: 0 },
                { port: '1', vlan: 0, mac: VM100, ageSec: 5 },
              ]
            : [],
      },
      fdbPollMs: 0,
    });
    expect(inv.vmOfMac(VM100)?.id).toBe('100');
    const eth0 = allPorts(inv.current()).find((p) => p.name === 'eth0')!;
    expect(eth0.macs).toEqual([]);
    await inv.close();
  });

  it('drops MACs the switch aged out on non-VM ports, keeps those of VM ports', async () => {
    let result: Record<string, FdbEntry[]> = {
      br0: [
        { port: '1', vlan: 0, mac: VM100, ageSec: 1 },
        { port: '3', vlan: 0, mac: REMOTE, ageSec: 1 },
      ],
      br1: [{ port: '1', vlan: 0, mac: VM100, ageSec: 1 }],
    };
    let down = false;
    const inv = await OvsInventory.start({
      db: fakeMonitor(patched()).db,
      unixctl: {
        fdbShow: async (bridge: string) => {
          if (down) throw new Error('connection refused');
          return result[bridge] ?? [];
        },
      },
      fdbPollMs: 0,
    });
    const macsOf = (name: string) =>
      allPorts(inv.current())
        .find((p) => p.name === name)!
        .macs.map((m) => m.mac);
    expect(macsOf('eth0')).toEqual([REMOTE]);
    expect(macsOf('patch-br0')).toEqual([VM100]);
    result = { br0: [], br1: [] };
    await inv.pollFdb();
    expect(macsOf('eth0')).toEqual([]);
    expect(macsOf('patch-br0')).toEqual([]);
    expect(macsOf('tap100i0')).toEqual([VM100]); // a quiet VM keeps its MAC
    expect(inv.vmOfMac(VM100)?.id).toBe('100');
    expect(inv.stats).toMatchObject({ learnedExpired: 2, learnedMacs: 1 });
    // A failed fdb/show expires nothing.
    result = { br0: [{ port: '3', vlan: 0, mac: REMOTE, ageSec: 0 }], br1: [] };
    await inv.pollFdb();
    down = true;
    await inv.pollFdb();
    expect(macsOf('eth0')).toEqual([REMOTE]);
    expect(inv.stats.fdbFailures).toBe(2);
    await inv.close();
  });

  it('keeps at most maxLearnedMacs entries, VM ports first, and counts what it drops', async () => {
    const warnings: string[] = [];
    const entries: FdbEntry[] = [
      { port: '3', vlan: 0, mac: 'cc:00:00:00:00:01', ageSec: 0 },
      { port: '3', vlan: 0, mac: 'cc:00:00:00:00:02', ageSec: 0 },
      { port: '3', vlan: 0, mac: 'cc:00:00:00:00:03', ageSec: 0 },
      { port: '3', vlan: 0, mac: 'cc:00:00:00:00:04', ageSec: 0 },
      { port: '1', vlan: 0, mac: VM100, ageSec: 0 },
    ];
    const inv = await OvsInventory.start({
      db: fakeMonitor(patched()).db,
      unixctl: { fdbShow: async (bridge: string) => (bridge === 'br0' ? entries : []) },
      fdbPollMs: 0,
      maxLearnedMacs: 3,
      logger: { ...silentLogger, warn: (msg: string) => void warnings.push(msg) } as never,
    });
    expect(inv.vmOfMac(VM100)?.id).toBe('100');
    expect(inv.stats).toMatchObject({ learnedMacs: 3, learnedDropped: 2 });
    await inv.pollFdb(); // the same table again: the kept ones update, the others are dropped again
    expect(inv.stats).toMatchObject({ learnedMacs: 3, learnedDropped: 4 });
    expect(warnings.filter((w) => /table full/.test(w))).toHaveLength(1);
    await inv.close();
  });

  it('counts fdb/show lines that did not parse when the source reports them', async () => {
    const inv = await OvsInventory.start({
      db: fakeMonitor(patched()).db,
      unixctl: {
        fdbShow: async () => [],
        fdbTable: async (bridge: string) => ({
          entries: bridge === 'br0' ? [{ port: '1', vlan: 0, mac: VM100, ageSec: 0 }] : [],
          badLines: bridge === 'br0' ? 2 : 0,
          firstBadLine: bridge === 'br0' ? 'fdb/show line 3 "junk": expected 4 columns' : null,
        }),
      },
      fdbPollMs: 0,
    });
    expect(inv.stats.fdbBadLines).toBe(2);
    expect(inv.vmOfMac(VM100)?.id).toBe('100');
    await inv.close();
  });
});

// --- Malformed OVSDB data -----------------------------------------------------------------------

describe('malformed OVSDB replies', () => {
  it('applyTableUpdates skips and counts bad changes, naming the table', () => {
    const t = emptyTables();
    const bad = noBadRows();
    const skipped = applyTableUpdates(
      t,
      {
        Port: { a: null, b: { new: 'x' }, c: { new: { name: 'ok' } }, d: 7 },
        Interface: 5,
        Bridge: [],
      } as never,
      bad,
    );
    expect(skipped).toBe(5);
    expect(bad).toEqual({ count: 5, first: 'monitor Bridge: table-update is []' });
    expect([...t.Port.keys()]).toEqual(['c']);
    expect(() => applyTableUpdates(t, null as never)).toThrow(
      /monitor Open_vSwitch: table-updates is not an object/,
    );
  });

  it('the live inventory counts malformed monitor rows and keeps going', async () => {
    const fake = fakeMonitor(patched());
    const inv = await OvsInventory.start({ db: fake.db, fdbPollMs: 0 });
    fake.push({ Port: { [rowUuid(99)]: null, [rowUuid(98)]: { new: 3 } } } as never);
    expect(inv.stats.badRows).toBe(2);
    expect(inv.current().bridges.map((b) => b.name)).toEqual(['br0', 'br1']);
    await inv.close();
  });
});
