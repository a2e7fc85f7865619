/**
 * UnixctlClient against a real ovs-vswitchd (test/oracle/ovs.ts), with `ovs-vswitchd --version` and
 * the namespaces' own MACs as the outside truth.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OVS_LAB, type OvsLab, startOvs } from '../test/oracle/ovs.js';
import { needs } from '../test/oracle/tools.js';
import { locateUnixctlSocket, parseFdbShow, parseFdbTable, UnixctlClient, UnixctlError } from './unixctl.js';

describe('parseFdbShow', () => {
  it('parses numbered, LOCAL and static rows', () => {
    const text =
      ' port  VLAN  MAC                Age\n' +
      '    1     0  02:00:00:00:00:01    2\n' +
      'LOCAL   100  AA:BB:CC:DD:EE:FF    0\n' +
      '    1     5  02:00:00:00:00:99  static\n';
    expect(parseFdbShow(text)).toEqual([
      { port: '1', vlan: 0, mac: '02:00:00:00:00:01', ageSec: 2 },
      { port: 'LOCAL', vlan: 100, mac: 'aa:bb:cc:dd:ee:ff', ageSec: 0 },
      { port: '1', vlan: 5, mac: '02:00:00:00:00:99', ageSec: null },
    ]);
    expect(parseFdbShow(' port  VLAN  MAC                Age\n')).toEqual([]);
  });

  it('skips and counts lines it cannot parse, keeping the rest of the table', () => {
    const text =
      ' port  VLAN  MAC                Age\n' +
      '    1     0  02:00:00:00:00:01    2\n' +
      '    1     x  02:00:00:00:00:02    2\n' +
      'some new trailer line\n' +
      '    2     0  not-a-mac            1\n' +
      '    2     0  02:00:00:00:00:03  soon\n' +
      '    3    10  02:00:00:00:00:04    7\n';
    const table = parseFdbTable(text);
    expect(table.entries).toEqual([
      { port: '1', vlan: 0, mac: '02:00:00:00:00:01', ageSec: 2 },
      { port: '3', vlan: 10, mac: '02:00:00:00:00:04', ageSec: 7 },
    ]);
    expect(table.badLines).toBe(4);
    expect(table.firstBadLine).toMatch(/^fdb\/show line 3 .*VLAN "x" is not a number/);
    expect(parseFdbShow(text)).toEqual(table.entries);
    expect(parseFdbTable('')).toEqual({ entries: [], badLines: 0, firstBadLine: null });
  });

  it('the client counts skipped lines; a vanished pidfile is a UnixctlError with its context', async () => {
    const client = new UnixctlClient({ rundir: '/nonexistent-callscope-rundir' });
    const err = await client.fdbShow('br0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnixctlError);
    expect((err as Error).message).toMatch(
      /^\/nonexistent-callscope-rundir: fdb\/show br0: cannot locate ovs-vswitchd's control socket/,
    );
    // A fake call: what fdbShow and fdbTable do with the text.
    const fake = new UnixctlClient('/unused.ctl');
    fake.call = async () =>
      ' port  VLAN  MAC                Age\n    1     0  02:00:00:00:00:01    2\njunk\n';
    expect(await fake.fdbShow('br0')).toHaveLength(1);
    expect((await fake.fdbTable('br0')).badLines).toBe(1);
    expect(fake.fdbBadLines).toBe(2);
  });
});

needs(...OVS_LAB).describe('UnixctlClient against ovs-vswitchd', () => {
  let lab: OvsLab;
  beforeAll(async () => {
    lab = await startOvs();
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('locates the socket through the pidfile in the rundir', () => {
    expect(locateUnixctlSocket({ rundir: lab.dir })).toBe(lab.vswitchdCtl);
    const viaEnv = new UnixctlClient({ rundir: lab.dir });
    expect(viaEnv.socketPath).toBe(lab.vswitchdCtl);
    expect(() => locateUnixctlSocket({ rundir: '/nonexistent-callscope' })).toThrow(
      /\/nonexistent-callscope\/ovs-vswitchd\.pid/,
    );
  });

  it('version matches ovs-vswitchd --version', async () => {
    const expected = /(\d+\.\d+\.\d+)/.exec(
      execFileSync('ovs-vswitchd', ['--version'], { encoding: 'utf8' }),
    )?.[1];
    const v = await new UnixctlClient({ rundir: lab.dir }).version();
    expect(v.number).toBe(expected);
    expect(v.text).toContain('ovs-vswitchd');
  });

  it('fdb/show after traffic lists exactly the namespaces MACs, on their ports', async () => {
    const a = await lab.addVm({ port: 'tap9101i0', ip: '10.77.0.11/24', mac: '02:C5:00:00:91:01' });
    const b = await lab.addVm({ port: 'tap9102i0', ip: '10.77.0.12/24' });
    expect(await lab.udpEcho(a, b, { count: 3 })).toBe(3);
    const client = new UnixctlClient(lab.vswitchdCtl as string);
    const fdb = await client.fdbShow(lab.bridge as string);
    // Oracle: ovs-appctl's own output, parsed the same way, and the OpenFlow numbers ovs-vsctl reports.
    const key = (e: { port: string; vlan: number; mac: string }) => `${e.port}/${e.vlan}/${e.mac}`;
    const oracle = parseFdbShow(await lab.appctl('fdb/show', lab.bridge as string));
    expect(fdb.map(key).sort()).toEqual(oracle.map(key).sort());
    const ofport = async (p: string) => (await lab.vsctl('get', 'Interface', p, 'ofport')).trim();
    const byMac = new Map(fdb.map((e) => [e.mac, e]));
    expect(byMac.get(a.mac)).toMatchObject({ port: await ofport(a.port), vlan: 0 });
    expect(byMac.get(b.mac)).toMatchObject({ port: await ofport(b.port), vlan: 0 });
    expect(a.mac).toBe('02:c5:00:00:91:01');
    // Nothing else sends on this bridge except the VMs (IPv6 DAD/RS from the namespaces use the same MACs).
    expect([...byMac.keys()].sort()).toEqual([a.mac, b.mac].sort());
    for (const e of fdb) expect(e.ageSec === null || e.ageSec >= 0).toBe(true);
  });

  it('revalidator/purge succeeds', async () => {
    await expect(new UnixctlClient(lab.vswitchdCtl as string).revalidatorPurge()).resolves.toBeUndefined();
  });

  it('unknown command and unknown bridge give clear errors', async () => {
    const client = new UnixctlClient(lab.vswitchdCtl as string);
    const err = await client.call('nosuch/command', ['x']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnixctlError);
    expect((err as Error).message).toContain(lab.vswitchdCtl as string);
    expect((err as Error).message).toMatch(
      /nosuch\/command x: server returned an error: "nosuch\/command" is not a valid command/,
    );
    await expect(client.fdbShow('nosuchbr')).rejects.toThrow(
      /fdb\/show nosuchbr: server returned an error: no such bridge/,
    );
  });

  it('a missing socket gives a clear error', async () => {
    const err = await new UnixctlClient(`${lab.dir}/missing.ctl`).call('version').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnixctlError);
    expect((err as Error).message).toMatch(/missing\.ctl: version: cannot connect: .*ENOENT/);
  });
});
