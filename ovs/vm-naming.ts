/**
 * Which VM an OVS port or interface belongs to, by naming rule (Proxmox `tap<VMID>i<N>`,
 * `veth<VMID>i<N>`, firewall ports `fwln<VMID>i<N>` / `fwpr<VMID>p<N>`) or by the `Interface.external_ids`
 * that libvirt and OpenStack set (`vm-id` / `vm-uuid`, `vm-name`). Pure: names and ids in, a VmRef out.
 */
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
export function cleanExternalId(value: string | undefined): string | null {
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
  const vmName = cleanExternalId(externalIds['vm-name']) ?? '';
  const id = cleanExternalId(externalIds['vm-id']) ?? cleanExternalId(externalIds['vm-uuid']);
  if (id !== null) return { id, name: vmName, kind: 'libvirt', index: null };
  const byName = vmFromPortName(name) ?? (portName !== undefined ? vmFromPortName(portName) : null);
  if (byName) return { ...byName, name: vmName };
  return null;
}
