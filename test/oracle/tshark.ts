/**
 * tshark as an outside oracle: `tshark -n -r FILE -q -z sip,stat` parsed into {@link SipCounts}.
 *
 * What tshark 4.0 prints (and what this parser relies on):
 * ```
 * Number of SIP messages: 32
 * Number of resent SIP messages: 1
 *
 * * SIP Status Codes in reply packets
 *   SIP 200 OK              :    13 Packets
 *   SIP 183 Session Progress :     4 Packets
 *   SIP 499 Client Error - Others :     3 Packets
 *
 * * List of SIP Request methods
 *   INVITE          :     2 Packets
 * ```
 * Status codes tshark has no name for are NOT listed under their own number: they are summed into a
 * per-class bucket printed as `x99 <Class> - Others` (1xx "Informational", 2xx "Success", 3xx
 * "Redirection", 4xx "Client Error", 5xx "Server Error", 6xx "Global Failure"). For example 419, 499
 * and 299 all appear as `SIP 499 Client Error - Others` / `SIP 299 Success - Others`, and so does
 * RFC 6228's 199 (tshark 4.0 does not know it). A real 499 and an unknown 4xx are indistinguishable in
 * this output. {@link tsharkSipStat} reports the bucket under the printed number (`responses['499']`);
 * use {@link tsharkKnownStatusCodes} + {@link foldToTsharkStatusCodes} to fold another tool's counts the
 * same way before comparing, and {@link parseTsharkSipStat}'s `responseLines` to see which keys were buckets.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SipCounts } from '../../core/sip-counts.js';
import { removeTmpDir, tmpDir } from './tools.js';

export interface TsharkSipOptions {
  /** Decode-as rules, each passed as `-d RULE`, e.g. `['tcp.port==6060,sip']`. */
  decodeAs?: string[];
  /** More tshark arguments, inserted before `-q -z ...` (e.g. `['-o', 'rtp.heuristic_rtp:TRUE']`). */
  extraArgs?: string[];
  /** Kill tshark after this long (default 120 s; a 1M-packet file takes ~7 s on one core). */
  timeoutMs?: number;
  /**
   * Accept a capture that ends in the middle of a packet (tshark exits 2 but still prints the
   * statistics). Default false: such a file throws.
   */
  allowCutShort?: boolean;
}

export interface TsharkRun {
  stdout: string;
  /** stderr without tshark's "Running as user root" banner. */
  stderr: string;
}

/** One line of the status-code section as tshark printed it. */
export interface TsharkResponseLine {
  code: string;
  name: string;
  packets: number;
  /** True for the per-class `x99 ... - Others` lines that sum every code tshark has no name for. */
  bucket: boolean;
}

export interface TsharkSipStat {
  counts: SipCounts;
  responseLines: TsharkResponseLine[];
}

const DEFAULT_TIMEOUT_MS = 120_000;

function cleanStderr(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !/^Running as user "root"/.test(l))
    .join('\n')
    .trim();
}

/** Runs tshark with execFile (no shell); rejects with tshark's stderr in the message. */
export function runTshark(
  args: string[],
  options: { timeoutMs?: number; acceptExit?: (code: number, run: TsharkRun) => boolean } = {},
): Promise<TsharkRun> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      'tshark',
      args,
      {
        timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: 256 * 1024 * 1024,
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C' },
      },
      (error, stdout, stderr) => {
        const run = { stdout, stderr: cleanStderr(stderr) };
        if (!error) {
          resolvePromise(run);
          return;
        }
        const e = error as NodeJS.ErrnoException & {
          code?: number | string;
          killed?: boolean;
          signal?: string;
        };
        if (typeof e.code === 'number' && options.acceptExit?.(e.code, run)) {
          resolvePromise(run);
          return;
        }
        let why: string;
        if (e.code === 'ENOENT') why = 'tshark is not installed (Debian package "tshark")';
        else if (e.killed || e.signal)
          why = `killed by ${e.signal ?? 'signal'} (timeout ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms?)`;
        else why = `exit code ${String(e.code)}`;
        reject(new Error(`tshark ${args.join(' ')}: ${why}${run.stderr ? `\n${run.stderr}` : ''}`));
      },
    );
  });
}

function commonArgs(file: string, options: TsharkSipOptions): string[] {
  const args = ['-n', '-r', file];
  for (const rule of options.decodeAs ?? []) args.push('-d', rule);
  args.push(...(options.extraArgs ?? []));
  return args;
}

const RESPONSE_LINE = /^\s+SIP (\d{3}) (.*?)\s*:\s*(\d+) Packets\s*$/;
const METHOD_LINE = /^\s+(\S+)\s*:\s*(\d+) Packets\s*$/;

