/**
 * A real Kamailio dispatcher in front of SIPp destinations, over loopback, captured by tcpdump: an
 * outside oracle for what a proxy does to calls (failover, timeouts, probes, accounting, HEP).
 *
 * One run (everything on 127.0.0.0/8, enforced; one UDP port for every SIP socket of the run):
 * - tcpdump on `lo` with a BPF filter on the run's addresses and port (HEP to the collector excluded);
 * - one SIPp UAS per destination (test/sipp/uas-routed-*.xml), each answering the proxy's OPTIONS:
 *   'answer' (180, 200, then BYE/200), 'unavailable' (100, 503), 'silent' (no answer to INVITE at all);
 * - Kamailio (test/kamailio/dispatcher.cfg: tm, rr, dispatcher set 1 round robin over the destinations
 *   in the order given, failover on 5xx and on timeout, OPTIONS probes, acc to its log, siptrace HEP3);
 *   calls start once every destination has answered a probe;
 * - a SIPp UAC (test/sipp/uac-routed.xml) placing `calls` calls at `rate` cps through the proxy;
 * - then Kamailio stops (SIGTERM), the UASes (SIGUSR1, twice), tcpdump (SIGINT once the file is quiet).
 * Every process is started by this module and stopped by PID in `finally`, also on failure.
 *
 * What it returns is ground truth read from the tools themselves, never a judgement of our code:
 * SIPp's counters (-trace_stat), every call as the caller saw it and every INVITE/OPTIONS as each
 * destination saw it (SIPp's -trace_shortmsg logs), and Kamailio's acc records and dispatch decisions
 * (its log). The capture and all logs stay in the run directory.
 *
 * Kamailio 5.6 behaviours observed here (see also the comments in dispatcher.cfg):
 * - Round robin over [answer, unavailable, silent] starts at the last destination and walks backwards
 *   (silent, unavailable, answer, silent, ...) and is shared by Kamailio's worker processes, so with the
 *   default 2 attempts a third of the calls fail (silent: 408 after fr_timer, then 503), a third are
 *   answered after one failover (503, then 200) and a third at once. Read the truth; do not assume it.
 * - When the last branch fails with 503 the caller gets 500 (tm never relays 503, RFC 3261 16.7) with
 *   the reason phrase of the 503 ("500 Service Unavailable"); acc logs it as "500 Server Internal Error".
 * - acc logs a failed branch as "call missed" (log_missed_flag, set again before each failover); a
 *   timed-out branch has code 408 and a To-tag Kamailio made up. The final negative answer is logged as
 *   "transaction answered" with its code (failed_transaction_flag adds no line of its own when
 *   log_flag is set). acc's $du is the first destination even for later branches: the config puts
 *   the branch's destination in `dst`.
 * - Kamailio binds its UDP socket with SO_REUSEADDR: a second Kamailio on the same address and port
 *   starts without error and the two share the traffic. Ports are therefore checked free and locked
 *   per run (a lock file per port under the OS temp dir).
 * - A silent destination gets the INVITE and one retransmission (timer A, 500 ms) before a 1.5 s
 *   fr_timer fires; the proxy sends no CANCEL for a branch that never answered.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  boundInodes,
  isBoundBy,
  type Proc,
  parseSippStatCsv,
  probeCapture,
  type SippStats,
  startProcess,
  stop,
  tail,
  waitExit,
  waitFileQuiet,
  waitFor,
} from './sipp.js';
import { isRoot, REPO_ROOT, type Requirement, ROOT, requirement, SIPP_SCENARIO_DIR, tool } from './tools.js';

/** The proxy's configuration (symbols given with -A by {@link kamailioArgs}). */
export const KAMAILIO_CONFIG: string = join(REPO_ROOT, 'test', 'kamailio', 'dispatcher.cfg');

/** A destination's behaviour: its SIPp scenario is `test/sipp/uas-routed-<kind>.xml`. */
export type KamailioDestinationKind = 'answer' | 'unavailable' | 'silent';

export interface KamailioHepOptions {
  /** UDP port of the collector; the caller listens there (the harness does not). */
  port: number;
  host?: '127.0.0.1';
  /**
   * 'script': `sip_trace()` from the config: every new INVITE/BYE transaction after the retransmission
   * check ("t" mode: the request as received, each relayed copy, every reply received and sent, the
   * hop-by-hop ACKs of negative answers) and each 2xx ACK as received (WITHINDLG). Not traced:
   * retransmissions, the dispatcher's own OPTIONS probes and their answers, the relayed 2xx ACK.
   * 'mirror': siptrace's trace_mode=1: every SIP datagram Kamailio receives or sends, byte for byte.
   */
  mode: 'script' | 'mirror';
  /** Also hlog() a HEP type-100 event per dispatch and per failed branch (correlation id = Call-ID). */
  hlog?: boolean;
}

