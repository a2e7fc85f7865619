/** One VM port behind a mirror (written by the Open vSwitch inventory). */
export interface VmInventoryEntry {
  vmId: string;
  vmName: string;
  hypervisor: string;
  bridge: string;
  port: string;
  interface: string;
  mac: string;
  ips: string[];
  firstSeenMs: number;
  lastSeenMs: number;
}
