/**
 * Keeps the store's vm_inventory current during a run: the VMs behind the mirrors (from the OVS
 * inventory or a static map) with the addresses attribution learned for them. Written at the start, a
 * second after each inventory change, every minute (learned addresses, last_seen), and at the end.
 */
import type { VmAttribution } from '../capture/attribution.js';
import type { Logger } from '../capture/log.js';
import type { VmInventoryEntry } from './rows.js';
import type { StoreWriter } from './writer.js';

/** Where inventory rows come from (bin/vms.ts builds one from --ovs-db or --vm-map). */
export interface InventorySource {
  entries(ipsOf?: (vmId: string) => string[]): VmInventoryEntry[];
  onChange(listener: () => void): void;
}

export interface InventoryRecorderOptions {
  source: InventorySource;
  attribution: VmAttribution;
  /** The writer to use now (a live run may replace a failed one). */
  writer: () => StoreWriter;
  logger?: Logger;
  /** Default 60 s. */
  refreshMs?: number;
}

export class InventoryRecorder {
  /** Rows written (each write stores every current entry). */
  rows = 0;
  failures = 0;
  private changeTimer: NodeJS.Timeout | null = null;
  private readonly refreshTimer: NodeJS.Timeout;
  private writing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: InventoryRecorderOptions) {
    options.source.onChange(() => {
      if (this.stopped || this.changeTimer !== null) return;
      this.changeTimer = setTimeout(() => {
        this.changeTimer = null;
        this.record();
      }, 1000);
    });
    this.refreshTimer = setInterval(() => this.record(), options.refreshMs ?? 60_000);
    this.refreshTimer.unref();
    this.record();
  }

  /** Writes the current entries once more and stops; resolves when every write has finished. */
  async stop(): Promise<void> {
    if (this.stopped) return this.writing;
    if (this.changeTimer !== null) clearTimeout(this.changeTimer);
    clearInterval(this.refreshTimer);
    this.record();
    this.stopped = true;
    return this.writing;
  }

  private record(): void {
    if (this.stopped) return;
    const { attribution, source, logger } = this.options;
    const entries = source.entries((vmId) => attribution.ipsOf(vmId));
    // Writes go one after another: a slow store never sees two inventory inserts racing.
    this.writing = this.writing.then(async () => {
      try {
        await this.options.writer().writeVmInventory(entries);
        this.rows += entries.length;
      } catch (error) {
        this.failures++;
        logger?.warn('VM inventory not stored', { entries: entries.length, error: (error as Error).message });
      }
    });
  }
}
