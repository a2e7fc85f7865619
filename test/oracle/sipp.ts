/**
 * Real SIPp calls over loopback, captured by tcpdump: an outside oracle for call outcomes.
 *
 * One run = tcpdump on `lo` (started first, and awaited until it prints "listening on"), a SIPp UAS,
 * then a SIPp UAC that places `calls` calls at `rate` cps; the UAS stops by itself after `calls` calls
 * (`-m`), tcpdump is stopped with SIGINT once the capture file stops growing. Counters come from each
 * SIPp's `-trace_stat` CSV (last row, cumulative columns); `-trace_screen` and `-trace_err` files stay in
 * the run directory for debugging.
 *
 * Everything stays on 127.0.0.0/8 (enforced): SIP on `uasIp:port` ↔ `uacIp:port`, media on
 * `mediaPort` of both addresses (SIPp's -mi/-mp are always given, otherwise SIPp advertises the host's
 * primary address in SDP and RTP would leave loopback).
 *
 * SIPp behaviours this module works around (sip-tester 3.6.1):
 * - Only SIGUSR1 stops SIPp gracefully (like pressing q: final screen and CSV row written); SIGTERM /
 *   SIGINT exit at once with an empty screen file and no final statistics row.
 * - `-timeout` ends SIPp with exit code 97; exit 1 just means "some calls failed".
 * - tcpdump hands packets over in blocks unless `--immediate-mode`; stopped right after the last call
 *   it silently loses the last packets (the BYE/200 of the last calls), so we use immediate mode and
 *   wait for the file to stop growing before SIGINT.
 * - Every call of the 'rtp' scenario replays the same pcap: same SSRC (0xDEE0EE8F), same sequence
 *   numbers and timestamps, from the same UAC media port. Concurrent calls' streams are therefore
 *   identical even by 5-tuple + SSRC (tshark merges them into one stream with negative loss); only
 *   timing separates them. Use calls spaced > 7.1 s apart (or one call) when per-stream numbers matter.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRoot, SIPP_SCENARIO_DIR } from './tools.js';

/** `test/sipp/uas-NAME.xml`; each file's header says what it does and which UAC it pairs with. */
export type SippUasScenario =
  | 'answer'
  | 'answer-rtp-echo'
  | 'busy'
  | 'unavailable'
  | 'random-fail'
  | 'callee-bye'
  | 'ring-cancel'
  | 'silent'
  | 'auth'
  | 'reinvite-488'
  | 'registrar'
  | 'options';
/** `test/sipp/uac-NAME.xml`. 'register': one REGISTER attempt per call (needs -inf, -au, -ap in uacArgs); 'options': one probe. */
export type SippUacScenario =
  | 'basic'
  | 'rtp'
  | 'callee-bye'
  | 'cancel'
  | 'auth'
  | 'reinvite'
  | 'register'
  | 'options';

export interface SippStats {
  /** SuccessfulCall(C): calls whose scenario ran to the end without a failure mark. */
  successfulCalls: number;
  /** FailedCall(C): rejected (4xx/5xx/6xx in our UAC), timed out, unexpected messages, ... */
  failedCalls: number;
  /** TotalCallCreated: calls started (UAC) or accepted (UAS). */
  createdCalls: number;
  /** Retransmissions(C): messages SIPp resent (UDP only). */
  retransmissions: number;
  /** Last row of the -trace_stat CSV: column name → value (e.g. 'FailedRegexpDoesntMatch(C)'). */
  raw: Record<string, string>;
}

export interface SippRunFiles {
  dir: string;
  tcpdumpLog: string;
  uacScreen: string;
  uacStats: string;
  uacErrors: string;
  uacOutput: string;
  uasScreen: string;
  uasStats: string;
  uasErrors: string;
  uasOutput: string;
  /**
   * SIPp's own per-message logs, written only with `traceMessages`: `-trace_shortmsg` (one line per
   * SIP message sent or received, retransmissions included: time, S/R, Call-ID, CSeq, first line)
   * and `-trace_msg` (the full text of each message).
   */
  uacShortMessages: string;
  uasShortMessages: string;
  uacMessages: string;
  uasMessages: string;
  /** SIPp's -trace_logs files (the scenarios' <log> lines), written only with `traceLogs`. */
  uacLogs: string;
  uasLogs: string;
}