/** Parses the text of `tshark -q -z sip,stat`. Throws if the SIP statistics block is missing. */
export function parseTsharkSipStat(text: string): TsharkSipStat {
  const counts: SipCounts = { messages: 0, retransmissions: 0, requests: {}, responses: {} };
  const responseLines: TsharkResponseLine[] = [];
  let sawHeader = false;
  let sawTotal = false;
  let section: 'none' | 'responses' | 'requests' = 'none';
  for (const line of text.split(/\r?\n/)) {
    if (/^SIP Statistics\s*$/.test(line)) {
      sawHeader = true;
      continue;
    }
    let m = /^Number of SIP messages:\s*(\d+)/.exec(line);
    if (m) {
      counts.messages = Number(m[1]);
      sawTotal = true;
      continue;
    }
    m = /^Number of resent SIP messages:\s*(\d+)/.exec(line);
    if (m) {
      counts.retransmissions = Number(m[1]);
      continue;
    }
    if (/^\* SIP Status Codes/.test(line)) {
      section = 'responses';
      continue;
    }
    if (/^\* List of SIP Request methods/.test(line)) {
      section = 'requests';
      continue;
    }
    if (/^\*/.test(line) || /^=+\s*$/.test(line)) {
      section = 'none';
      continue;
    }
    if (section === 'responses') {
      m = RESPONSE_LINE.exec(line);
      if (m) {
        const [, code, name, packets] = m as unknown as [string, string, string, string];
        const n = Number(packets);
        counts.responses[code] = (counts.responses[code] ?? 0) + n;
        responseLines.push({ code, name, packets: n, bucket: / - Others$/.test(name) });
      } else if (line.trim() !== '') {
        throw new Error(
          `tshark sip,stat: unexpected line in the status code section: ${JSON.stringify(line)}`,
        );
      }
    } else if (section === 'requests') {
      m = METHOD_LINE.exec(line);
      if (m) {
        const [, method, packets] = m as unknown as [string, string, string];
        counts.requests[method] = (counts.requests[method] ?? 0) + Number(packets);
      } else if (line.trim() !== '') {
        throw new Error(
          `tshark sip,stat: unexpected line in the request method section: ${JSON.stringify(line)}`,
        );
      }
    }
  }
  if (!sawHeader || !sawTotal) {
    throw new Error(`tshark sip,stat: no "SIP Statistics" block in the output:\n${text.slice(0, 2000)}`);
  }
  return { counts, responseLines };
}

/** Runs `tshark -n -r FILE [-d ...] [extra] -q -z sip,stat` and returns the full parse. */
export async function tsharkSipStatDetailed(
  file: string,
  options: TsharkSipOptions = {},
): Promise<TsharkSipStat> {
  const args = [...commonArgs(file, options), '-q', '-z', 'sip,stat'];
  const run = await runTshark(args, {
    timeoutMs: options.timeoutMs,
    acceptExit: (code, r) =>
      options.allowCutShort === true &&
      code === 2 &&
      /cut short/.test(r.stderr) &&
      /SIP Statistics/.test(r.stdout),
  });
  return parseTsharkSipStat(run.stdout);
}

/**
 * tshark's SIP message counts for a capture: messages, resent messages, per request method, per
 * status code (string keys; unknown codes appear as their class's `x99` bucket, see the module doc).
 * Returns exactly the {@link SipCounts} fields, so `expect(ours).toEqual(await tsharkSipStat(f))` works.
 */
export async function tsharkSipStat(file: string, options: TsharkSipOptions = {}): Promise<SipCounts> {
  return (await tsharkSipStatDetailed(file, options)).counts;
}

/**
 * Number of packets matching a display filter, e.g. `tsharkCount(pcap, 'rtp', { extraArgs: ['-o',
 * 'rtp.heuristic_rtp:TRUE'] })`.
 */
export async function tsharkCount(
  file: string,
  displayFilter: string,
  options: TsharkSipOptions = {},
): Promise<number> {
  const args = [...commonArgs(file, options), '-Y', displayFilter, '-T', 'fields', '-e', 'frame.number'];
  const run = await runTshark(args, { timeoutMs: options.timeoutMs });
  return run.stdout.split('\n').filter((l) => l.trim() !== '').length;
}

/**
 * One row per packet matching `displayFilter`, with the values of `fields` (the first occurrence of
 * each; '' when absent), e.g. `tsharkFields(pcap, 'sip', ['frame.time_epoch', 'sip.Call-ID'])`.
 */
export async function tsharkFields(
  file: string,
  displayFilter: string,
  fields: string[],
  options: TsharkSipOptions = {},
): Promise<string[][]> {
  const args = [...commonArgs(file, options), '-Y', displayFilter, '-T', 'fields', '-E', 'separator=/t'];
  args.push('-E', 'occurrence=f');
  for (const field of fields) args.push('-e', field);
  const run = await runTshark(args, { timeoutMs: options.timeoutMs });
  return run.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}

// ---------------------------------------------------------------------------------------------------
// Which status codes does tshark name? Asked of tshark itself, once per process.

let knownCodes: Promise<ReadonlySet<number>> | null = null;

/**
 * The status codes (100–699) that tshark's `sip,stat` lists under their own number. Found by feeding
 * tshark a generated capture with one response of every code and reading back which codes it printed
 * with a name (≈1 s, cached per process). Everything else lands in the class's x99 "Others" bucket.
 */
