/**
 * Capture health: the kernel's counters (pcap_stats) and ours, summed over every libpcap handle a
 * capture had (it reopens after errors), as cumulative figures and as deltas since the previous record.
 */
import type { CaptureHealth } from '../../core/health.js';
import type { PcapStat } from './binding.js';

export type { CaptureHealth } from '../../core/health.js';

export type CaptureTotals = Omit<
  CaptureHealth,
  | 'timeNs'
  | 'interface'
  | 'receivedDelta'
  | 'droppedKernelDelta'
  | 'droppedInterfaceDelta'
  | 'packetsDelta'
  | 'bytesDelta'
  | 'droppedOverloadDelta'
  | 'capturing'
  | 'final'
>;

const U32 = 2 ** 32;

/** Growth of a 32-bit counter that may have wrapped since `before`. */
function grown(now: number, before: number): number {
  const d = now - before;
  return d >= 0 ? d : d + U32;
}

/**
 * The kernel counters of the handle now open, added to those of handles already closed. A handle's
 * counters start at 0; `sample()` folds the growth since the last sample into the totals, so a wrap of
 * libpcap's 32-bit counters (4.3 G packets) between two samples is counted right.
 */
export class KernelCounters {
  received = 0;
  droppedKernel = 0;
  droppedInterface = 0;
  private last: PcapStat = { ps_recv: 0, ps_drop: 0, ps_ifdrop: 0 };

  /** A new handle: its counters start from zero. */
  reset(): void {
    this.last = { ps_recv: 0, ps_drop: 0, ps_ifdrop: 0 };
  }

  sample(stat: PcapStat): void {
    this.received += grown(stat.ps_recv >>> 0, this.last.ps_recv);
    this.droppedKernel += grown(stat.ps_drop >>> 0, this.last.ps_drop);
    this.droppedInterface += grown(stat.ps_ifdrop >>> 0, this.last.ps_ifdrop);
    this.last = { ps_recv: stat.ps_recv >>> 0, ps_drop: stat.ps_drop >>> 0, ps_ifdrop: stat.ps_ifdrop >>> 0 };
  }
}

/** Turns cumulative totals into health records with deltas since the previous record. */
export class HealthRecorder {
  private previous: CaptureTotals | null = null;

  constructor(private readonly interfaceName: string) {}

  record(totals: CaptureTotals, capturing: boolean, final: boolean): CaptureHealth {
    const p = this.previous;
    this.previous = { ...totals };
    return {
      timeNs: BigInt(Date.now()) * 1_000_000n,
      interface: this.interfaceName,
      received: totals.received,
      droppedKernel: totals.droppedKernel,
      droppedInterface: totals.droppedInterface,
      receivedDelta: totals.received - (p?.received ?? 0),
      droppedKernelDelta: totals.droppedKernel - (p?.droppedKernel ?? 0),
      droppedInterfaceDelta: totals.droppedInterface - (p?.droppedInterface ?? 0),
      packets: totals.packets,
      bytes: totals.bytes,
      packetsDelta: totals.packets - (p?.packets ?? 0),
      bytesDelta: totals.bytes - (p?.bytes ?? 0),
      droppedOverload: totals.droppedOverload,
      droppedOverloadDelta: totals.droppedOverload - (p?.droppedOverload ?? 0),
      reopenings: totals.reopenings,
      linkDowns: totals.linkDowns,
      callbackErrors: totals.callbackErrors,
      capturing,
      final,
    };
  }
}
