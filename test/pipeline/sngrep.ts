/**
 * sngrep (Debian's 1.6, built with EEP/HEP support: tests gate on SNGREP_HEP in test/oracle/tools.ts)
 * as a HEP sender we did not write, and the kernel's view of a UDP socket (drops) so that a loss on
 * the way is seen, not guessed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * sngrep reading `file` and sending every SIP message it finds as HEP3 to udp:127.0.0.1:port; resolves
 * with its exit code. -F: no /etc/sngreprc, so the machine's settings cannot change what is tested.
 */
export function sngrepSendHep(file: string, port: number, track: ChildProcess[]): Promise<number | null> {
  const child = spawn('sngrep', ['-F', '-N', '-q', '-I', file, '-H', `udp:127.0.0.1:${port}`], {
    stdio: 'ignore',
  });
  track.push(child);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
}

/** Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:port (Linux /proc/net/udp). */
export function udpDrops(port: number): number {
  const needle = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const line = readFileSync('/proc/net/udp', 'utf8')
    .split('\n')
    .find((l) => l.includes(needle));
  return Number(line?.trim().split(/\s+/).at(-1) ?? 0);
}
