/**
 * Runs tshark 4.x over a capture and parses the statistics the generator's ground truth is checked
 * against. tshark is the independent reference: our own decoder must not grade its own input.
 */
import { execFileSync } from 'node:child_process';
import type { SipCounts } from '../summary.js';

export function tshark(args: string[]): string {
  return execFileSync('tshark', args, {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'], // stderr only carries the "running as root" notice
  });
}

export function hasTshark(): boolean {
  try {
    tshark(['--version']);
    return true;
  } catch {
    return false;
  }
}

/** `tshark -q -z sip,stat` in the SipCounts shape. */
export function parseSipStat(out: string): SipCounts {
  const counts: SipCounts = { messages: -1, retransmissions: -1, requests: {}, responses: {} };
  let section: 'none' | 'codes' | 'methods' = 'none';
  for (const line of out.split('\n')) {
    let m = /Number of SIP messages:\s*(\d+)/.exec(line);
    if (m) counts.messages = Number(m[1]);
    m = /Number of resent SIP messages:\s*(\d+)/.exec(line);
    if (m) counts.retransmissions = Number(m[1]);
    if (line.startsWith('* SIP Status Codes')) section = 'codes';
    else if (line.startsWith('* List of SIP Request methods')) section = 'methods';
    else if (line.startsWith('*')) section = 'none';
    if (section === 'codes') {
      m = /^\s+SIP (\d{3}) .*:\s+(\d+) Packets/.exec(line);
      if (m) counts.responses[m[1]] = (counts.responses[m[1]] ?? 0) + Number(m[2]);
    } else if (section === 'methods') {
      m = /^\s+(\S+)\s+:\s+(\d+) Packets/.exec(line);
      if (m) counts.requests[m[1]] = (counts.requests[m[1]] ?? 0) + Number(m[2]);
    }
  }
  return counts;
}

export interface TsharkRtpStream {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  ssrc: number;
  payload: string;
  packets: number;
  lost: number;
  meanJitterMs: number;
  maxJitterMs: number;
}

/**
 * `tshark -q -z rtp,streams` (4.0 layout): start, end, src, port, dst, port, SSRC, payload, packets,
 * "lost (pct%)", min/mean/max delta, min/mean/max jitter, optional "X" when problems were seen.
 */
export function parseRtpStreams(out: string): TsharkRtpStream[] {
  const re =
    /^\s*[\d.]+\s+[\d.]+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+0x([0-9A-Fa-f]+)\s+(.+?)\s+(\d+)\s+(-?\d+)\s+\(\S+%\)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)/;
  const streams: TsharkRtpStream[] = [];
  for (const line of out.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    streams.push({
      src: m[1],
      srcPort: Number(m[2]),
      dst: m[3],
      dstPort: Number(m[4]),
      ssrc: Number.parseInt(m[5], 16),
      payload: m[6],
      packets: Number(m[7]),
      lost: Number(m[8]),
      meanJitterMs: Number(m[9]),
      maxJitterMs: Number(m[10]),
    });
  }
  return streams;
}

export function streamKey(s: {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  ssrc: number;
}): string {
  return `${s.src}:${s.srcPort}>${s.dst}:${s.dstPort}#${s.ssrc >>> 0}`;
}

/** Sorted copy of a count map, so comparisons ignore insertion order. */
export function sorted(record: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}
