/**
 * The capture source a command's flags name: `--pcap FILE` or `--interface IFACE` (run, capture), with
 * its progress display and, for a live capture, the signals that stop it.
 */
import { type CaptureFacts, type CaptureOptions, FileSource, InterfaceSource } from '../capture/sources.js';
import type { Logger } from '../core/log.js';
import type { EventSource } from '../core/source.js';
import type { Settings } from './config.js';
import { captureInputOf, liveOptionsOf, progressFor } from './flags.js';
import { checkLiveSource, liveProgressFor, stopOnSignals } from './live.js';

type Values = { 'no-progress'?: boolean; 'no-promisc'?: boolean; immediate?: boolean };

export interface CaptureInput {
  /** File path or interface. */
  name: string;
  live: boolean;
  /** Builds the source once the options are known (they need the VM source, opened after the checks). */
  source(options: CaptureOptions): EventSource<CaptureFacts>;
  /** Live: events that may wait for the sinks. */
  maxQueuedEvents?: number;
  /** Live: aborted by SIGINT/SIGTERM. */
  signal?: AbortSignal;
  /** Ends the progress line and removes the signal handlers. */
  done(): void;
}

/**
 * Validates the source flags and, for an interface, that it can be captured on (throws UsageError or
 * LiveCaptureError) — before anything (a store, Kafka, OVSDB) is opened.
 */
export function captureInputFor(
  command: string,
  settings: Settings,
  values: Values,
  logger: Logger,
): CaptureInput {
  const input = captureInputOf(settings, command);
  if (input.pcap !== undefined) {
    const path = input.pcap;
    const progress = progressFor(command, values);
    return {
      name: path,
      live: false,
      source: (options) =>
        new FileSource(path, {
          ...options,
          onProgress: (done, total, packets) => progress.update(done, total, packets),
        }),
      done: () => progress.done(),
    };
  }
  const iface = input.interface as string;
  const live = liveOptionsOf(settings, values);
  checkLiveSource(iface);
  const progress = liveProgressFor(command, values);
  const stop = stopOnSignals(logger);
  return {
    name: iface,
    live: true,
    source: (options) =>
      new InterfaceSource(iface, {
        ...options,
        capture: live.capture,
        durationSec: live.durationSec,
        onProgress: (totals, elapsed) => progress.update(totals, elapsed),
      }),
    maxQueuedEvents: live.maxQueuedEvents,
    signal: stop.signal,
    done: () => {
      progress.done();
      stop.dispose();
    },
  };
}
