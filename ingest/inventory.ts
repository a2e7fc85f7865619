/**
 * Keeps the store's vm_inventory current during a run: the VMs behind the mirrors (from the OVS
 * inventory or a static map) with the addresses attribution learned for them. Written at the start, a
 * second after each inventory change, every minute (learned addresses, last_seen), and at the end.
 */
import type { VmAttribution } from '../capture/attribution.js';
import type { Logger } from '../core/log.js';
import type { VmInventoryEntry } from './rows.js';

/** Where inventory rows come from (bin/vms.ts builds one from --ovs-db or --vm-map). */
export interface InventorySource {
  entries(ipsOf?: (vmId: string) => string[]): VmInventoryEntry[];
  onChange(listener: () => void): void;
}

export interface InventoryRecorderOptions {
  source: InventorySource;
  attribution: VmAttribution;
  /** Stores the entries (the store sink: vm_inventory). */
  write: (entries: VmInventoryEntry[]) => Promise<void>;
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
  /** The write under way (with any queued after it); null when idle. */
  private writing: Promise<void> | null = null;
  /** Another write is due once the one under way ends. */
  private queued = false;
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
    if (!this.stopped) {
      if (this.changeTimer !== null) clearTimeout(this.changeTimer);
      this.changeTimer = null;
      clearInterval(this.refreshTimer);
      this.record();
      this.stopped = true;
    }
    await this.writing;
  }

  /**
   * Writes go one after another, so a slow store never sees two inventory inserts racing; while one
   * is under way, requests coalesce into one more write, of the entries current when it starts.
   */
  private record(): void {
    if (this.stopped) return;
    if (this.writing !== null) {
      this.queued = true;
      return;
    }
    this.writing = this.writeLoop();
  }

  private async writeLoop(): Promise<void> {
    await null; // record() has set `writing` before this loop can end and clear it
    do {
      this.queued = false;
      await this.writeOnce();
    } while (this.queued);
    this.writing = null;
  }

  private async writeOnce(): Promise<void> {
    const { attribution, source, logger } = this.options;
    let entries = 0;
    try {
      const current = source.entries((vmId) => attribution.ipsOf(vmId));
      entries = current.length;
      await this.options.write(current);
      this.rows += current.length;
    } catch (error) {
      this.failures++;
      logger?.warn('VM inventory not stored', {
        entries,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
}