export interface KamailioCallsOptions {
  /** Working directory; each run makes its own `kamailio-*` subdirectory in it. */
  dir: string;
  /** Calls the UAC places (default 30) and at what rate in calls per second (default 15). */
  calls?: number;
  rate?: number;
  /** Destinations of dispatcher set 1, in list order (default ['answer', 'unavailable', 'silent']). */
  destinations?: KamailioDestinationKind[];
  /** Destinations one call may try: ds_select_dst's limit (default 2; at most destinations.length). */
  maxAttempts?: number;
  /** tm's fr_timer: ms a branch may stay without any reply before it fails with 408 (default 1500). */
  frTimerMs?: number;
  /** tm's fr_inv_timer: ms a branch that sent 1xx may stay without a final reply (default 5000). */
  frInvTimerMs?: number;
  /** dispatcher's ds_ping_interval in whole seconds (default 1). */
  pingIntervalSec?: number;
  /** Pause between ACK and BYE of an answered call (SIPp -d of the UAC; default 1000). */
  callDurationMs?: number;
  /** HEP3 from Kamailio's siptrace to 127.0.0.1:port. Default: none. */
  hep?: KamailioHepOptions;
  /** Addresses (127.0.0.0/8): the proxy (default 127.0.2.1), the UAC (127.0.2.2), destination i (127.0.2.(3+i)). */
  proxyIp?: string;
  uacIp?: string;
  destinationIps?: string[];
  /**
   * The run's UDP port (every SIP socket; media sockets of SIPp on port+2..+5). Default: a free one
   * between 21000 and 29990 (multiples of 10), locked for the run so parallel runs never share it.
   */
  port?: number;
  /** Upper bound for the UAC (SIPp -timeout and our watchdog). Default: calls/rate + 30 s. */
  timeoutMs?: number;
}

/** One line of a SIPp `-trace_shortmsg` log. */
export interface SippShortMessage {
  /** Epoch seconds (µs resolution) when SIPp sent or received it. */
  time: number;
  direction: 'sent' | 'received';
  callId: string;
  cseq: number;
  cseqMethod: string;
  /** The request method, or null for a response. */
  method: string | null;
  /** The status code, or null for a request. */
  status: number | null;
  /** Request-URI or reason phrase. */
  rest: string;
}

/** One call as the caller (SIPp UAC) saw it. */
export interface KamailioCallerCall {
  callId: string;
  /** When the first INVITE was sent (epoch s), and how often it was sent (1 + retransmissions). */
  invitedAt: number;
  invitesSent: number;
  /** 1xx codes received for the INVITE, in order. */
  provisional: number[];
  /** The first final answer (>= 200) to the INVITE, or null when none came. */
  finalStatus: number | null;
  finalReason: string | null;
  finalAt: number | null;
  /** Final answers received in all (> 1: retransmitted by the proxy). */
  finalsReceived: number;
  ackSent: boolean;
  /** The final answer to the caller's BYE (null: no BYE, or no answer). */
  byeStatus: number | null;
  /** Destinations whose SIPp log shows this call's INVITE, in the order it reached them (by name). */
  destinations: string[];
}

/** One call as one destination saw it. */
export interface KamailioDestinationInvite {
  callId: string;
  /** First arrival (epoch s), and INVITEs received in all (1 + the proxy's retransmissions). */
  firstAt: number;
  received: number;
  /** The final status this destination sent, or null (the silent one). */
  finalSent: number | null;
  ackReceived: boolean;
  byeReceived: boolean;
}

export interface KamailioDestinationTruth {
  /** `answer`, `unavailable`, `silent` (with `-2`, `-3`... when a kind appears again). */
  name: string;
  kind: KamailioDestinationKind;
  /** The dispatcher URI, e.g. `sip:127.0.2.3:21000`. */
  uri: string;
  ip: string;
  port: number;
  invites: KamailioDestinationInvite[];
  /** The proxy's OPTIONS probes that reached this destination, and the answers it sent. */
  optionsReceived: number;
  optionsAnswered: number;
  /** Time of the first probe (epoch s), or null. */
  firstOptionsAt: number | null;
  /** SIPp's counters (each OPTIONS is a "call" of its own here). */
  stats: SippStats;
  exitCode: number | null;
  shortMessages: string;
}

/** One acc line of Kamailio's log. */
export interface KamailioAccRecord {
  /** `transaction answered` (the final answer), `call missed` (a failed branch), `request accounted` (acc_log_request). */
  event: 'transaction answered' | 'call missed' | 'request accounted';
  method: string;
  callId: string;
  status: number;
  reason: string;
  fromTag: string;
  toTag: string;
  /** Epoch seconds with milliseconds (acc's time_mode 2). */
  time?: number;
  /** The destination of the branch (INVITE: the dispatcher URI; BYE: the Request-URI), if any. */
  dst?: string;
  /** Every key=value of the line (timestamp, src_ip, src_port, ruri, du, ...). */
  fields: Record<string, string>;
}

/** One `route(DISPATCH)`: an INVITE branch sent to a destination (first choice or failover). */
export interface KamailioDispatch {
  callId: string;
  dst: string;
}

export interface KamailioRunFiles {
  dir: string;
  config: string;
  dispatcherList: string;
  kamailioLog: string;
  tcpdumpLog: string;
  uacStats: string;
  uacShortMessages: string;
  uacMessages: string;
  uacErrors: string;
  uacScreen: string;
  uacOutput: string;
}

