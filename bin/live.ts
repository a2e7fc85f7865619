/** What commands that capture live share: fail-fast checks, signals that stop a capture, progress. */
import { LiveCaptureError, loadPcap } from '../capture/live/binding.js';
import { readLinkState } from '../capture/live/link.js';
import type { CaptureTotals } from '../capture/live/stats.js';
import type { Logger } from '../core/log.js';
import { formatInt } from './progress.js';

/**
 * Fails fast, before a store or Kafka is opened: the pcap package must load and the interface exist.
 * Throws LiveCaptureError.
 */
export function checkLiveSource(iface: string): void {
  loadPcap();
  const link = readLinkState(iface);
  if (link !== null && !link.exists && iface !== 'any')
    throw new LiveCaptureError(`cannot capture on ${iface}: no such interface`, 'open-failed');
}

/**
 * An AbortSignal that SIGINT or SIGTERM aborts (the source then stops and the sinks are flushed); a
 * second signal exits at once. `dispose` removes the handlers.
 */
export function stopOnSignals(logger: Logger): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const on = (name: NodeJS.Signals) => () => {
    if (controller.signal.aborted) {
      process.stderr.write(`callscope: second ${name}: exiting without flushing\n`);
      process.exit(130);
    }
    logger.info('stopping', { signal: name });
    controller.abort();
  };
  const onInt = on('SIGINT');
  const onTerm = on('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}

/** A progress line for a live capture on a terminal's stderr (unless --no-progress). */
export function liveProgressFor(
  label: string,
  values: { 'no-progress'?: boolean },
): { update: (totals: CaptureTotals, elapsedSec: number) => void; done: () => void } {
  const enabled = Boolean(process.stderr.isTTY) && !values['no-progress'];
  let drawn = false;
  let lastPackets = 0;
  let lastAt = 0;
  return {
    update: (t, elapsedSec) => {
      if (!enabled) return;
      const rate = elapsedSec > lastAt ? (t.packets - lastPackets) / (elapsedSec - lastAt) : 0;
      lastPackets = t.packets;
      lastAt = elapsedSec;
      const clock = new Date(elapsedSec * 1000).toISOString().slice(11, 19);
      const line =
        `${label} ${clock}  ${formatInt(t.packets)} packets  ${formatInt(rate)}/s  ` +
        `${(t.bytes / 1048576).toFixed(1)} MiB  dropped ${formatInt(t.droppedKernel + t.droppedOverload)}` +
        (t.reopenings > 0 ? `  reopened ${t.reopenings}` : '');
      process.stderr.write(`\r${line.slice(0, (process.stderr.columns ?? 120) - 1)}\x1b[K`);
      drawn = true;
    },
    done: () => {
      if (drawn) process.stderr.write('\r\x1b[K');
      drawn = false;
    },
  };
}
