/**
 * A HEP3 listener as a source (core/source.ts): HEP from agents that already emit it (Kamailio
 * siptrace, Asterisk res_hep, FreeSWITCH, heplify, sngrep, another callscope) over UDP and TCP. While
 * the sinks take a batch, TCP peers are paused (they see TCP backpressure) and UDP frames queue up to
 * the listener's bound, then are dropped and counted.
 */
import type { LogFields } from '../../core/log.js';
import { aborted, type EventSource, type SourceOutput } from '../../core/source.js';
import { HepListener, type HepListenerOptions, type HepListenerStats } from './listener.js';

export interface HepSourceOptions extends Omit<HepListenerOptions, 'onEvents'> {
  /** Once the sockets are bound (the listener knows its ports). */
  onStart?: (listener: HepListener) => void;
}

export class HepSource implements EventSource<HepListenerStats> {
  readonly name: string;
  readonly pace = 'paced';
  readonly redelivers = false;
  private listener: HepListener | null = null;

  constructor(private readonly options: HepSourceOptions) {
    this.name = `hep:${options.host ?? '0.0.0.0'}:${options.port ?? 9060}`;
  }

  async run(output: SourceOutput, signal?: AbortSignal): Promise<HepListenerStats> {
    signal?.throwIfAborted();
    const listener = await HepListener.start({
      ...this.options,
      onEvents: (events) => output.events(events),
    });
    this.listener = listener;
    try {
      this.options.onStart?.(listener);
      await aborted(signal);
    } finally {
      await listener.close();
    }
    return { ...listener.stats };
  }

  progress(): LogFields {
    return this.listener?.statsFields() ?? {};
  }
}