export interface KamailioRun {
  /** The capture (tcpdump -w) and the BPF filter it used. */
  pcap: string;
  filter: string;
  /**
   * tshark decode-as rules for the run's port (`-d RULE` each). Needed: tshark dissects some ports of
   * the range by number (UDP 27910 is read as Quake 2, not SIP).
   */
  decodeAs: string[];
  files: KamailioRunFiles;
  proxy: { ip: string; port: number; uri: string };
  uacIp: string;
  hep: Required<KamailioHepOptions> | null;
  /** SIPp UAC counters and exit code (0 all calls succeeded, 1 some failed, 97 -timeout). */
  uac: SippStats;
  uacExitCode: number | null;
  /** Every call the UAC placed, in the order it placed them. */
  calls: KamailioCallerCall[];
  destinations: KamailioDestinationTruth[];
  /** Kamailio's acc lines and its dispatch decisions, in log order. */
  acc: KamailioAccRecord[];
  dispatches: KamailioDispatch[];
  /** OPTIONS probes received by all destinations (their SIPp logs). */
  optionsProbes: number;
  kamailioExit: { code: number | null; signal: NodeJS.Signals | null };
  /** Packets tcpdump reported as dropped by the kernel (exact counts only hold when 0). */
  droppedByKernel: number;
  /** Wall-clock time of the whole run, and of the UAC alone (ms). */
  elapsedMs: number;
  uacElapsedMs: number;
}

const DEFAULT_DESTINATIONS: KamailioDestinationKind[] = ['answer', 'unavailable', 'silent'];
const PORT_FIRST = 21_000;
const PORT_SLOTS = 900; // 21000, 21010, ..., 29990
const LOCK_DIR = join(tmpdir(), `callscope-kamailio-ports-${process.getuid?.() ?? 'u'}`);

function fail(message: string): never {
  throw new Error(`runKamailioCalls: ${message}`);
}

function assertLoopback(ip: string, what: string): void {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m || m.slice(1).some((o) => Number(o) > 255))
    fail(`${what} ${JSON.stringify(ip)} is not an IPv4 loopback address (127.0.0.0/8)`);
}

function assertInteger(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max)
    fail(`${what} must be an integer in ${min}..${max}, not ${value}`);
}

/** The arguments of `kamailio` for {@link KAMAILIO_CONFIG} (`check`: `-c`, only parse and load). */
export function kamailioArgs(p: {
  proxyIp: string;
  port: number;
  dispatcherList: string;
  maxAttempts: number;
  frTimerMs: number;
  frInvTimerMs: number;
  pingIntervalSec: number;
  hep: Required<KamailioHepOptions> | null;
  dir?: string;
  check?: boolean;
}): string[] {
  const args = p.check
    ? ['-c']
    : ['-DD', '-E', '-w', p.dir ?? '.', '-Y', p.dir ?? '.', '-m', '32', '-M', '8'];
  // biome-ignore format: symbol per line
  args.push(
    '-f', KAMAILIO_CONFIG,
    '-A', `LISTEN=udp:${p.proxyIp}:${p.port}`,
    '-A', `DS_LIST="${p.dispatcherList}"`,
    '-A', `DS_ATTEMPTS="${p.maxAttempts}"`,
    '-A', `DS_PING_INTERVAL=${p.pingIntervalSec}`,
    '-A', `FR_TIMER=${p.frTimerMs}`,
    '-A', `FR_INV_TIMER=${p.frInvTimerMs}`,
  );
  if (p.hep) {
    args.push('-A', 'WITH_HEP', '-A', `HEP_URI="sip:${p.hep.host}:${p.hep.port}"`);
    args.push('-A', p.hep.mode === 'mirror' ? 'HEP_MIRROR' : 'HEP_SCRIPT');
    if (p.hep.hlog) args.push('-A', 'WITH_HLOG');
  }
  return args;
}

/**
 * Kamailio can load {@link KAMAILIO_CONFIG} with every module it uses (tm, tmx, sl, rr, pv, maxfwd,
 * textops, siputils, xlog, kex, acc, dispatcher, siptrace), checked with `kamailio -c` in both HEP modes.
 */
export const KAMAILIO_CONFIG_LOADS: Requirement = requirement(
  'kamailio-config',
  'apt-get install kamailio (the modules test/kamailio/dispatcher.cfg loads are all in that package)',
  () => {
    const why = tool('kamailio').missing();
    if (why !== null) return `kamailio: ${why}`;
    for (const mode of ['script', 'mirror'] as const) {
      const args = kamailioArgs({
        proxyIp: '127.0.2.1',
        port: 21000,
        dispatcherList: '/nonexistent/dispatcher.list',
        maxAttempts: 2,
        frTimerMs: 1500,
        frInvTimerMs: 5000,
        pingIntervalSec: 1,
        hep: { port: 9060, host: '127.0.0.1', mode, hlog: true },
        check: true,
      });
      const r = spawnSync('kamailio', args, { encoding: 'utf8', timeout: 20_000 });
      if (r.status !== 0) {
        const why = `${r.stderr ?? ''}${r.stdout ?? ''}`.split('\n').filter((l) => /ERROR|CRITICAL/.test(l));
        return `kamailio -c ${KAMAILIO_CONFIG} (HEP ${mode}) failed: ${why.slice(0, 3).join(' | ') || `exit ${r.status}`}`;
      }
    }
    return null;
  },
);