export interface SippRun {
  /** The capture (tcpdump -w) of this run. */
  pcap: string;
  uac: SippStats;
  uas: SippStats;
  /** SIPp exit codes: 0 all calls succeeded, 1 some failed, 97 -timeout reached, 99 no call processed. */
  uacExitCode: number | null;
  uasExitCode: number | null;
  /** The BPF filter tcpdump used. */
  filter: string;
  files: SippRunFiles;
  /** Wall-clock time of the whole run and of the UAC alone (ms). */
  elapsedMs: number;
  uacElapsedMs: number;
  /**
   * Packets tcpdump reported as "dropped by kernel" (its exit statistics); on a loaded machine the
   * capture can miss packets SIPp did send, so exact per-packet expectations only hold when this is 0.
   */
  droppedByKernel: number;
}

export interface SippCallsOptions {
  /** Working directory; each run makes its own `sipp-*` subdirectory in it for logs and the pcap. */
  dir: string;
  /** Number of calls (-m) and call rate in calls per second (-r). */
  calls: number;
  rate: number;
  /** -t u1 (default) or -t t1. */
  transport?: 'udp' | 'tcp';
  /** SIP port of the UAS, also used by the UAC (default 5060; tests use 5080, 6060, ...). */
  port?: number;
  /** Default 'answer-rtp-echo' with uacScenario 'rtp', else 'answer'. */
  uasScenario?: SippUasScenario;
  /** Default 'basic'. */
  uacScenario?: SippUacScenario;
  /** Defaults 127.0.0.2 (UAC) and 127.0.0.3 (UAS); must be in 127.0.0.0/8. */
  uacIp?: string;
  uasIp?: string;
  /**
   * Pause between ACK and BYE (-d). Default 0, or 7500 for uacScenario 'rtp' (the replayed audio
   * lasts 7.05 s and BYE would cut it short).
   */
  callDurationMs?: number;
  /** RTP port of both sides (-mp). Default port + 10000: outside the ephemeral range, distinct per SIP port. */
  mediaPort?: number;
  /** Upper bound for the UAC (SIPp -timeout and our own watchdog). Default: calls/rate + duration + 30 s. */
  timeoutMs?: number;
  /**
   * Call-IDs become `PREFIX-N-PID@UAC_IP` (SIPp -cid_str; N = call number) instead of SIPp's
   * `N-PID@UAC_IP`, so that runs of different scenarios are told apart by Call-ID. Letters, digits,
   * '.', '_' and '-' only.
   */
  callIdPrefix?: string;
  /** Have both SIPps log every SIP message they send or receive (see {@link SippRunFiles}). */
  traceMessages?: boolean;
  /**
   * After both SIPps have exited, send one more non-SIP probe datagram (like the one that opens every
   * capture) so that the capture's clock runs until then: a call left unanswered is then seen to stay
   * unanswered for as long as the UAS waited, not just until its last retransmission.
   */
  endProbe?: boolean;
  /** Calls the UAS takes before it exits (its -m). Default `calls`; fewer makes the peer go silent. */
  uasCalls?: number;
  /** More SIPp arguments for the UAC and the UAS (e.g. `-inf users.csv`, `-au`, `-T2`). */
  uacArgs?: string[];
  /** More SIPp arguments for the UAS. */
  uasArgs?: string[];
  /** Have both SIPps write their scenarios' <log> lines (-trace_logs) to `files.uacLogs`/`uasLogs`. */
  traceLogs?: boolean;
}

