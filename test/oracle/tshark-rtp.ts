/**
 * tshark as an outside oracle for RTP: `tshark -n -r FILE -q -z rtp,streams` parsed into one
 * {@link TsharkRtpStream} per stream, every column tshark prints.
 *
 * What tshark 4.0 prints (and what this parser relies on):
 * ```
 * ========================= RTP Streams ========================
 *    Start time      End time     Src IP addr  Port    Dest IP addr  Port       SSRC          Payload  Pkts         Lost   Min Delta(ms)  Mean Delta(ms)   Max Delta(ms)  Min Jitter(ms) Mean Jitter(ms)  Max Jitter(ms) Problems?
 *      0.000000      7.049628      10.1.3.143  5000       10.1.6.18  2006 0xDEE0EE8F            g711A   236     0 (0.0%)          25.112          29.998          34.829           0.002           0.350           0.829
 *      4.416138      6.415853     10.33.6.100  6000     10.33.6.101  6050 0x5A3361B3        g711A, CN    24     0 (0.0%)          19.838          19.999          20.158           0.010           0.039           0.069
 *      0.000000      0.139929     192.168.0.3 49176     192.168.0.1 10000 0x0E05384E         rtpevent    10    -2 (-25.0%)           0.041          15.548          20.072          -1.000           0.000           0.000 X
 * ==============================================================
 * ```
 * Things worth knowing about these numbers:
 * - Start/end times are seconds since the first frame of the capture, not epoch times.
 * - The payload column lists every payload type seen in the stream, comma-separated (`g711A, CN`).
 * - "Lost" is expected (from the sequence-number range) minus received, so duplicates make it
 *   negative; the percentage in parentheses is relative to the expected count.
 * - Jitter is the RFC 3550 interarrival jitter in ms; a min jitter of -1.000 means tshark could not
 *   compute one (e.g. telephone-event packets sharing one timestamp).
 * - "Problems?" is `X` when tshark flagged anything (loss, wrong sequence, timestamp jumps, ...).
 * RTP is only decoded on ports an SDP announced unless heuristic decoding is on (`heuristic: true`).
 */
import { runTshark } from './tshark.js';

export interface TsharkRtpStream {
  /** Seconds since the first frame of the capture. */
  startTime: number;
  endTime: number;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  /** Unsigned 32-bit SSRC. */
  ssrc: number;
  /** Payload type names as tshark prints them, e.g. `g711A`, `g729`, `g711A, CN`, `rtpevent`. */
  payload: string;
  packets: number;
  /** Expected minus received packets; negative with duplicates. */
  lost: number;
  /** The percentage tshark prints next to `lost` (one decimal). */
  lostPercent: number;
  minDeltaMs: number;
  meanDeltaMs: number;
  maxDeltaMs: number;
  /** -1 when tshark had no jitter value. */
  minJitterMs: number;
  meanJitterMs: number;
  maxJitterMs: number;
  /** tshark's "Problems?" column was `X`. */
  problem: boolean;
}

export interface TsharkRtpOptions {
  /** Decode RTP on any UDP port (`-o rtp.heuristic_rtp:TRUE`), not only on ports an SDP announced. */
  heuristic?: boolean;
  /** Decode-as rules, each passed as `-d RULE`, e.g. `['udp.port==40000,rtp']`. */
  decodeAs?: string[];
  /** Kill tshark after this long (runTshark's default otherwise). */
  timeoutMs?: number;
}

const BLOCK_START = /^=+ RTP Streams =+\s*$/;
const BLOCK_END = /^=+\s*$/;
const HEADER =
  /^\s*Start time\s+End time\s+Src IP addr\s+Port\s+Dest IP addr\s+Port\s+SSRC\s+Payload\s+Pkts\s+Lost\s+Min Delta\(ms\)\s+Mean Delta\(ms\)\s+Max Delta\(ms\)\s+Min Jitter\(ms\)\s+Mean Jitter\(ms\)\s+Max Jitter\(ms\)\s+Problems\?\s*$/;