/** What a Kamailio run needs: kamailio (and its config loading), SIPp, tcpdump, and root for tcpdump. */
export const KAMAILIO_LAB: readonly Requirement[] = [
  tool('kamailio'),
  KAMAILIO_CONFIG_LOADS,
  tool('sipp'),
  tool('tcpdump'),
  ROOT,
];

// ---------------------------------------------------------------------------------------------------
// Parsers (pure; exported for tests and for other oracles).

const SHORT_LINE = /^\S+\t\S+\t(\d+(?:\.\d+)?)\t([SR])\t([^\t]*)\t([^\t]*)\t(.*)$/;

/**
 * Parses SIPp's `-trace_shortmsg` log (SIPp 3.6: `date TAB time TAB epoch TAB S|R TAB Call-ID TAB
 * CSeq:N METHOD TAB first line`, one line per message sent or received, retransmissions included).
 * Lines that do not have this shape are skipped.
 */
export function parseSippShortMessages(text: string): SippShortMessage[] {
  const out: SippShortMessage[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = SHORT_LINE.exec(line);
    if (!m) continue;
    const [, epoch, dir, callId, cseqText, first] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const cseq = /^CSeq:\s*(\d+)\s+(\S+)/i.exec(cseqText.trim());
    const response = /^SIP\/2\.0\s+(\d{3})\s*(.*)$/.exec(first.trim());
    const request = /^([A-Z]+)\s+(\S+)\s+SIP\/2\.0$/.exec(first.trim());
    if (!response && !request) continue;
    out.push({
      time: Number(epoch),
      direction: dir === 'S' ? 'sent' : 'received',
      callId,
      cseq: cseq ? Number(cseq[1]) : 0,
      cseqMethod: cseq ? cseq[2]! : '',
      method: request ? request[1]! : null,
      status: response ? Number(response[1]) : null,
      rest: response ? response[2]! : request![2]!,
    });
  }
  return out;
}

/** Every call of a UAC's short-message log, in the order it was first invited. */
export function callerTruth(messages: readonly SippShortMessage[]): KamailioCallerCall[] {
  const calls = new Map<string, KamailioCallerCall>();
  const get = (m: SippShortMessage): KamailioCallerCall => {
    let c = calls.get(m.callId);
    if (!c) {
      c = {
        callId: m.callId,
        invitedAt: m.time,
        invitesSent: 0,
        provisional: [],
        finalStatus: null,
        finalReason: null,
        finalAt: null,
        finalsReceived: 0,
        ackSent: false,
        byeStatus: null,
        destinations: [],
      };
      calls.set(m.callId, c);
    }
    return c;
  };
  for (const m of messages) {
    if (m.direction === 'sent' && m.method === 'INVITE') {
      const c = get(m);
      if (c.invitesSent === 0) c.invitedAt = m.time;
      c.invitesSent++;
    } else if (m.direction === 'sent' && m.method === 'ACK') {
      get(m).ackSent = true;
    } else if (m.direction === 'received' && m.status !== null && m.cseqMethod === 'INVITE') {
      const c = get(m);
      if (m.status < 200) c.provisional.push(m.status);
      else {
        c.finalsReceived++;
        if (c.finalStatus === null) {
          c.finalStatus = m.status;
          c.finalReason = m.rest;
          c.finalAt = m.time;
        }
      }
    } else if (m.direction === 'received' && m.status !== null && m.status >= 200 && m.cseqMethod === 'BYE') {
      const c = get(m);
      c.byeStatus ??= m.status;
    }
  }
  return [...calls.values()].sort((a, b) => a.invitedAt - b.invitedAt);
}

/** What one destination's short-message log shows: the INVITEs per call, and the OPTIONS probes. */
export function destinationTruth(messages: readonly SippShortMessage[]): {
  invites: KamailioDestinationInvite[];
  optionsReceived: number;
  optionsAnswered: number;
  firstOptionsAt: number | null;
} {
  const invites = new Map<string, KamailioDestinationInvite>();
  let optionsReceived = 0;
  let optionsAnswered = 0;
  let firstOptionsAt: number | null = null;
  for (const m of messages) {
    if (m.direction === 'received' && m.method === 'OPTIONS') {
      optionsReceived++;
      firstOptionsAt ??= m.time;
      continue;
    }
    if (m.direction === 'sent' && m.status !== null && m.cseqMethod === 'OPTIONS') {
      optionsAnswered++;
      continue;
    }
    if (m.direction === 'received' && m.method === 'INVITE') {
      const i = invites.get(m.callId);
      if (i) i.received++;
      else
        invites.set(m.callId, {
          callId: m.callId,
          firstAt: m.time,
          received: 1,
          finalSent: null,
          ackReceived: false,
          byeReceived: false,
        });
      continue;
    }
    const i = invites.get(m.callId);
    if (!i) continue;
    if (m.direction === 'sent' && m.status !== null && m.status >= 200 && m.cseqMethod === 'INVITE')
      i.finalSent ??= m.status;
    else if (m.direction === 'received' && m.method === 'ACK') i.ackReceived = true;
    else if (m.direction === 'received' && m.method === 'BYE') i.byeReceived = true;
  }
  return {
    invites: [...invites.values()].sort((a, b) => a.firstAt - b.firstAt),
    optionsReceived,
    optionsAnswered,
    firstOptionsAt,
  };
}