const DEFAULT_UAC_IP = '127.0.0.2';
const DEFAULT_UAS_IP = '127.0.0.3';
/**
 * g711a.pcap lasts 7.05 s; the pause before BYE must cover it or the stream is cut short. SIPp's
 * playback thread starts a little after the pause timer and lags on a loaded machine (CI lost the
 * last 10 packets with 450 ms of margin), hence 2 s of margin.
 */
const RTP_CALL_DURATION_MS = 9000;

function assertLoopback(ip: string, what: string): void {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) {
    throw new Error(
      `runSippCalls: ${what} ${JSON.stringify(ip)} is not an IPv4 loopback address (127.0.0.0/8)`,
    );
  }
}

function assertPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`runSippCalls: bad ${what} ${port}`);
}

export interface Proc {
  name: string;
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: boolean;
}

export function startProcess(name: string, command: string, args: string[], logFile: string | null): Proc {
  const fd = logFile ? openSync(logFile, 'a') : null;
  try {
    const child = spawn(command, args, {
      stdio: ['ignore', fd ?? 'ignore', fd ?? 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    const proc: Proc = {
      name,
      child,
      exited: false,
      exit: new Promise((resolveExit) => {
        child.once('error', (error) => {
          proc.exited = true;
          writeIfPossible(logFile, `\n[oracle] ${command} failed to start: ${error.message}\n`);
          resolveExit({ code: null, signal: null });
        });
        child.once('exit', (code, signal) => {
          proc.exited = true;
          resolveExit({ code, signal });
        });
      }),
    };
    return proc;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function writeIfPossible(file: string | null, text: string): void {
  if (!file) return;
  try {
    writeFileSync(file, text, { flag: 'a' });
  } catch {
    // diagnostics only
  }
}

/** Waits up to `ms` for the process to exit; the timer is cancelled so it never holds the event loop. */
export async function waitExit(proc: Proc, ms: number): Promise<boolean> {
  if (proc.exited) return true;
  const cancel = new AbortController();
  const timer = sleep(ms, false, { signal: cancel.signal }).catch(() => false);
  try {
    return await Promise.race([proc.exit.then(() => true), timer]);
  } finally {
    cancel.abort();
  }
}

/** Stops a process we started, by PID: the given signals in turn, then SIGKILL. */
export async function stop(proc: Proc, steps: Array<[NodeJS.Signals, number]>): Promise<void> {
  for (const [signal, waitMs] of steps) {
    if (proc.exited) return;
    try {
      proc.child.kill(signal);
    } catch {
      // already gone
    }
    if (await waitExit(proc, waitMs)) return;
  }
  if (!proc.exited) {
    try {
      proc.child.kill('SIGKILL');
    } catch {
      // already gone
    }
    await waitExit(proc, 2000);
  }
}

/** `127.0.0.3`, 5080 → `0300007F:13D8` as in /proc/net/{udp,tcp} (address in host byte order). */
function procNetAddress(ip: string, port: number): string {
  const octets = ip.split('.').map(Number);
  const ordered = endianness() === 'LE' ? octets.reverse() : octets;
  const hex = ordered.map((o) => o.toString(16).padStart(2, '0')).join('');
  return `${hex}:${port.toString(16).padStart(4, '0')}`.toUpperCase();
}

/** Socket inodes bound to ip:port (UDP) or listening on it (TCP), per /proc/net; 0.0.0.0 counts too. */
export function boundInodes(ip: string, port: number, transport: 'udp' | 'tcp'): string[] {
  const wanted = procNetAddress(ip, port);
  const any = procNetAddress('0.0.0.0', port);
  let text: string;
  try {
    text = readFileSync(`/proc/net/${transport}`, 'utf8');
  } catch {
    return [];
  }
  const inodes: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const local = fields[1]!.toUpperCase();
    if (local !== wanted && local !== any) continue;
    if (transport === 'udp' || fields[3] === '0A') inodes.push(fields[9]!);
  }
  return inodes;
}

/** True when process `pid` owns one of the sockets bound to ip:port (so not someone else's socket). */
export function isBoundBy(
  pid: number | undefined,
  ip: string,
  port: number,
  transport: 'udp' | 'tcp',
): boolean {
  if (pid === undefined) return false;
  const inodes = new Set(boundInodes(ip, port, transport));
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m && inodes.has(m[1]!)) return true;
    } catch {
      // fd closed meanwhile
    }
  }
  return false;
}

export async function waitFor(
  what: string,
  predicate: () => boolean,
  ms: number,
  abortIf?: () => string | null,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (predicate()) return;
    const abort = abortIf?.();
    if (abort) throw new Error(`${what}: ${abort}`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${ms} ms`);
    await sleep(20);
  }
}

/** Waits until the file size has not changed for `quietMs` (at most `maxMs`). */
export async function waitFileQuiet(file: string, quietMs: number, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  let last = -1;
  let since = Date.now();
  while (Date.now() < deadline) {
    const size = existsSync(file) ? statSync(file).size : -1;
    if (size !== last) {
      last = size;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return;
    }
    await sleep(25);
  }
}

export function tail(file: string, chars = 1500): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.length > chars ? `...${text.slice(-chars)}` : text;
  } catch {
    return '(missing)';
  }
}

const INT = (raw: Record<string, string>, key: string): number => {
  const n = Number.parseInt(raw[key] ?? '', 10);
  return Number.isFinite(n) ? n : 0;
};

/** Parses SIPp's -trace_stat CSV (';'-separated, header row first): the last data row. */
export function parseSippStatCsv(text: string): SippStats {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length < 2) throw new Error('SIPp statistics file has no data row');
  const header = lines[0]!.split(';');
  const values = lines[lines.length - 1]!.split(';');
  const raw: Record<string, string> = {};
  header.forEach((name, i) => {
    if (name !== '') raw[name] = values[i] ?? '';
  });
  if (!('SuccessfulCall(C)' in raw)) throw new Error('SIPp statistics file has no SuccessfulCall(C) column');
  return {
    successfulCalls: INT(raw, 'SuccessfulCall(C)'),
    failedCalls: INT(raw, 'FailedCall(C)'),
    createdCalls: INT(raw, 'TotalCallCreated'),
    retransmissions: INT(raw, 'Retransmissions(C)'),
    raw,
  };
}

/**
 * Runs `calls` SIPp calls between two loopback addresses and captures them. Rejects (after stopping
 * every process it started) if a tool is missing, a port is taken, SIPp dies, or a statistics file is
 * missing; failed calls are not an error, they are counted in `uac.failedCalls`.
 */
export async function runSippCalls(options: SippCallsOptions): Promise<SippRun> {
  const started = Date.now();
  const transport = options.transport ?? 'udp';
  const port = options.port ?? 5060;
  const uacScenario = options.uacScenario ?? 'basic';
  const uasScenario =
    options.uasScenario ??
    ({ rtp: 'answer-rtp-echo', register: 'registrar', options: 'options' } as const)[
      uacScenario as 'rtp' | 'register' | 'options'
    ] ??
    'answer';
  const uacIp = options.uacIp ?? DEFAULT_UAC_IP;
  const uasIp = options.uasIp ?? DEFAULT_UAS_IP;
  const mediaPort = options.mediaPort ?? port + 10000;
  const callDurationMs = options.callDurationMs ?? (uacScenario === 'rtp' ? RTP_CALL_DURATION_MS : 0);
  assertLoopback(uacIp, 'uacIp');
  assertLoopback(uasIp, 'uasIp');
  if (uacIp === uasIp)
    throw new Error('runSippCalls: uacIp and uasIp must differ (both sides bind the same ports)');
  assertPort(port, 'port');
  assertPort(mediaPort, 'mediaPort');
  if (mediaPort + 3 > 65535)
    throw new Error(`runSippCalls: mediaPort ${mediaPort} leaves no room for +1..+3`);
  if (!(options.calls >= 1) || !Number.isInteger(options.calls))
    throw new Error('runSippCalls: calls must be an integer >= 1');
  if (!(options.rate > 0)) throw new Error('runSippCalls: rate must be > 0');
  if (options.callIdPrefix !== undefined && !/^[A-Za-z0-9._-]{1,40}$/.test(options.callIdPrefix))
    throw new Error(`runSippCalls: bad callIdPrefix ${JSON.stringify(options.callIdPrefix)}`);
  const timeoutMs =
    options.timeoutMs ?? Math.ceil((options.calls / options.rate) * 1000) + callDurationMs + 30_000;
  const timeoutSec = Math.ceil(timeoutMs / 1000);

  const uacXml = join(SIPP_SCENARIO_DIR, `uac-${uacScenario}.xml`);
  const uasXml = join(SIPP_SCENARIO_DIR, `uas-${uasScenario}.xml`);
  for (const xml of [uacXml, uasXml])
    if (!existsSync(xml)) throw new Error(`runSippCalls: missing scenario ${xml}`);

  const dir = mkdtempSync(join(options.dir, `sipp-${transport}-${port}-${uasScenario}-`));
  const files: SippRunFiles = {
    dir,
    tcpdumpLog: join(dir, 'tcpdump.log'),
    uacScreen: join(dir, 'uac.screen.log'),
    uacStats: join(dir, 'uac.stat.csv'),
    uacErrors: join(dir, 'uac.errors.log'),
    uacOutput: join(dir, 'uac.out.log'),
    uasScreen: join(dir, 'uas.screen.log'),
    uasStats: join(dir, 'uas.stat.csv'),
    uasErrors: join(dir, 'uas.errors.log'),
    uasOutput: join(dir, 'uas.out.log'),
    uacShortMessages: join(dir, 'uac.shortmsg.log'),
    uasShortMessages: join(dir, 'uas.shortmsg.log'),
    uacMessages: join(dir, 'uac.msg.log'),
    uasMessages: join(dir, 'uas.msg.log'),
    uacLogs: join(dir, 'uac.logs.log'),
    uasLogs: join(dir, 'uas.logs.log'),
  };
  const pcap = join(dir, 'capture.pcap');
  // SIP: everything to/from the UAS port (covers the UAC's ephemeral TCP port). Media: both media
  // ports (RTP mediaPort, RTCP +1, rtp_echo's video pair +2/+3). Nothing else, so concurrent runs on
  // other ports do not leak into this capture.
  const filter =
    `host ${uasIp} and host ${uacIp} and ` +
    `(port ${port} or portrange ${mediaPort}-${mediaPort + 3} or icmp)`;

  const procs: Proc[] = [];
  const diagnostics = (): string =>
    [
      `run directory: ${dir}`,
      `tcpdump: ${tail(files.tcpdumpLog, 600)}`,
      `UAC output: ${tail(files.uacOutput, 1200)}`,
      `UAC errors: ${tail(files.uacErrors, 1200)}`,
      `UAS output: ${tail(files.uasOutput, 1200)}`,
      `UAS errors: ${tail(files.uasErrors, 1200)}`,
    ].join('\n');

  for (const [ip, p, what] of [
    [uasIp, port, 'SIP port'],
    [uacIp, port, 'SIP port'],
    [uasIp, mediaPort, 'media port'],
    [uacIp, mediaPort, 'media port'],
  ] as const) {
    if (boundInodes(ip, p, transport === 'tcp' && what === 'SIP port' ? 'tcp' : 'udp').length > 0) {
      throw new Error(
        `runSippCalls: ${what} ${ip}:${p} is already in use (another SIPp run on the same port?)`,
      );
    }
  }

  try {
    // 1. tcpdump, awaited until it is really capturing.
    // -B: a 16 MiB kernel buffer, so a busy machine delays the capture rather than dropping from it.
    const tcpdumpArgs = ['-i', 'lo', '-n', '-U', '--immediate-mode', '-B', '16384', '-s', '0', '-w', pcap];
    // As root, Debian's tcpdump drops to user "tcpdump" and then cannot write into our 0700 directory.
    if (isRoot()) tcpdumpArgs.push('-Z', 'root');
    tcpdumpArgs.push(filter);
    const tcpdump = startProcess('tcpdump', 'tcpdump', tcpdumpArgs, null);
    procs.push(tcpdump);
    let tcpdumpErr = '';
    tcpdump.child.stderr?.setEncoding('utf8');
    tcpdump.child.stderr?.on('data', (chunk: string) => {
      tcpdumpErr += chunk;
      writeIfPossible(files.tcpdumpLog, chunk);
    });
    await waitFor(
      'tcpdump',
      () => /listening on lo/.test(tcpdumpErr),
      10_000,
      () => (tcpdump.exited ? `exited before listening: ${tcpdumpErr.trim()}` : null),
    );
    // "listening on" can precede the moment packets reach the file; under load the first call was
    // seen lost. A probe datagram (not SIP) that matches the filter proves the capture is live.
    await probeCapture(pcap, uacIp, uasIp, port);

    const t = transport === 'udp' ? 'u1' : 't1';
    // biome-ignore format: option/value pairs read better one per line
    const common = (side: 'uac' | 'uas', ip: string): string[] => [
      ...(options.traceMessages ? [
        '-trace_shortmsg', '-shortmessage_file', side === 'uac' ? files.uacShortMessages : files.uasShortMessages,
        '-trace_msg', '-message_file', side === 'uac' ? files.uacMessages : files.uasMessages,
      ] : []),
      '-i', ip,
      '-p', String(port),
      '-mi', ip,
      '-mp', String(mediaPort),
      '-ci', ip,
      '-t', t,
      '-m', String(side === 'uac' ? options.calls : (options.uasCalls ?? options.calls)),
      '-nostdin',
      '-timeout', String(side === 'uac' ? timeoutSec : timeoutSec + 10), // the UAS starts first
      '-trace_screen', '-screen_file', side === 'uac' ? files.uacScreen : files.uasScreen,
      '-trace_stat', '-stf', side === 'uac' ? files.uacStats : files.uasStats,
      '-trace_err', '-error_file', side === 'uac' ? files.uacErrors : files.uasErrors,
      ...(options.traceLogs ? ['-trace_logs', '-log_file', side === 'uac' ? files.uacLogs : files.uasLogs] : []),
      ...((side === 'uac' ? options.uacArgs : options.uasArgs) ?? []),
    ];

    // 2. UAS, awaited until its SIP socket is bound.
    const uasArgs = ['-sf', uasXml, ...common('uas', uasIp)];
    if (uasScenario === 'answer-rtp-echo') uasArgs.push('-rtp_echo');
    const uas = startProcess('uas', 'sipp', uasArgs, files.uasOutput);
    procs.push(uas);
    await waitFor(
      `SIPp UAS on ${uasIp}:${port}/${transport}`,
      () => isBoundBy(uas.child.pid, uasIp, port, transport),
      10_000,
      () => (uas.exited ? `exited early (port taken?)\n${diagnostics()}` : null),
    );

    // 3. UAC: all calls, then it exits by itself (-m).
    // biome-ignore format: option/value pairs
    const uacArgs = [
      '-sf', uacXml,
      ...common('uac', uacIp),
      '-r', String(options.rate),
      '-d', String(callDurationMs),
      ...(options.callIdPrefix ? ['-cid_str', `${options.callIdPrefix}-%u-%p@%s`] : []),
      `${uasIp}:${port}`,
    ];
    const uacStarted = Date.now();
    const uac = startProcess('uac', 'sipp', uacArgs, files.uacOutput);
    procs.push(uac);
    if (!(await waitExit(uac, timeoutMs + 5000))) {
      await stop(uac, [
        ['SIGUSR1', 2000],
        ['SIGUSR1', 1000],
      ]);
      throw new Error(`SIPp UAC did not finish within ${timeoutMs + 5000} ms\n${diagnostics()}`);
    }
    const uacElapsedMs = Date.now() - uacStarted;
    const uacExit = await uac.exit;

    // 4. UAS: it stops by itself after -m calls (+ its 200 ms timewait); otherwise ask it to (SIGUSR1 =
    //    SIPp's graceful quit, which still writes the final statistics), twice, then kill.
    if (!(await waitExit(uas, 3000))) {
      await stop(uas, [
        ['SIGUSR1', 2000],
        ['SIGUSR1', 2000],
      ]);
    }
    const uasExit = await uas.exit;
    if (options.endProbe) await sendProbe(uacIp, uasIp, port);

    // 5. tcpdump: let the last packets reach the file, then SIGINT (it flushes and closes the file).
    await waitFileQuiet(pcap, 300, 5000);
    await stop(tcpdump, [
      ['SIGINT', 5000],
      ['SIGTERM', 2000],
    ]);

    for (const [side, exit] of [
      ['UAC', uacExit],
      ['UAS', uasExit],
    ] as const) {
      if (exit.signal === 'SIGSEGV' || exit.signal === 'SIGABRT' || exit.code === 255 || exit.code === 254) {
        throw new Error(`SIPp ${side} failed (exit ${exit.code ?? exit.signal})\n${diagnostics()}`);
      }
    }
    const readStats = (side: string, file: string): SippStats => {
      if (!existsSync(file)) throw new Error(`SIPp ${side} wrote no statistics (${file})\n${diagnostics()}`);
      try {
        return parseSippStatCsv(readFileSync(file, 'utf8'));
      } catch (e) {
        throw new Error(`SIPp ${side} statistics: ${(e as Error).message}\n${diagnostics()}`);
      }
    };
    if (!existsSync(pcap)) throw new Error(`tcpdump wrote no capture\n${diagnostics()}`);
    return {
      pcap,
      uac: readStats('UAC', files.uacStats),
      uas: readStats('UAS', files.uasStats),
      uacExitCode: uacExit.code,
      uasExitCode: uasExit.code,
      filter,
      files,
      elapsedMs: Date.now() - started,
      uacElapsedMs,
      droppedByKernel: Number(/(\d+) packets? dropped by kernel/.exec(tcpdumpErr)?.[1] ?? 0),
    };
  } finally {
    // Whatever happened: no process of ours outlives the run (UAC, UAS, then tcpdump).
    for (const proc of procs.reverse()) {
      if (!proc.exited) await stop(proc, proc.name === 'tcpdump' ? [['SIGINT', 2000]] : [['SIGUSR1', 1000]]);
    }
  }
}

/** Sends one non-SIP UDP datagram uacIp → uasIp:port (no reply is awaited: nobody listens there). */
async function sendProbe(uacIp: string, uasIp: string, port: number): Promise<void> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((ok, fail) => {
      socket.once('error', fail);
      socket.bind(0, uacIp, () => ok());
    });
    await new Promise<void>((ok, fail) =>
      socket.send('callscope capture probe', port, uasIp, (error) => (error ? fail(error) : ok())),
    );
  } finally {
    socket.close();
  }
}

/** Sends a non-SIP UDP datagram uacIp → uasIp:port until tcpdump has written a packet to `pcap`. */
export async function probeCapture(pcap: string, uacIp: string, uasIp: string, port: number): Promise<void> {
  const socket = createSocket('udp4');
  await new Promise<void>((ok, fail) => {
    socket.once('error', fail);
    socket.bind(0, uacIp, () => ok());
  });
  try {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      socket.send('callscope capture probe', port, uasIp);
      await sleep(50);
      let size = 0;
      try {
        size = statSync(pcap).size;
      } catch {
        size = 0;
      }
      if (size > 24) return;
    }
    throw new Error(`runSippCalls: tcpdump wrote no probe packet to ${pcap} within 10 s`);
  } finally {
    socket.close();
  }
}
