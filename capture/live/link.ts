/**
 * An interface's state as Linux shows it in /sys/class/net: whether it exists, its ifindex (a deleted
 * and recreated interface gets a new one) and whether it is administratively up.
 *
 * libpcap hides both events from a non-blocking reader: after `ip link set down`/`up` the capture
 * socket keeps working (no error at all), and after the interface is deleted and recreated under the
 * same name its name still resolves, so libpcap keeps reading a socket bound to the old, dead index and
 * returns nothing, forever. Watching the index is how a capture notices it must reopen.
 */
import { readFileSync } from 'node:fs';

export interface LinkState {
  exists: boolean;
  ifindex: number;
  up: boolean;
}

const IFF_UP = 0x1;

/** The interface's state, or null where /sys/class/net is not available (not Linux). */
export function readLinkState(name: string): LinkState | null {
  // A name with a slash or dots could walk out of /sys/class/net.
  if (!/^[^/\0]+$/.test(name) || name === '.' || name === '..')
    return { exists: false, ifindex: 0, up: false };
  const base = `/sys/class/net/${name}`;
  try {
    const ifindex = Number(readFileSync(`${base}/ifindex`, 'latin1').trim());
    const flags = Number.parseInt(readFileSync(`${base}/flags`, 'latin1').trim(), 16);
    return { exists: true, ifindex, up: (flags & IFF_UP) !== 0 };
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENODEV') {
      try {
        readFileSync('/sys/class/net/lo/ifindex');
      } catch {
        return null; // no sysfs here: the watch is off
      }
      return { exists: false, ifindex: 0, up: false };
    }
    return null;
  }
}
