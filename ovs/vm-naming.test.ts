import { describe, expect, it } from 'vitest';
import { vmFromInterface, vmFromPortName } from './vm-naming.js';

describe('vmFromPortName', () => {
  it('recognises Proxmox QEMU taps, LXC veths and firewall ports', () => {
    expect(vmFromPortName('tap100i0')).toEqual({ id: '100', name: '', kind: 'proxmox-qemu', index: 0 });
    expect(vmFromPortName('tap123i31')).toEqual({ id: '123', name: '', kind: 'proxmox-qemu', index: 31 });
    expect(vmFromPortName('veth2005i1')).toEqual({ id: '2005', name: '', kind: 'proxmox-lxc', index: 1 });
    expect(vmFromPortName('fwpr100p0')).toEqual({ id: '100', name: '', kind: 'proxmox', index: 0 });
    expect(vmFromPortName('fwln100i2')).toEqual({ id: '100', name: '', kind: 'proxmox', index: 2 });
    expect(vmFromPortName('fwln100o0')).toEqual({ id: '100', name: '', kind: 'proxmox', index: 0 });
  });

  it('accepts the longest name Linux allows (15 chars) and rejects VMIDs Proxmox cannot have', () => {
    expect('tap999999999i99'.length).toBe(15);
    expect(vmFromPortName('tap999999999i99')?.id).toBe('999999999');
    expect(vmFromPortName('tap1000000000i0')).toBeNull(); // 10-digit VMID
    expect(vmFromPortName('tap99i0')).toBeNull(); // VMIDs start at 100
    expect(vmFromPortName('tap0100i0')).toBeNull(); // leading zero
    expect(vmFromPortName('tap100i00')).toBeNull();
    expect(vmFromPortName('tap100i1000')).toBeNull();
  });

  it('rejects hostile and look-alike names', () => {
    for (const name of [
      '',
      'tap',
      'tap12i',
      'tapi0',
      'tapABCi0',
      'tap100',
      'tap100i',
      'tap100i0 ',
      ' tap100i0',
      'tap100i0\n',
      'tap100i0x',
      'xtap100i0',
      'TAP100i0',
      'tap-100i0',
      'tap1e3i0',
      'tap100.5i0',
      'tap１００i0', // full-width digits
      'tap١٠٠i0', // Arabic-Indic digits
      'tap100і0', // Cyrillic і
      'veth100',
      'fwpr100i0x',
      'fwbr100i0', // the firewall bridge itself is not a port of the OVS bridge
      'vnet0',
      'tap100i0'.repeat(20),
      'a'.repeat(100_000),
    ]) {
      expect(vmFromPortName(name), JSON.stringify(name)).toBeNull();
    }
  });
});

describe('vmFromInterface', () => {
  it('takes libvirt/OpenStack external_ids before names', () => {
    expect(
      vmFromInterface('vnet3', {
        'vm-id': '6f1c2a3e-1111-2222-3333-444455556666',
        'attached-mac': '52:54:00:aa:bb:cc',
        'iface-id': 'x',
        'vm-name': 'pbx1',
      }),
    ).toEqual({ id: '6f1c2a3e-1111-2222-3333-444455556666', name: 'pbx1', kind: 'libvirt', index: null });
    expect(vmFromInterface('tap1', { 'vm-uuid': 'abc' })?.id).toBe('abc');
    expect(vmFromInterface('tap100i0', { 'vm-name': 'sbc' })).toEqual({
      id: '100',
      name: 'sbc',
      kind: 'proxmox-qemu',
      index: 0,
    });
    // Port name rule when the interface name says nothing.
    expect(vmFromInterface('eth0', {}, 'veth300i0')?.id).toBe('300');
    // Without a VM id, attached-mac alone does not make a VM.
    expect(vmFromInterface('vnet0', { 'attached-mac': '52:54:00:00:00:01' })).toBeNull();
  });

  it('ignores unusable external_ids values', () => {
    expect(vmFromInterface('vnet0', { 'vm-id': '' })).toBeNull();
    expect(vmFromInterface('vnet0', { 'vm-id': '   ' })).toBeNull();
    expect(vmFromInterface('vnet0', { 'vm-id': 'a\nb' })).toBeNull();
    expect(vmFromInterface('vnet0', { 'vm-id': 'x'.repeat(1000) })).toBeNull();
    expect(vmFromInterface('vnet0', { 'vm-id': 'ok', 'vm-name': 'bad\u0000name' })).toEqual({
      id: 'ok',
      name: '',
      kind: 'libvirt',
      index: null,
    });
    expect(vmFromInterface('vnet0', { 'vm-id': 'üñí-çødé' })?.id).toBe('üñí-çødé');
  });
});