export function tsharkKnownStatusCodes(): Promise<ReadonlySet<number>> {
  knownCodes ??= probeKnownStatusCodes().catch((e: unknown) => {
    knownCodes = null;
    throw e;
  });
  return knownCodes;
}

async function probeKnownStatusCodes(): Promise<ReadonlySet<number>> {
  const dir = tmpDir('callscope-tshark-probe-');
  try {
    const file = join(dir, 'codes.pcap');
    const payloads: string[] = [];
    for (let code = 100; code <= 699; code++) {
      payloads.push(
        `SIP/2.0 ${code} Probe\r\n` +
          `Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-probe-${code}\r\n` +
          'From: <sip:probe@127.0.0.2>;tag=a\r\n' +
          `To: <sip:probe@127.0.0.3>;tag=b${code}\r\n` +
          `Call-ID: probe-${code}@127.0.0.2\r\n` +
          'CSeq: 1 INVITE\r\n' +
          'Content-Length: 0\r\n\r\n',
      );
    }
    writeSipUdpPcap(file, payloads);
    const { responseLines } = await tsharkSipStatDetailed(file);
    const known = new Set<number>();
    for (const line of responseLines) if (!line.bucket && line.packets === 1) known.add(Number(line.code));
    if (!known.has(200) || !known.has(486)) {
      throw new Error(`tshark status-code probe looks wrong: ${JSON.stringify(responseLines.slice(0, 10))}`);
    }
    return known;
  } finally {
    removeTmpDir(dir);
  }
}

/** The key under which tshark's sip,stat reports a response with this status code. */
export function tsharkStatusKey(code: number, known: ReadonlySet<number>): string {
  if (known.has(code)) return String(code);
  return String(Math.floor(code / 100) * 100 + 99);
}

/** Re-keys `counts.responses` the way tshark reports them (unknown codes summed into x99 buckets). */
export function foldToTsharkStatusCodes(counts: SipCounts, known: ReadonlySet<number>): SipCounts {
  const responses: Record<string, number> = {};
  for (const [code, n] of Object.entries(counts.responses)) {
    const key = /^\d{3}$/.test(code) ? tsharkStatusKey(Number(code), known) : code;
    responses[key] = (responses[key] ?? 0) + n;
  }
  return { ...counts, requests: { ...counts.requests }, responses };
}

/**
 * Writes a classic pcap (LINKTYPE_RAW, IPv4) with one UDP datagram 127.0.0.2:5060 → 127.0.0.3:5060 per
 * payload, 10 ms apart. Independent of the product's writer on purpose.
 */
export function writeSipUdpPcap(file: string, payloads: string[], startSec = 1_700_000_000): void {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(101, 20); // LINKTYPE_RAW
  parts.push(header);
  payloads.forEach((text, i) => {
    const body = Buffer.from(text, 'utf8');
    const packet = Buffer.alloc(28 + body.length);
    packet[0] = 0x45;
    packet.writeUInt16BE(packet.length, 2);
    packet.writeUInt16BE(i & 0xffff, 4);
    packet[8] = 64;
    packet[9] = 17;
    packet.set([127, 0, 0, 2], 12);
    packet.set([127, 0, 0, 3], 16);
    let sum = 0;
    for (let o = 0; o < 20; o += 2) sum += packet.readUInt16BE(o);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    packet.writeUInt16BE(~sum & 0xffff, 10);
    packet.writeUInt16BE(5060, 20);
    packet.writeUInt16BE(5060, 22);
    packet.writeUInt16BE(8 + body.length, 24); // UDP checksum 0: not computed
    body.copy(packet, 28);
    const record = Buffer.alloc(16);
    const usec = i * 10_000;
    record.writeUInt32LE(startSec + Math.floor(usec / 1_000_000), 0);
    record.writeUInt32LE(usec % 1_000_000, 4);
    record.writeUInt32LE(packet.length, 8);
    record.writeUInt32LE(packet.length, 12);
    parts.push(record, packet);
  });
  writeFileSync(file, Buffer.concat(parts));
}

/**
 * tshark's SIP messages in frame order, each as [Call-ID, CSeq] (whitespace in the CSeq collapsed);
 * a frame carrying several (TCP, WebSocket) gives each of them.
 */
export async function tsharkSipMessages(
  file: string,
  options: TsharkSipOptions = {},
): Promise<Array<[string, string]>> {
  const args = [...commonArgs(file, options), '-Y', 'sip', '-T', 'fields', '-E', 'occurrence=a'];
  args.push('-E', 'aggregator=\u0001', '-e', 'sip.Call-ID', '-e', 'sip.CSeq');
  const run = await runTshark(args, { timeoutMs: options.timeoutMs });
  const out: Array<[string, string]> = [];
  for (const line of run.stdout.split('\n')) {
    if (line === '') continue;
    const [ids = '', cseqs = ''] = line.split('\t');
    const idList = ids.split('\u0001');
    for (const [i, cseq] of cseqs.split('\u0001').entries())
      out.push([idList[i] ?? idList[0] ?? '', cseq.trim().replace(/\s+/g, ' ')]);
  }
  return out;
}
