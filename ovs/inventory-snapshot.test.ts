import { describe, expect, it } from 'vitest';
import { normaliseMac } from '../capture/attribution.js';
import { labFdb, labTables, rowUuid, uuidSet } from '../test/fixtures/ovs-tables.js';
import { buildSnapshot, emptyTables, macIndex, noBadRows, selectTables } from './inventory-snapshot.js';

describe('normaliseMac (as the inventory uses it)', () => {
  it('lower-cases and validates; an absent value is no MAC', () => {
    expect(normaliseMac('52:54:00:AA:BB:CC')).toBe('52:54:00:aa:bb:cc');
    expect(normaliseMac('52-54-00-aa-bb-cc')).toBe('52:54:00:aa:bb:cc');
    expect(normaliseMac('52:54:00:aa:bb')).toBeNull();
    expect(normaliseMac('zz:54:00:aa:bb:cc')).toBeNull();
    expect(normaliseMac(undefined)).toBeNull();
    expect(normaliseMac(null)).toBeNull();
  });
});

// --- Snapshot building from rows as OVSDB sends them -------------------------------------------

describe('buildSnapshot', () => {
  const snap = buildSnapshot(labTables(), { takenMs: 1000, fdb: new Map([['br0', labFdb()]]) });
  const port = (name: string) => snap.bridges[0].ports.find((p) => p.name === name)!;

  it('walks bridges → ports → interfaces', () => {
    expect(snap.bridges.map((b) => b.name)).toEqual(['br0']);
    expect(snap.bridges[0].ports.map((p) => p.name)).toEqual([
      'br0',
      'mon0',
      'tap100i0',
      'tap100i1',
      'vnet7',
    ]);
    expect(port('tap100i1').tag).toBe(10);
    expect(port('tap100i0').interfaces[0]).toMatchObject({
      name: 'tap100i0',
      ofport: 1,
      macInUse: 'fe:00:00:00:00:21',
    });
    expect(port('br0').interfaces[0].type).toBe('internal');
  });

  it('finds each port its VM and its MACs (attached-mac, then learned youngest first; never mac_in_use)', () => {
    expect(port('tap100i0').vm?.id).toBe('100');
    expect(port('tap100i0').macs.map((m) => m.mac)).toEqual(['aa:00:00:00:00:02', 'aa:00:00:00:00:01']);
    expect(port('tap100i1').macs).toEqual([{ mac: 'aa:00:00:00:00:03', source: 'fdb', vlan: 10, ageSec: 0 }]);
    expect(port('vnet7').vm).toEqual({ id: 'uuid-a', name: 'pbx', kind: 'libvirt', index: null });
    expect(port('vnet7').macs).toEqual([{ mac: '52:54:00:00:00:07', source: 'attached-mac' }]);
    expect(port('br0').vm).toBeNull();
    expect(port('br0').macs.map((m) => m.mac)).toEqual(['fe:00:00:00:00:20']);
    expect(snap.vms.map((v) => [v.id, v.ports.map((p) => p.port)])).toEqual([
      ['100', ['tap100i0', 'tap100i1']],
      ['uuid-a', ['vnet7']],
    ]);
    const index = macIndex(snap);
    expect(index.get('aa:00:00:00:00:01')).toEqual({ id: '100', name: '' });
    expect(index.get('52:54:00:00:00:07')).toEqual({ id: 'uuid-a', name: 'pbx' });
    expect(index.has('fe:00:00:00:00:20')).toBe(false); // the bridge's internal port is no VM
    expect(index.has('fe:00:00:00:00:21')).toBe(false); // mac_in_use of the tap
  });

  it('shows which mirrors select each port, and how', () => {
    expect(port('tap100i0').mirrors).toEqual([{ mirror: 'm1', selects: 'both', output: false }]);
    expect(port('tap100i1').mirrors).toEqual([{ mirror: 'm1', selects: 'out', output: false }]);
    expect(port('mon0').mirrors).toEqual([{ mirror: 'm1', selects: null, output: true }]);
    expect(port('vnet7').mirrors).toEqual([]);
    const m = snap.bridges[0].mirrors[0];
    expect(m).toMatchObject({
      name: 'm1',
      selectSrcPorts: ['tap100i0', 'tap100i1'],
      selectDstPorts: ['tap100i0'],
      outputPort: 'mon0',
      outputVlan: null,
      snaplen: null,
      statistics: { tx_packets: 5, tx_bytes: 500 },
    });
  });

  it('selects by VLAN and by select_all', () => {
    const t = labTables();
    t.Mirror.set(rowUuid(30), {
      ...t.Mirror.get(rowUuid(30))!,
      select_src_port: ['set', []],
      select_dst_port: ['set', []],
      select_vlan: 10,
    });
    const s = buildSnapshot(t);
    const p = (n: string) => s.bridges[0].ports.find((x) => x.name === n)!.mirrors;
    expect(p('tap100i1')).toEqual([{ mirror: 'm1', selects: 'vlan', output: false }]);
    expect(p('br0')).toEqual([{ mirror: 'm1', selects: 'vlan', output: false }]); // untagged trunk
    t.Mirror.set(rowUuid(30), { ...t.Mirror.get(rowUuid(30))!, select_all: true });
    expect(buildSnapshot(t).bridges[0].ports.find((x) => x.name === 'vnet7')!.mirrors[0].selects).toBe('all');
  });

  it('survives rows with missing or odd columns', () => {
    const t = emptyTables();
    t.Bridge.set(rowUuid(1), { name: 'b', ports: uuidSet(5, 6) }); // port 6 has no row
    t.Port.set(rowUuid(5), { name: 'tap100i0', interfaces: ['set', []] });
    const s = buildSnapshot(t, { fdb: new Map([['b', [{ port: '1', vlan: 0, mac: 'junk', ageSec: 0 }]]]) });
    expect(s.bridges[0].ports.map((p) => [p.name, p.vm?.id, p.macs])).toEqual([['tap100i0', '100', []]]);
  });

  it('reads cells of the wrong kind as absent, keeping what fits', () => {
    const t = emptyTables();
    t.Bridge.set(rowUuid(1), {
      name: 'b',
      ports: ['set', [['uuid', rowUuid(5)], 'not-a-uuid', 7]],
      mirrors: uuidSet(9),
    });
    t.Port.set(rowUuid(5), {
      name: 'p',
      interfaces: ['uuid', rowUuid(6)],
      tag: ['set', [1, 2]],
      trunks: ['set', [10, 'x', 20]],
    });
    t.Interface.set(rowUuid(6), {
      name: 'tap100i0',
      ofport: 'x',
      mac_in_use: ['set', ['AA-BB-CC-DD-EE-FF']],
      external_ids: ['set', []],
      statistics: [
        'map',
        [
          ['rx_packets', 3],
          ['oops', 'x'],
          [1, 2],
        ],
      ],
    });
    t.Mirror.set(rowUuid(9), {
      name: 'm',
      select_src_port: ['map', []],
      select_vlan: 5,
      output_port: [
        'set',
        [
          ['uuid', rowUuid(5)],
          ['uuid', rowUuid(6)],
        ],
      ],
      snaplen: ['set', [['uuid', rowUuid(5)]]],
    });
    const [bridge] = buildSnapshot(t).bridges;
    const [port] = bridge.ports;
    expect([port.tag, port.trunks]).toEqual([null, [10, 20]]);
    const { ofport, macInUse, externalIds, statistics } = port.interfaces[0];
    expect({ ofport, macInUse, externalIds, statistics }).toEqual({
      ofport: null,
      macInUse: 'aa:bb:cc:dd:ee:ff',
      externalIds: {},
      statistics: { rx_packets: 3 },
    });
    expect(bridge.mirrors[0]).toMatchObject({
      selectSrcPorts: [],
      selectVlans: [5],
      outputPort: null,
      snaplen: null,
    });
  });
});