/** The keys of dispatcher.cfg's acc lines (the fixed ones, then log_extra's), to split values with `;`. */
const ACC_KEYS = [
  'timestamp',
  'time',
  'method',
  'from_tag',
  'to_tag',
  'call_id',
  'code',
  'reason',
  'src_ip',
  'src_port',
  'ruri',
  'du',
  'dst',
];
const ACC_SPLIT = new RegExp(`;(?=(?:${ACC_KEYS.join('|')})=)`);
const ACC_LINE = /ACC: (transaction answered|call missed|request accounted): (.*)$/;

/**
 * The acc lines of a Kamailio log (`ACC: <event>: key=value;...`). Values may contain `;` (a Request-URI
 * with `;transport=UDP`), so fields are split only before the keys dispatcher.cfg logs.
 */
export function parseKamailioAcc(log: string): KamailioAccRecord[] {
  const out: KamailioAccRecord[] = [];
  for (const line of log.split(/\r?\n/)) {
    const m = ACC_LINE.exec(line);
    if (!m) continue;
    const fields: Record<string, string> = {};
    for (const part of m[2]!.split(ACC_SPLIT)) {
      const eq = part.indexOf('=');
      if (eq > 0) fields[part.slice(0, eq)] = part.slice(eq + 1);
    }
    const time = Number(fields.time ?? fields.timestamp);
    out.push({
      event: m[1] as KamailioAccRecord['event'],
      method: fields.method ?? '',
      callId: fields.call_id ?? '',
      status: Number(fields.code ?? 0),
      reason: fields.reason ?? '',
      fromTag: fields.from_tag ?? '',
      toTag: fields.to_tag ?? '',
      ...(Number.isFinite(time) && time > 0 ? { time } : {}),
      ...(fields.dst ? { dst: fields.dst } : {}),
      fields,
    });
  }
  return out;
}

