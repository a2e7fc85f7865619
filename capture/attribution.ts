/**
 * Per-VM attribution: which VM sent and which received a captured packet. Mirrored frames carry the
 * VM's own MAC, so MAC → port → VM (from the OVS inventory, or a static map) is the primary key; an IP
 * first seen behind a known MAC is remembered, so media reports (which have addresses, not frames) and
 * routed traffic whose MAC is a router's still find their VM.
 */

/** A VM as the inventory names it. */
export interface VmIdentity {
  /** Proxmox VMID, libvirt vm-id or UUID. */
  id: string;
  /** Display name ('' when unknown). */
  name: string;
}

/** Answers who owns a MAC address (lower-case, colon-separated). Kept current by its owner. */
export interface VmLookup {
  vmOfMac(mac: string): VmIdentity | null;
}

export interface VmAttributionOptions {
  /** Bound of the learned IP → VM table (oldest forgotten first). Default 65,536. */
  maxLearnedIps?: number;
}

export interface VmAttributionStats {
  /** Frames whose source or destination MAC belonged to a known VM. */
  attributedByMac: number;
  /** Events attributed through an IP learned earlier from a known MAC. */
  attributedByIp: number;
  learnedIps: number;
  forgottenIps: number;
}

/**
 * Owned by one capture pipeline. `learn` is called per attributed frame; `vmOf` answers for an event's
 * MAC (when it has one) or address.
 */
export class VmAttribution {
  readonly stats: VmAttributionStats = {
    attributedByMac: 0,
    attributedByIp: 0,
    learnedIps: 0,
    forgottenIps: 0,
  };
  private readonly byIp = new Map<string, VmIdentity>();
  private readonly maxLearnedIps: number;

  constructor(
    private readonly lookup: VmLookup,
    options: VmAttributionOptions = {},
  ) {
    this.maxLearnedIps = options.maxLearnedIps ?? 65_536;
  }

  /**
   * The VM of one side of a frame: by MAC, else by an address learned before. `learn` (the sending
   * side only) remembers the address behind a known MAC: a frame's destination MAC may be a router
   * VM's while the address is the host behind it, so destinations teach nothing.
   */
  vmOf(mac: string | null, ip: string, learn: boolean): VmIdentity | null {
    if (mac !== null) {
      const vm = this.lookup.vmOfMac(mac);
      if (vm !== null) {
        this.stats.attributedByMac++;
        if (learn) this.remember(ip, vm);
        return vm;
      }
    }
    const learned = this.byIp.get(ip);
    if (learned !== undefined) {
      this.stats.attributedByIp++;
      // Most recently used last: the busiest addresses are the last to be forgotten.
      this.byIp.delete(ip);
      this.byIp.set(ip, learned);
      return learned;
    }
    return null;
  }

  /** The VM of a MAC alone, without falling back to a learned address (who owns a frame's MAC). */
  vmOfMac(mac: string): VmIdentity | null {
    return this.lookup.vmOfMac(mac);
  }

  /** IPs learned for a VM (for the inventory's `ips` column). */
  ipsOf(vmId: string): string[] {
    const out: string[] = [];
    for (const [ip, vm] of this.byIp) if (vm.id === vmId) out.push(ip);
    return out;
  }

  private remember(ip: string, vm: VmIdentity): void {
    const known = this.byIp.get(ip);
    if (known !== undefined) this.byIp.delete(ip);
    else this.stats.learnedIps++;
    this.byIp.set(ip, vm);
    if (this.byIp.size > this.maxLearnedIps) {
      const oldest = this.byIp.keys().next().value as string;
      this.byIp.delete(oldest);
      this.stats.forgottenIps++;
    }
  }
}

/** One line of a static VM map (`--vm-map FILE`): for hosts whose OVSDB the capture cannot reach. */
export interface VmMapEntry {
  mac: string;
  id: string;
  name?: string;
}

const MAC_TEXT = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * Normalises a MAC to lower-case colon form (upper case, dashes and surrounding blanks accepted); null
 * when it is not one, or not a string at all (e.g. an absent `attached-mac`).
 */
export function normaliseMac(text: string | null | undefined): string | null {
  if (typeof text !== 'string') return null;
  const mac = text.trim().toLowerCase().replaceAll('-', ':');
  return MAC_TEXT.test(mac) ? mac : null;
}

/** A fixed MAC → VM table. */
export class StaticVmMap implements VmLookup {
  private readonly byMac = new Map<string, VmIdentity>();

  constructor(entries: readonly VmMapEntry[]) {
    entries.forEach((entry, i) => {
      const mac = typeof entry?.mac === 'string' ? normaliseMac(entry.mac) : null;
      if (mac === null)
        throw new Error(`VM map entry ${i}: ${JSON.stringify(entry?.mac)} is not a MAC address`);
      if (typeof entry.id !== 'string' || entry.id === '')
        throw new Error(`VM map entry ${i} (${mac}): "id" must be a non-empty string`);
      this.byMac.set(mac, { id: entry.id, name: typeof entry.name === 'string' ? entry.name : '' });
    });
  }

  /** Parses the JSON text of a map file: an array of {mac, id, name?}. */
  static parse(text: string, file: string): StaticVmMap {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new Error(`VM map ${file}: not JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(value)) throw new Error(`VM map ${file}: expected an array of {mac, id, name}`);
    try {
      return new StaticVmMap(value as VmMapEntry[]);
    } catch (e) {
      throw new Error(`VM map ${file}: ${(e as Error).message}`);
    }
  }

  vmOfMac(mac: string): VmIdentity | null {
    return this.byMac.get(mac) ?? null;
  }

  get size(): number {
    return this.byMac.size;
  }

  list(): Array<VmIdentity & { mac: string }> {
    return [...this.byMac].map(([mac, vm]) => ({ mac, ...vm }));
  }
}