const NUM = '(-?\\d+(?:\\.\\d+)?)';
const ROW = new RegExp(
  `^\\s*${NUM}\\s+${NUM}\\s+(\\S+)\\s+(\\d+)\\s+(\\S+)\\s+(\\d+)\\s+0x([0-9A-Fa-f]{1,8}) (.*?)\\s+(\\d+)\\s+(-?\\d+) \\(${NUM}%\\)` +
    `\\s+${NUM}\\s+${NUM}\\s+${NUM}\\s+${NUM}\\s+${NUM}\\s+${NUM}(?:\\s+(X))?\\s*$`,
);

/**
 * Parses the text of `tshark -q -z rtp,streams` (tshark 4.0 layout). Throws if the RTP Streams block
 * or its column header is missing, or if a line inside the block is not a stream row.
 */
export function parseRtpStreams(text: string): TsharkRtpStream[] {
  const streams: TsharkRtpStream[] = [];
  let state: 'before' | 'header' | 'rows' | 'done' = 'before';
  for (const line of text.split(/\r?\n/)) {
    if (state === 'before') {
      if (BLOCK_START.test(line)) state = 'header';
      continue;
    }
    if (state === 'done') break;
    if (state === 'header') {
      if (!HEADER.test(line)) {
        throw new Error(`tshark rtp,streams: unexpected column header: ${JSON.stringify(line)}`);
      }
      state = 'rows';
      continue;
    }
    if (BLOCK_END.test(line)) {
      state = 'done';
      continue;
    }
    if (line.trim() === '') continue;
    const m = ROW.exec(line);
    if (!m) throw new Error(`tshark rtp,streams: unexpected line: ${JSON.stringify(line)}`);
    const n = (i: number): number => Number(m[i]);
    streams.push({
      startTime: n(1),
      endTime: n(2),
      src: m[3],
      srcPort: n(4),
      dst: m[5],
      dstPort: n(6),
      ssrc: Number.parseInt(m[7], 16) >>> 0,
      payload: m[8].trim(),
      packets: n(9),
      lost: n(10),
      lostPercent: n(11),
      minDeltaMs: n(12),
      meanDeltaMs: n(13),
      maxDeltaMs: n(14),
      minJitterMs: n(15),
      meanJitterMs: n(16),
      maxJitterMs: n(17),
      problem: m[18] === 'X',
    });
  }
  if (state === 'before' || state === 'header') {
    throw new Error(`tshark rtp,streams: no "RTP Streams" block in the output:\n${text.slice(0, 2000)}`);
  }
  return streams;
}

/** Runs `tshark -n -r FILE [-d ...] [-o rtp.heuristic_rtp:TRUE] -q -z rtp,streams` and parses it. */
export async function tsharkRtpStreams(
  file: string,
  options: TsharkRtpOptions = {},
): Promise<TsharkRtpStream[]> {
  const args = ['-n', '-r', file];
  for (const rule of options.decodeAs ?? []) args.push('-d', rule);
  if (options.heuristic) args.push('-o', 'rtp.heuristic_rtp:TRUE');
  args.push('-q', '-z', 'rtp,streams');
  const run = await runTshark(args, { timeoutMs: options.timeoutMs });
  return parseRtpStreams(run.stdout);
}

/** `src:port>dst:port#ssrc`: identifies a stream across tshark's output and another tool's. */
export function streamKey(s: {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  ssrc: number;
}): string {
  return `${s.src}:${s.srcPort}>${s.dst}:${s.dstPort}#${s.ssrc >>> 0}`;
}

/** A stream's figures without its start and end times (tshark counts those from the file's first frame). */
export function streamFigures(s: TsharkRtpStream): Omit<TsharkRtpStream, 'startTime' | 'endTime'> {
  const { startTime: _start, endTime: _end, ...figures } = s;
  return figures;
}
