/**
 * The native half of the optional `pcap` package (node_pcap 3.1), loaded on first use so that
 * callscope runs (files, store, Kafka) where the package or libpcap is missing.
 *
 * We drive node_pcap's binding directly rather than through its `createSession` wrapper: the wrapper
 * starts a libuv poll on the capture socket that stays referenced after `close()` until one more
 * packet arrives (an idle interface would keep the process alive), and that libuv stops silently on
 * the socket's first POLLERR (an interface going down), after which nothing is read again. Reading
 * from our own timer avoids both; see source.ts.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** `pcap_stats()` as node_pcap reports it (32-bit counters that wrap). */
export interface PcapStat {
  ps_recv: number;
  ps_drop: number;
  ps_ifdrop: number;
}

/** One libpcap handle (node_pcap's `PcapSession` native object). */
export interface NativeSession {
  /**
   * pcap_create + options + pcap_activate (+ filter); returns the link type as node_pcap names it
   * ('LINKTYPE_ETHERNET', ... or 'Unknown linktype N'). Throws libpcap's message.
   */
  open_live(
    device: string,
    filter: string,
    bufferSize: number,
    snapLength: number,
    outfile: string,
    onPacket: () => void,
    monitor: boolean,
    bufferTimeoutMs: number,
    onWarning: (message: string) => void,
    promiscuous: boolean,
  ): string;
  /**
   * Reads every packet available now (non-blocking), copying each into `buf` and its header
   * (tv_sec, tv_usec, caplen, len: 4 bytes each, host order) into `header`, and calling onPacket.
   * Returns 0 when drained, -1 on a read error, -2 when close() had been called (the handle is then
   * freed: never call it again).
   */
  dispatch(buf: Buffer, header: Buffer): number;
  /** pcap_breakloop: the next dispatch() that reads a packet frees the handle and returns -2. */
  close(): void;
  stats(): PcapStat;
}

export interface PcapBinding {
  PcapSession: new () => NativeSession;
  lib_version(): string;
}

export const PCAP_MISSING_MESSAGE =
  "live capture needs the optional 'pcap' package: apt-get install libpcap-dev python3 make g++ && npm install";

/** A live capture that cannot start: the package is missing, or the interface cannot be opened. */
export class LiveCaptureError extends Error {
  constructor(
    message: string,
    readonly reason: 'pcap-missing' | 'open-failed' | 'bad-option',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LiveCaptureError';
  }
}

let cached: PcapBinding | null = null;

// CALLSCOPE_NO_PCAP=1 behaves as if the package were missing (to check that message on any machine).

/** Loads node_pcap's binding, or throws LiveCaptureError('pcap-missing') saying what to install. */
export function loadPcap(): PcapBinding {
  if (cached !== null) return cached;
  if (process.env.CALLSCOPE_NO_PCAP === '1') throw new LiveCaptureError(PCAP_MISSING_MESSAGE, 'pcap-missing');
  const require = createRequire(import.meta.url);
  try {
    const main = require.resolve('pcap');
    const binding = require(join(dirname(main), 'build', 'Release', 'pcap_binding.node')) as PcapBinding;
    if (typeof binding.PcapSession !== 'function') throw new Error('pcap_binding has no PcapSession');
    cached = binding;
    return binding;
  } catch (error) {
    const detail = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new LiveCaptureError(`${PCAP_MISSING_MESSAGE} (${detail})`, 'pcap-missing', { cause: error });
  }
}

/** True when live capture can be used here (the package loads). */
export function pcapAvailable(): boolean {
  try {
    loadPcap();
    return true;
  } catch {
    return false;
  }
}

/** node_pcap's link type name → LINKTYPE_* number. */
export function linkTypeNumber(name: string): number {
  switch (name) {
    case 'LINKTYPE_NULL':
      return 0;
    case 'LINKTYPE_ETHERNET':
      return 1;
    case 'LINKTYPE_IEEE802_11_RADIO':
      return 127;
    case 'LINKTYPE_RAW':
      return 101; // DLT_RAW is 12 or 14 on some systems; libpcap maps it to LINKTYPE_RAW in files
    case 'LINKTYPE_LINUX_SLL':
      return 113;
  }
  // 'Unknown linktype N' carries the DLT_ value, equal to the LINKTYPE_ value for those we decode
  // (e.g. LINUX_SLL2 = 276).
  const m = /(\d+)\s*$/.exec(name);
  return m ? Number(m[1]) : -1;
}