// --- Malformed OVSDB data -----------------------------------------------------------------------

describe('malformed OVSDB replies', () => {
  it('selectTables skips null rows and rows without a UUID, and names the table when rows is not an array', async () => {
    const reply = (rowsOf: (table: string) => unknown) => ({
      transact: async (_db: string, ops: { table: string }[]) => ops.map((o) => ({ rows: rowsOf(o.table) })),
    });
    const bad = noBadRows();
    const tables = await selectTables(
      reply((table) =>
        table === 'Bridge'
          ? [null, { _uuid: ['uuid', rowUuid(1)], name: 'br0' }, { name: 'no-uuid' }, 'x']
          : [],
      ) as never,
      bad,
    );
    expect([...tables.Bridge.keys()]).toEqual([rowUuid(1)]);
    expect(bad).toEqual({ count: 3, first: 'select Bridge: row 0 is null' });
    await expect(selectTables(reply((t) => (t === 'Port' ? { no: 1 } : [])) as never)).rejects.toThrow(
      /transact Open_vSwitch: malformed reply: select Port: no rows array/,
    );
    await expect(selectTables({ transact: async () => ({}) } as never)).rejects.toThrow(
      /malformed reply: the selects of Bridge, Port, Interface, Mirror/,
    );
    await expect(
      selectTables({ transact: async () => [null, { rows: [] }, { rows: [] }, { rows: [] }] } as never),
    ).rejects.toThrow(/select Bridge: no rows array \(got null\)/);
  });
});