/** The `CSDISPATCH ci=... du=...` lines of a Kamailio log. */
export function parseKamailioDispatches(log: string): KamailioDispatch[] {
  const out: KamailioDispatch[] = [];
  for (const m of log.matchAll(/CSDISPATCH ci=(\S+) du=(\S+)/g)) out.push({ callId: m[1]!, dst: m[2]! });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Ports: a free slot, locked for the run.

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock file of `port` (O_EXCL); a lock whose process is gone is taken over. */
function lockPort(port: number): (() => void) | null {
  mkdirSync(LOCK_DIR, { recursive: true });
  const file = join(LOCK_DIR, `${port}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) return null;
      rmSync(file, { force: true }); // stale
    }
  }
  return null;
}

function slotFree(ips: readonly string[], port: number): boolean {
  for (const ip of ips)
    for (let p = port; p < port + 6; p++) if (boundInodes(ip, p, 'udp').length > 0) return false;
  return true;
}

function takePort(ips: readonly string[], wanted: number | undefined): { port: number; release: () => void } {
  if (wanted !== undefined) {
    assertInteger(wanted, 1024, 65530, 'port');
    const release = lockPort(wanted);
    if (!release) fail(`port ${wanted} is locked by another run (${LOCK_DIR})`);
    if (!slotFree(ips, wanted)) {
      release();
      fail(
        `UDP port ${wanted} (or ${wanted + 1}..${wanted + 5}) is already in use on one of ${ips.join(', ')}`,
      );
    }
    return { port: wanted, release };
  }
  const start = Math.floor(Math.random() * PORT_SLOTS);
  for (let i = 0; i < PORT_SLOTS; i++) {
    const port = PORT_FIRST + 10 * ((start + i) % PORT_SLOTS);
    if (!slotFree(ips, port)) continue;
    const release = lockPort(port);
    if (!release) continue;
    if (slotFree(ips, port)) return { port, release };
    release();
  }
  fail(`no free port between ${PORT_FIRST} and ${PORT_FIRST + 10 * (PORT_SLOTS - 1)}`);
}

/** PIDs whose parent is `pid` (Kamailio's workers), from /proc. */
function childrenOf(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The run.

/**
 * Runs Kamailio in front of SIPp destinations and places `calls` calls through it (see the module
 * comment). Rejects, after stopping everything it started, when a tool is missing, an address is not
 * loopback, a port is taken, Kamailio rejects its config, a destination is never probed, or a SIPp
 * statistics file is missing. Failed calls are not an error: they are the truth it reports.
 */
export async function runKamailioCalls(options: KamailioCallsOptions): Promise<KamailioRun> {
  const started = Date.now();
  const calls = options.calls ?? 30;
  const rate = options.rate ?? 15;
  const kinds = options.destinations ?? DEFAULT_DESTINATIONS;
  const maxAttempts = options.maxAttempts ?? Math.min(2, kinds.length);
  const frTimerMs = options.frTimerMs ?? 1500;
  const frInvTimerMs = options.frInvTimerMs ?? 5000;
  const pingIntervalSec = options.pingIntervalSec ?? 1;
  const callDurationMs = options.callDurationMs ?? 1000;
  const proxyIp = options.proxyIp ?? '127.0.2.1';
  const uacIp = options.uacIp ?? '127.0.2.2';
  const destinationIps = options.destinationIps ?? kinds.map((_, i) => `127.0.2.${3 + i}`);
  const hep: Required<KamailioHepOptions> | null = options.hep
    ? { host: '127.0.0.1', hlog: false, ...options.hep }
    : null;

  assertInteger(calls, 1, 100_000, 'calls');
  if (!(rate > 0)) fail('rate must be > 0');
  if (kinds.length < 1) fail('destinations must not be empty');
  for (const k of kinds)
    if (!DEFAULT_DESTINATIONS.includes(k)) fail(`unknown destination kind ${JSON.stringify(k)}`);
  assertInteger(maxAttempts, 1, kinds.length, 'maxAttempts');
  assertInteger(frTimerMs, 100, 60_000, 'frTimerMs');
  assertInteger(frInvTimerMs, 100, 180_000, 'frInvTimerMs');
  assertInteger(pingIntervalSec, 1, 60, 'pingIntervalSec');
  assertInteger(callDurationMs, 0, 600_000, 'callDurationMs');
  if (destinationIps.length !== kinds.length) fail('destinationIps must have one address per destination');
  const ips = [proxyIp, uacIp, ...destinationIps];
  for (const [i, ip] of ips.entries())
    assertLoopback(ip, i === 0 ? 'proxyIp' : i === 1 ? 'uacIp' : 'destinationIps[]');
  if (new Set(ips).size !== ips.length) fail(`addresses must be distinct: ${ips.join(', ')}`);
  if (hep) {
    assertLoopback(hep.host, 'hep.host');
    if (hep.host !== '127.0.0.1') fail('hep.host must be 127.0.0.1');
    assertInteger(hep.port, 1, 65535, 'hep.port');
    if (hep.mode !== 'script' && hep.mode !== 'mirror') fail(`unknown hep.mode ${JSON.stringify(hep.mode)}`);
  }
  const timeoutMs = options.timeoutMs ?? Math.ceil((calls / rate) * 1000) + 30_000;
  const scenario = (name: string): string => {
    const file = join(SIPP_SCENARIO_DIR, `${name}.xml`);
    if (!existsSync(file)) fail(`missing scenario ${file}`);
    return file;
  };
  const uacXml = scenario('uac-routed');
  const uasXml = kinds.map((k) => scenario(`uas-routed-${k}`));
  if (!existsSync(KAMAILIO_CONFIG)) fail(`missing ${KAMAILIO_CONFIG}`);

  const { port, release } = takePort(ips, options.port);
  const procs: Proc[] = [];
  let kamailio: Proc | null = null;
  let kamailioWorkers: number[] = [];
  let runDir: string | null = null;
  try {
    const dir = mkdtempSync(join(options.dir, `kamailio-${port}-`));
    runDir = dir;
    const files: KamailioRunFiles = {
      dir,
      config: KAMAILIO_CONFIG,
      dispatcherList: join(dir, 'dispatcher.list'),
      kamailioLog: join(dir, 'kamailio.log'),
      tcpdumpLog: join(dir, 'tcpdump.log'),
      uacStats: join(dir, 'uac.stat.csv'),
      uacShortMessages: join(dir, 'uac.shortmsg.log'),
      uacMessages: join(dir, 'uac.msg.log'),
      uacErrors: join(dir, 'uac.errors.log'),
      uacScreen: join(dir, 'uac.screen.log'),
      uacOutput: join(dir, 'uac.out.log'),
    };
    const pcap = join(dir, 'capture.pcap');
    const names = uniqueNames(kinds);
    const dests = kinds.map((kind, i) => ({
      kind,
      name: names[i]!,
      ip: destinationIps[i]!,
      uri: `sip:${destinationIps[i]}:${port}`,
      file: (what: string) => join(dir, `uas-${names[i]}.${what}`),
    }));
    const diagnostics = (): string =>
      [
        `run directory: ${dir}`,
        `kamailio: ${tail(files.kamailioLog, 1500)}`,
        `tcpdump: ${tail(files.tcpdumpLog, 400)}`,
        `UAC output: ${tail(files.uacOutput, 800)}`,
        `UAC errors: ${tail(files.uacErrors, 800)}`,
        ...dests.map((d) => `UAS ${d.name} output: ${tail(d.file('out.log'), 500)}`),
      ].join('\n');

    // The dispatcher list: set 1, the destinations in the given order, active (flags 0), priority 0.
    const list = dests.map((d) => `1 ${d.uri} 0 0\n`).join('');
    writeFileSyncChecked(files.dispatcherList, `# setid destination flags priority\n${list}`);

    // 1. tcpdump: SIP (and SIPp's media sockets) of this run's addresses on this run's ports; not HEP.
    const hosts = ips.map((ip) => `host ${ip}`).join(' or ');
    let filter = `udp and portrange ${port}-${port + 5} and (${hosts})`;
    if (hep) filter += ` and not (dst host ${hep.host} and dst port ${hep.port})`;
    const tcpdumpArgs = ['-i', 'lo', '-n', '-U', '--immediate-mode', '-B', '16384', '-s', '0', '-w', pcap];
    if (isRoot()) tcpdumpArgs.push('-Z', 'root');
    tcpdumpArgs.push(filter);
    const tcpdump = startProcess('tcpdump', 'tcpdump', tcpdumpArgs, null);
    procs.push(tcpdump);
    let tcpdumpErr = '';
    tcpdump.child.stderr?.setEncoding('utf8');
    tcpdump.child.stderr?.on('data', (chunk: string) => {
      tcpdumpErr += chunk;
      writeFileSyncChecked(files.tcpdumpLog, chunk, 'a');
    });
    await waitFor(
      'tcpdump',
      () => /listening on lo/.test(tcpdumpErr),
      10_000,
      () => (tcpdump.exited ? `exited before listening: ${tcpdumpErr.trim()}` : null),
    );
    await probeCapture(pcap, uacIp, proxyIp, port);

    // 2. The destinations, each awaited until its SIP socket is bound.
    // biome-ignore format: option/value pairs
    const sippCommon = (ip: string, file: (what: string) => string): string[] => [
      '-i', ip, '-p', String(port), '-mi', ip, '-mp', String(port + 2), '-ci', ip, '-t', 'u1', '-nostdin',
      '-trace_screen', '-screen_file', file('screen.log'),
      '-trace_stat', '-stf', file('stat.csv'),
      '-trace_err', '-error_file', file('errors.log'),
      '-trace_shortmsg', '-shortmessage_file', file('shortmsg.log'),
      '-trace_msg', '-message_file', file('msg.log'),
    ];
    const uases: Proc[] = [];
    for (const [i, d] of dests.entries()) {
      // The silent one holds each call (SIPp -d) past the proxy's fr_timer, so the proxy's INVITE
      // retransmissions are seen as retransmissions, not as new calls.
      const args = ['-sf', uasXml[i]!, ...sippCommon(d.ip, d.file), '-d', String(frTimerMs + 1000)];
      args.push('-timeout', String(Math.ceil(timeoutMs / 1000) + 60));
      const uas = startProcess(`uas-${d.name}`, 'sipp', args, d.file('out.log'));
      procs.push(uas);
      uases.push(uas);
    }
    for (const [i, d] of dests.entries()) {
      const uas = uases[i]!;
      await waitFor(
        `SIPp UAS ${d.name} on ${d.ip}:${port}`,
        () => isBoundBy(uas.child.pid, d.ip, port, 'udp'),
        10_000,
        () => (uas.exited ? `exited early\n${diagnostics()}` : null),
      );
    }

    // 3. Kamailio, awaited until its socket is bound, then until every destination answered a probe.
    kamailio = startProcess(
      'kamailio',
      'kamailio',
      kamailioArgs({
        proxyIp,
        port,
        dispatcherList: files.dispatcherList,
        maxAttempts,
        frTimerMs,
        frInvTimerMs,
        pingIntervalSec,
        hep,
        dir,
      }),
      files.kamailioLog,
    );
    procs.push(kamailio);
    const kam = kamailio;
    await waitFor(
      `Kamailio on ${proxyIp}:${port}`,
      () => isBoundBy(kam.child.pid, proxyIp, port, 'udp'),
      15_000,
      () => (kam.exited ? `exited early (config error?)\n${diagnostics()}` : null),
    );
    await waitFor(
      'the first OPTIONS probe at every destination',
      () => dests.every((d) => probedOnce(d.file('shortmsg.log'))),
      pingIntervalSec * 3000 + 5000,
      () => (kam.exited ? `Kamailio exited\n${diagnostics()}` : null),
    );
    kamailioWorkers = childrenOf(kam.child.pid);

    // 4. The caller: all calls, then it exits by itself (-m).
    // biome-ignore format: option/value pairs
    const uacArgs = [
      '-sf', uacXml,
      '-i', uacIp, '-p', String(port), '-mi', uacIp, '-mp', String(port + 2), '-ci', uacIp, '-t', 'u1',
      '-nostdin',
      '-m', String(calls), '-r', String(rate), '-d', String(callDurationMs),
      '-timeout', String(Math.ceil(timeoutMs / 1000)),
      '-trace_screen', '-screen_file', files.uacScreen,
      '-trace_stat', '-stf', files.uacStats,
      '-trace_err', '-error_file', files.uacErrors,
      '-trace_shortmsg', '-shortmessage_file', files.uacShortMessages,
      '-trace_msg', '-message_file', files.uacMessages,
      `${proxyIp}:${port}`,
    ];
    const uacStarted = Date.now();
    const uac = startProcess('uac', 'sipp', uacArgs, files.uacOutput);
    procs.push(uac);
    if (!(await waitExit(uac, timeoutMs + 5000))) {
      await stop(uac, [
        ['SIGUSR1', 2000],
        ['SIGUSR1', 1000],
      ]);
      fail(`SIPp UAC did not finish within ${timeoutMs + 5000} ms\n${diagnostics()}`);
    }
    const uacElapsedMs = Date.now() - uacStarted;
    const uacExit = await uac.exit;

    // 5. Kamailio first (so no probe meets a stopped destination), then the destinations, then tcpdump.
    await sleep(200);
    await stop(kam, [
      ['SIGTERM', 5000],
      ['SIGTERM', 2000],
    ]);
    killSurvivors(kamailioWorkers, runDir);
    for (const uas of uases) {
      try {
        uas.child.kill('SIGUSR1');
      } catch {
        // gone
      }
    }
    for (const uas of uases) {
      if (!(await waitExit(uas, 1500)))
        await stop(uas, [
          ['SIGUSR1', 2000],
          ['SIGTERM', 1000],
        ]);
    }
    await waitFileQuiet(pcap, 300, 5000);
    await stop(tcpdump, [
      ['SIGINT', 5000],
      ['SIGTERM', 2000],
    ]);

    if (uacExit.signal === 'SIGSEGV' || uacExit.signal === 'SIGABRT' || uacExit.code === 255)
      fail(`SIPp UAC failed (exit ${uacExit.code ?? uacExit.signal})\n${diagnostics()}`);
    const readStats = (who: string, file: string): SippStats => {
      if (!existsSync(file)) fail(`SIPp ${who} wrote no statistics (${file})\n${diagnostics()}`);
      try {
        return parseSippStatCsv(readFileSync(file, 'utf8'));
      } catch (e) {
        fail(`SIPp ${who} statistics: ${(e as Error).message}\n${diagnostics()}`);
      }
    };
    if (!existsSync(pcap)) fail(`tcpdump wrote no capture\n${diagnostics()}`);

    const uacCalls = callerTruth(parseSippShortMessages(readText(files.uacShortMessages)));
    const destinations: KamailioDestinationTruth[] = [];
    for (const [i, d] of dests.entries()) {
      const truth = destinationTruth(parseSippShortMessages(readText(d.file('shortmsg.log'))));
      destinations.push({
        name: d.name,
        kind: d.kind,
        uri: d.uri,
        ip: d.ip,
        port,
        ...truth,
        stats: readStats(`UAS ${d.name}`, d.file('stat.csv')),
        exitCode: (await uases[i]!.exit).code,
        shortMessages: d.file('shortmsg.log'),
      });
    }
    const arrivals = new Map<string, { name: string; at: number }[]>();
    for (const d of destinations)
      for (const inv of d.invites) {
        const list = arrivals.get(inv.callId) ?? [];
        list.push({ name: d.name, at: inv.firstAt });
        arrivals.set(inv.callId, list);
      }
    for (const c of uacCalls)
      c.destinations = (arrivals.get(c.callId) ?? []).sort((a, b) => a.at - b.at).map((a) => a.name);

    const log = readText(files.kamailioLog);
    return {
      pcap,
      filter,
      decodeAs: [`udp.port==${port},sip`],
      files,
      proxy: { ip: proxyIp, port, uri: `sip:${proxyIp}:${port}` },
      uacIp,
      hep,
      uac: readStats('UAC', files.uacStats),
      uacExitCode: uacExit.code,
      calls: uacCalls,
      destinations,
      acc: parseKamailioAcc(log),
      dispatches: parseKamailioDispatches(log),
      optionsProbes: destinations.reduce((n, d) => n + d.optionsReceived, 0),
      kamailioExit: await kam.exit,
      droppedByKernel: Number(/(\d+) packets? dropped by kernel/.exec(tcpdumpErr)?.[1] ?? 0),
      elapsedMs: Date.now() - started,
      uacElapsedMs,
    };
  } finally {
    // Whatever happened: no process of ours outlives the run (UAC, Kamailio, UASes, then tcpdump).
    for (const proc of [...procs].reverse()) {
      if (proc.exited) continue;
      if (proc.name === 'tcpdump') await stop(proc, [['SIGINT', 2000]]);
      else if (proc.name === 'kamailio') await stop(proc, [['SIGTERM', 3000]]);
      else await stop(proc, [['SIGUSR1', 1000]]);
    }
    killSurvivors(kamailioWorkers, runDir);
    release();
  }
}

/** Destination names: the kind, with `-2`, `-3`... when a kind appears again. */
function uniqueNames(kinds: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return kinds.map((k) => {
    const n = (seen.get(k) ?? 0) + 1;
    seen.set(k, n);
    return n === 1 ? k : `${k}-${n}`;
  });
}

function probedOnce(shortMessages: string): boolean {
  return /\tR\t[^\t]*\tCSeq:\s*\d+ OPTIONS\t/.test(readText(shortMessages));
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function writeFileSyncChecked(file: string, text: string, flag: 'w' | 'a' = 'w'): void {
  const fd = openSync(file, flag);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/**
 * SIGKILL for any Kamailio worker (by the PIDs recorded at start) still alive after the main process,
 * if its command line still names our run directory (a PID may have been reused meanwhile).
 */
function killSurvivors(pids: readonly number[], runDir: string | null): void {
  if (runDir === null) return;
  for (const pid of pids) {
    if (!readText(`/proc/${pid}/cmdline`).includes(runDir)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
