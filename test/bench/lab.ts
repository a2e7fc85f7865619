/**
 * The OVS lab at stepped call rates (issue 15): SIPp UAC → SIPp UAS through an Open vSwitch bridge
 * (userspace datapath, VMs as network namespaces: test/oracle/ovs.ts, as test/ovs-e2e.test.ts builds
 * it), the caller's port mirrored by `ovs-mirror` to a monitoring namespace running `callscope run
 * --interface` into an embedded store (test/oracle/live-run.ts). For each step SIPp's built-in `uac`
 * places rate × stepSeconds calls at `-r rate -rp 1000` against the built-in `uas`; a fresh capture
 * and store per step. The highest rate with every SIP message stored and every call record exact is
 * the result:
 *
 * - messages: stored (`count() FROM sip_messages FINAL`) against what crossed the caller's port by
 *   SIPp's own per-message logs (`-trace_shortmsg`): every message the UAC sent or received,
 *   retransmissions included. The UAS's log (sent, received) is kept beside it: a UAS message the UAC
 *   never received was lost in the datapath.
 * - calls: the calls table (FINAL, by outcome) against SIPp's successful and failed calls.
 * - achieved rate: initial INVITEs over the time between the first and the last one in the UAC's log;
 *   SIPp's own `CallRate(C)` beside it.
 * - drops: the capture's kernel and overload drops, and the events it did not store (`run --json`).
 * - CPU of SIPp (UAC, UAS), ovs-vswitchd and callscope over the step (from /proc/PID/stat, sampled
 *   every 250 ms: the mean over the calling window and the busiest second), so that a step says what
 *   limited it.
 *
 * A step is exact when every message both SIPps sent is stored, the calls are exact and SIPp's own
 * counters agree, with no capture drop; when messages were lost between the SIPps (the datapath, or a
 * starved SIPp's socket) only bounds can be checked (`withinBounds`: stored between what the UAC saw
 * and what both sent, answered and BYE-answered calls between what the two logs show). Steps go up
 * until one is not within bounds or SIPp no longer reaches 90 % of the asked rate (then one more rate
 * would only measure SIPp). Note SIPp's built-in uac counts a call successful when a resent 200 to its
 * INVITE arrives after its BYE (it matches responses by code): its counters then disagree with a right
 * calls table, which the per-call examples (`callExamples`) show. Skipped, with the reason, without root, OVS, SIPp or the pcap package.
 * `node dist/test/bench/lab.js [--json] [--rates 300,600,...] [--step-seconds 6]` runs it alone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openStore } from '../../ingest/store/client.js';
import { type LiveRunResult, startLiveRun } from '../oracle/live-run.js';
import { OVS_LAB, type OvsLab, type OvsVm, startOvs } from '../oracle/ovs.js';
import { parseSippStatCsv } from '../oracle/sipp.js';
import { built, needs, PCAP_PACKAGE, REPO_ROOT, removeTmpDir, tmpDir } from '../oracle/tools.js';

const CALLSCOPE = join(REPO_ROOT, 'dist/bin/callscope.js');
const OVS_MIRROR = join(REPO_ROOT, 'dist/bin/ovs-mirror.js');
const SIP_PORT = 5060;

export interface LabBenchOptions {
  log: (line: string) => void;
  /** Call rates to step through (default 300, 600, 900, 1200, 1500, 1800, 2400, 3000). */
  rates?: number[];
  /** Seconds of calls per step (default 6). */
  stepSeconds?: number;
  /** Two steps only (300 and 600 cps). */
  quick?: boolean;
}

export interface CpuFigure {
  /** Mean over the calling window, % of one core. */
  meanPercent: number;
  /** The busiest 1-s window (from the 250-ms samples), % of one core. */
  peakPercent: number;
}

export interface LabStep {
  askedCps: number;
  /** Calls asked of SIPp (-m). */
  callsAsked: number;
  /** Initial INVITEs over first → last INVITE in the UAC's log. */
  achievedCps: number;
  /** SIPp's own CallRate(C) (calls created over its whole run, tail included). */
  sippCallRateCps: number;
  sipp: {
    created: number;
    successful: number;
    failed: number;
    uacRetransmissions: number;
    uacSent: number;
    uacReceived: number;
    uasSent: number;
    uasReceived: number;
    exitCode: number | null;
  };
  /**
   * Messages that crossed the caller's port: every message the UAC sent (ingress) and every message the
   * UAS sent (egress towards the caller), by their message logs. A UAS message can reach the caller's
   * port (and the mirror) and still not reach SIPp (its socket buffer full while it is starved), so
   * the UAC's own sent + received is only the lower bound.
   */
  messagesOnWire: number;
  /** UAC sent + UAC received. */
  messagesUacSeen: number;
  messagesStored: number;
  /** Stored is within [UAC sent + received, UAC sent + UAS sent]: every message that crossed the port. */
  messagesExact: boolean;
  /** Stored equals everything the SIPps sent (nothing lost between them, or all of it before the mirror). */
  messagesStrict: boolean;
  /**
   * The calls table (FINAL) by outcome, against SIPp's counters: a SIPp successful call is one whose
   * scenario ran to its end (answered, ACKed, BYE answered 200), so it is compared with the answered
   * calls whose BYE was answered (`bye_answered`); every call SIPp created must have one record.
   */
  calls: {
    byOutcome: Record<string, number>;
    answered: number;
    answeredByeAnswered: number;
    notAnswered: number;
    total: number;
    /**
     * From the SIPps' message logs, per Call-ID: answered = a 200 to the INVITE crossed the caller's
     * port; at least the calls whose 200 the UAC received, at most those the UAS sent one for (the
     * two differ only by 200s lost between them). The same for the BYE's 200.
     */
    answeredByLogs: { min: number; max: number };
    byeAnsweredByLogs: { min: number; max: number };
    /** Every created call has one record, and answered and BYE-answered counts are within the logs' bounds. */
    exact: boolean;
    /** SIPp's own successful/failed counts equal the table's (SIPp takes a resent 200 to the INVITE as the BYE's answer, so this can fail with the table right). */
    sippCountersAgree: boolean;
  };
  /** SIPp UAC's error log, by kind of warning (why SIPp failed calls). */
  sippErrors: Record<string, number>;
  /**
   * When the calls are not exact: up to 3 answered calls whose BYE the store does not show answered,
   * each with its record's end fields, its stored messages in time order, and what the UAC's log shows.
   */
  callExamples: Array<{
    callId: string;
    record: Record<string, unknown>;
    stored: string[];
    uacLog: string[];
  }>;
  capture: {
    received: number;
    droppedKernel: number;
    droppedInterface: number;
    droppedOverload: number;
    /** Events `run` did not store (queue drops and store losses). */
    droppedEvents: number;
  };
  cpu: { uac: CpuFigure; uas: CpuFigure; vswitchd: CpuFigure; callscope: CpuFigure };
  /** Wall seconds from the UAC's start to its exit. */
  windowSeconds: number;
  /**
   * Every message both SIPps sent is stored, the calls are exact and SIPp's own counters agree, with
   * no capture drop: the strict check, possible only when nothing was lost between the SIPps.
   */
  exact: boolean;
  /**
   * No capture drop, stored messages and call counts within what the SIPps' logs allow (lost between
   * the SIPps, some UAS messages may or may not have reached the mirror): all that can be checked
   * once the datapath or a starved SIPp lost messages.
   */
  withinBounds: boolean;
  /** What most likely limited the step (a reading of the figures above). */
  limit: string;
  loadAverage: number;
}

export interface LabBenchResult {
  skipped: string | null;
  error?: string;
  machine: { cpu: string; cores: number; node: string; loadAverageStart: number };
  steps: LabStep[];
  /** Highest asked rate whose step was exact (every message stored, every call exact). */
  highestExactCps: number | null;
  /** Highest asked rate whose step was within bounds (see LabStep.withinBounds). */
  highestWithinBoundsCps: number | null;
  /** SIPp's achieved rate at that step. */
  highestExactAchievedCps: number | null;
  /** Why the steps stopped. */
  stoppedBecause: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const round = (n: number, digits = 0) => Math.round(n * 10 ** digits) / 10 ** digits;

let clockTicks = 0;
function ticksPerSecond(): number {
  if (clockTicks === 0) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process (all its threads), in clock ticks; null when it is gone. */
function cpuTicks(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

/** Samples processes' CPU every 250 ms; the last good reading of each stands for a process that exited. */
class CpuSampler {
  private readonly series = new Map<string, Array<{ t: number; ticks: number }>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly pids: Record<string, () => number | undefined>) {
    for (const name of Object.keys(pids)) this.series.set(name, []);
  }

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), 250);
  }

  stop(): void {
    this.sample();
    if (this.timer) clearInterval(this.timer);
  }

  private sample(): void {
    const t = performance.now();
    for (const [name, pid] of Object.entries(this.pids)) {
      const ticks = cpuTicks(pid());
      if (ticks !== null) this.series.get(name)?.push({ t, ticks });
    }
  }

  /** Mean over [from, to] and the busiest 1-s window inside it. */
  figure(name: string, from: number, to: number): CpuFigure {
    const s = (this.series.get(name) ?? []).filter((p) => p.t >= from - 300 && p.t <= to + 300);
    if (s.length < 2) return { meanPercent: 0, peakPercent: 0 };
    const hz = ticksPerSecond();
    const first = s[0];
    const last = s[s.length - 1];
    const percent = (a: { t: number; ticks: number }, b: { t: number; ticks: number }) =>
      ((b.ticks - a.ticks) / hz / Math.max(0.001, (b.t - a.t) / 1000)) * 100;
    let peak = 0;
    let j = 0;
    for (let i = 0; i < s.length; i++) {
      while (j < s.length && s[j].t - s[i].t < 1000) j++;
      if (j < s.length) peak = Math.max(peak, percent(s[i], s[j]));
    }
    if (peak === 0) peak = percent(first, last);
    return { meanPercent: Math.round(percent(first, last)), peakPercent: Math.round(peak) };
  }
}

/** Lines of a SIPp -trace_shortmsg log from byte `from`: sent and received, and the initial INVITEs' times. */
interface MessageLog {
  sent: number;
  received: number;
  inviteTimes: number[];
  bytes: number;
  /** Call-IDs with a 200 to the INVITE / to the BYE, sent (S) or received (R) by this SIPp. */
  invite200: { S: Set<string>; R: Set<string> };
  bye200: { S: Set<string>; R: Set<string> };
}

function readMessageLog(file: string, from = 0): MessageLog {
  const invite200 = { S: new Set<string>(), R: new Set<string>() };
  const bye200 = { S: new Set<string>(), R: new Set<string>() };
  if (!existsSync(file)) return { sent: 0, received: 0, inviteTimes: [], bytes: 0, invite200, bye200 };
  const buf = readFileSync(file);
  const text = buf.toString('latin1', Math.min(from, buf.length));
  let sent = 0;
  let received = 0;
  const inviteTimes: number[] = [];
  const invited = new Set<string>();
  for (const line of text.split('\n')) {
    const f = line.split('\t');
    if (f.length < 7) continue;
    if (f[3] === 'S') {
      sent++;
      // Each call's first INVITE only (not its retransmissions).
      if (/^CSeq:\s*1 INVITE/.test(f[5] ?? '') && (f[6] ?? '').startsWith('INVITE ') && !invited.has(f[4])) {
        invited.add(f[4]);
        inviteTimes.push(Number(f[2]));
      }
    } else if (f[3] === 'R') received++;
    const dir = f[3] === 'S' ? 'S' : f[3] === 'R' ? 'R' : null;
    if (dir !== null && (f[6] ?? '').startsWith('SIP/2.0 200')) {
      if (/INVITE/.test(f[5] ?? '')) invite200[dir].add(f[4]);
      else if (/BYE/.test(f[5] ?? '')) bye200[dir].add(f[4]);
    }
  }
  return { sent, received, inviteTimes, bytes: buf.length, invite200, bye200 };
}

interface Sipp {
  pid: number | undefined;
  exit: Promise<number | null>;
  statsFile: string;
  messageLog: string;
  /** Graceful quit (SIGUSR1 writes the final statistics), SIGKILL after 5 s. */
  stop(): Promise<void>;
}

function startSipp(lab: OvsLab, ns: string, name: string, dir: string, args: string[]): Sipp {
  const statsFile = join(dir, `${name}.stat.csv`);
  const messageLog = join(dir, `${name}.shortmsg.log`);
  // biome-ignore format: option/value pairs
  const child = lab.spawnIn(ns, 'sipp', [
    ...args, '-nostdin',
    '-trace_stat', '-stf', statsFile, '-fd', '1',
    '-trace_err', '-error_file', join(dir, `${name}.err`),
    '-trace_shortmsg', '-shortmessage_file', messageLog,
  ]);
  child.stdout?.resume();
  child.stderr?.resume();
  let exited = false;
  const exit = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exited = true;
      resolve(code);
    });
    child.once('error', () => {
      exited = true;
      resolve(null);
    });
  });
  return {
    pid: child.pid,
    exit,
    statsFile,
    messageLog,
    async stop() {
      if (exited) return;
      child.kill('SIGUSR1');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(timer);
    },
  };
}

async function waitUdpListening(lab: OvsLab, ns: string, port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const out = await lab.exec(ns, 'ss', ['-Hlun']);
    if (out.split('\n').some((line) => new RegExp(`:${port}\\s`).test(line))) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on UDP ${port} in ${ns}`);
}

async function query<T>(dataDir: string, sql: string): Promise<T[]> {
  const store = await openStore({ dataDir });
  try {
    const rs = await store.client.query({ query: sql, format: 'JSONEachRow' });
    return await rs.json<T>();
  } finally {
    await store.close();
  }
}

/** A reading of a step's figures: what held it back. */
function limitOf(step: Omit<LabStep, 'limit' | 'exact' | 'withinBounds'>, exact: boolean): string {
  const busy = (f: CpuFigure) => f.peakPercent >= 90;
  const reasons: string[] = [];
  const short = step.achievedCps < 0.9 * step.askedCps;
  if (short) {
    const who = [
      busy(step.cpu.uac) ? `SIPp UAC ${step.cpu.uac.peakPercent} %` : '',
      busy(step.cpu.uas) ? `SIPp UAS ${step.cpu.uas.peakPercent} %` : '',
      busy(step.cpu.vswitchd) ? `ovs-vswitchd ${step.cpu.vswitchd.peakPercent} %` : '',
    ].filter((s) => s !== '');
    reasons.push(
      `SIPp reached ${step.achievedCps} of ${step.askedCps} cps${who.length > 0 ? ` (busiest: ${who.join(', ')})` : ' (no process saturated: the machine)'}`,
    );
  }
  const c = step.capture;
  if (c.droppedKernel + c.droppedInterface + c.droppedOverload > 0)
    reasons.push(
      `capture dropped (kernel ${c.droppedKernel}, interface ${c.droppedInterface}, overload ${c.droppedOverload}; callscope ${step.cpu.callscope.peakPercent} %)`,
    );
  if (c.droppedEvents > 0) reasons.push(`callscope did not store ${c.droppedEvents} events (queue/store)`);
  const notReceived = step.sipp.uasSent - step.sipp.uacReceived + (step.sipp.uacSent - step.sipp.uasReceived);
  if (!step.messagesExact && c.droppedKernel + c.droppedOverload + c.droppedEvents === 0) {
    const within = step.messagesStored >= step.messagesUacSeen && step.messagesStored <= step.messagesOnWire;
    reasons.push(
      `messages ${step.messagesStored} stored of ${step.messagesOnWire} sent by the SIPps with no capture drop` +
        (within
          ? ` (within the UAC's own ${step.messagesUacSeen}: UAS messages lost before the caller's port, in the datapath; ovs-vswitchd ${step.cpu.vswitchd.peakPercent} %)`
          : ' (outside the bounds: ours)'),
    );
  }
  if (!step.calls.exact)
    reasons.push(
      `call records: ${step.calls.total} of ${step.sipp.created} created, ${step.calls.answered} answered ` +
        `(logs ${step.calls.answeredByLogs.min}–${step.calls.answeredByLogs.max}), ${step.calls.answeredByeAnswered} BYE answered ` +
        `(logs ${step.calls.byeAnsweredByLogs.min}–${step.calls.byeAnsweredByLogs.max}): ours`,
    );
  if (notReceived > 0)
    reasons.push(
      `${notReceived} messages sent by one SIPp never reached the other (${step.sipp.uacRetransmissions} UAC retransmissions)`,
    );
  if (reasons.length === 0) return exact ? 'none (exact)' : 'unclear';
  return reasons.join('; ');
}

async function runStep(
  lab: OvsLab,
  vms: { caller: OvsVm; callee: OvsVm; monitor: OvsVm },
  uas: Sipp,
  vswitchdPid: number | undefined,
  dir: string,
  rate: number,
  stepSeconds: number,
  log: (line: string) => void,
): Promise<LabStep> {
  const { caller, callee, monitor } = vms;
  const calls = Math.round(rate * stepSeconds);
  const dataDir = join(dir, `store-${rate}`);
  const capture = startLiveRun(lab, monitor, dataDir, ['--alerts', 'off']);
  await capture.live;
  const uasLogFrom = existsSync(uas.messageLog) ? statSync(uas.messageLog).size : 0;
  let uacPid: number | undefined;
  const sampler = new CpuSampler({
    uac: () => uacPid,
    uas: () => uas.pid,
    vswitchd: () => vswitchdPid,
    callscope: () => capture.child.pid,
  });
  sampler.start();
  const t0 = performance.now();
  // biome-ignore format: option/value pairs
  const uac = startSipp(lab, caller.ns, `uac-${rate}`, dir, [
    '-sn', 'uac', '-r', String(rate), '-rp', '1000', '-m', String(calls),
    '-i', caller.ip, '-p', String(SIP_PORT), `${callee.ip}:${SIP_PORT}`,
  ]);
  uacPid = uac.pid;
  // Calls that fail wait out SIPp's timers (32 s); past that, the step is stopped.
  const guard = setTimeout(() => void uac.stop(), (stepSeconds + 60) * 1000);
  const exitCode = await uac.exit;
  clearTimeout(guard);
  const t1 = performance.now();
  // Let the UAS's last answers and the capture's queue settle, then stop the capture (its summary).
  await sleep(1500);
  sampler.stop();
  let result: LiveRunResult;
  try {
    result = await capture.stop();
  } catch (error) {
    throw new Error(`capture at ${rate} cps: ${error instanceof Error ? error.message : String(error)}`);
  }
  const stats = parseSippStatCsv(readFileSync(uac.statsFile, 'utf8'));
  const uacLog = readMessageLog(uac.messageLog);
  const uasLog = readMessageLog(uas.messageLog, uasLogFrom);
  const invites = uacLog.inviteTimes;
  const achieved = invites.length > 1 ? (invites.length - 1) / (invites[invites.length - 1] - invites[0]) : 0;
  const [stored] = await query<{ n: string }>(
    dataDir,
    'SELECT count() AS n FROM callscope.sip_messages FINAL',
  );
  const [completed] = await query<{ n: string }>(
    dataDir,
    "SELECT countIf(outcome = 'answered' AND bye_answered) AS n FROM callscope.calls FINAL",
  );
  const outcomes = await query<{ outcome: string; n: string }>(
    dataDir,
    'SELECT outcome, count() AS n FROM callscope.calls FINAL GROUP BY outcome ORDER BY outcome',
  );
  const byOutcome = Object.fromEntries(outcomes.map((r) => [r.outcome, Number(r.n)]));
  const answered = byOutcome.answered ?? 0;
  const total = Object.values(byOutcome).reduce((a, b) => a + b, 0);
  const out = result.out as {
    capture?: {
      received?: number;
      droppedKernel?: number;
      droppedInterface?: number;
      droppedOverload?: number;
    };
    droppedEvents?: number;
  };
  const cap = out.capture ?? {};
  const onWire = uacLog.sent + uasLog.sent;
  const bounds = {
    answered: { min: uacLog.invite200.R.size, max: uasLog.invite200.S.size },
    bye: { min: uacLog.bye200.R.size, max: uasLog.bye200.S.size },
  };
  const answeredByeAnswered = Number(completed?.n ?? 0);
  const sippErrors: Record<string, number> = {};
  const errFile = join(dir, `uac-${rate}.err`);
  if (existsSync(errFile)) {
    const text = readFileSync(errFile, 'latin1');
    for (const event of text.split(/\d{4}-\d\d-\d\d\t[\d:.]+\t\d+\.\d+: /)) {
      const kind = event
        .trim()
        .split('\n')[0]
        .replace(/'[^']*'/g, "'…'")
        .replace(/\d+/g, 'N')
        .slice(0, 90);
      if (kind !== '') sippErrors[kind] = (sippErrors[kind] ?? 0) + 1;
    }
  }
  const messagesStored = Number(stored?.n ?? 0);
  const partial: Omit<LabStep, 'limit' | 'exact' | 'withinBounds'> = {
    askedCps: rate,
    callsAsked: calls,
    achievedCps: round(achieved, 1),
    sippCallRateCps: round(Number(stats.raw['CallRate(C)'] ?? 0), 1),
    sipp: {
      created: stats.createdCalls,
      successful: stats.successfulCalls,
      failed: stats.failedCalls,
      uacRetransmissions: stats.retransmissions,
      uacSent: uacLog.sent,
      uacReceived: uacLog.received,
      uasSent: uasLog.sent,
      uasReceived: uasLog.received,
      exitCode,
    },
    messagesOnWire: onWire,
    messagesUacSeen: uacLog.sent + uacLog.received,
    messagesStored,
    // Every message that crossed the caller's port: at least what the UAC saw, at most what the SIPps sent.
    messagesExact: messagesStored >= uacLog.sent + uacLog.received && messagesStored <= onWire,
    messagesStrict: messagesStored === onWire,
    calls: {
      byOutcome,
      answered,
      answeredByeAnswered,
      notAnswered: total - answered,
      total,
      answeredByLogs: bounds.answered,
      byeAnsweredByLogs: bounds.bye,
      exact:
        total === stats.createdCalls &&
        answered >= bounds.answered.min &&
        answered <= bounds.answered.max &&
        answeredByeAnswered >= bounds.bye.min &&
        answeredByeAnswered <= bounds.bye.max,
      sippCountersAgree:
        answeredByeAnswered === stats.successfulCalls && total - answeredByeAnswered === stats.failedCalls,
    },
    sippErrors,
    callExamples: [],
    capture: {
      received: cap.received ?? 0,
      droppedKernel: cap.droppedKernel ?? 0,
      droppedInterface: cap.droppedInterface ?? 0,
      droppedOverload: cap.droppedOverload ?? 0,
      droppedEvents: out.droppedEvents ?? 0,
    },
    cpu: {
      uac: sampler.figure('uac', t0, t1),
      uas: sampler.figure('uas', t0, t1),
      vswitchd: sampler.figure('vswitchd', t0, t1),
      callscope: sampler.figure('callscope', t0, t1),
    },
    windowSeconds: round((t1 - t0) / 1000, 1),
    loadAverage: round(loadavg()[0] ?? 0, 2),
  };
  if (!partial.calls.exact || !partial.calls.sippCountersAgree) {
    const rows = await query<Record<string, unknown> & { call_id: string }>(
      dataDir,
      `SELECT call_id, outcome, final_status, ended_by, closed_by, bye_answered, messages, retransmissions,
              billsec, invite_transactions FROM callscope.calls FINAL
       WHERE outcome = 'answered' AND NOT bye_answered ORDER BY start LIMIT 3`,
    );
    const uacText = existsSync(uac.messageLog) ? readFileSync(uac.messageLog, 'latin1').split('\n') : [];
    for (const row of rows) {
      const msgs = await query<{ m: string }>(
        dataDir,
        `SELECT concat(toString(time), ' ', src_ip, ' → ', dst_ip, ' ', if(is_request, method, toString(status)),
                ' CSeq ', toString(cseq_num), ' ', cseq_method, if(retransmission, ' (resent)', '')) AS m
         FROM callscope.sip_messages FINAL WHERE call_id = '${row.call_id.replace(/'/g, '')}' ORDER BY time`,
      );
      partial.callExamples.push({
        callId: row.call_id,
        record: row,
        stored: msgs.map((x) => x.m),
        uacLog: uacText
          .filter((line) => line.split('\t')[4] === row.call_id)
          .map((line) => line.split('\t').slice(1).join(' ').slice(0, 140)),
      });
    }
  }
  const noDrops =
    partial.capture.droppedKernel + partial.capture.droppedOverload + partial.capture.droppedEvents === 0;
  const withinBounds = partial.messagesExact && partial.calls.exact && noDrops;
  const exact = withinBounds && partial.messagesStrict && partial.calls.sippCountersAgree;
  const step: LabStep = { ...partial, exact, withinBounds, limit: limitOf(partial, exact) };
  const cpu = step.cpu;
  log(
    `  ${rate} cps asked: ${step.achievedCps} achieved (SIPp CallRate ${step.sippCallRateCps}); ` +
      `${stats.successfulCalls}/${stats.createdCalls} calls ok, ${stats.failedCalls} failed, ${stats.retransmissions} UAC retransmissions; ` +
      `messages stored ${messagesStored} of ${onWire} on the wire (UAC sent ${uacLog.sent}, received ${uacLog.received}; ` +
      `UAS sent ${uasLog.sent}, received ${uasLog.received}) ` +
      `${step.messagesStrict ? 'all' : step.messagesExact ? 'within bounds' : 'OUT OF BOUNDS'}; calls ${JSON.stringify(byOutcome)} (${answeredByeAnswered} with BYE answered; ` +
      `logs: answered ${bounds.answered.min}–${bounds.answered.max}, BYE answered ${bounds.bye.min}–${bounds.bye.max}; ` +
      `SIPp ${stats.successfulCalls} successful, ${stats.failedCalls} failed) ${step.calls.exact ? 'exact' : 'NOT EXACT'}` +
      `${Object.keys(sippErrors).length > 0 ? `; SIPp errors ${JSON.stringify(sippErrors)}` : ''}; ` +
      `${step.exact ? 'EXACT' : step.withinBounds ? 'within bounds' : 'NOT EXACT'}; ` +
      `drops kernel ${step.capture.droppedKernel}, overload ${step.capture.droppedOverload}, events ${step.capture.droppedEvents}; ` +
      `CPU mean/peak % UAC ${cpu.uac.meanPercent}/${cpu.uac.peakPercent}, UAS ${cpu.uas.meanPercent}/${cpu.uas.peakPercent}, ` +
      `vswitchd ${cpu.vswitchd.meanPercent}/${cpu.vswitchd.peakPercent}, callscope ${cpu.callscope.meanPercent}/${cpu.callscope.peakPercent}; ` +
      `load ${step.loadAverage}; limit: ${step.limit}`,
  );
  removeTmpDir(dataDir);
  return step;
}

export async function runLabBench(options: LabBenchOptions): Promise<LabBenchResult> {
  const { log } = options;
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    node: process.version,
    loadAverageStart: round(loadavg()[0] ?? 0, 2),
  };
  const gate = needs(...OVS_LAB, 'sipp', PCAP_PACKAGE, built(CALLSCOPE), built(OVS_MIRROR));
  if (gate.reason !== '') {
    log(`lab: skipped (${gate.reason})`);
    return {
      skipped: gate.reason,
      machine,
      steps: [],
      highestExactCps: null,
      highestExactAchievedCps: null,
      highestWithinBoundsCps: null,
      stoppedBecause: 'skipped',
    };
  }
  const rates = options.rates ?? (options.quick ? [300, 600] : [300, 600, 900, 1200, 1500, 1800, 2400, 3000]);
  const stepSeconds = options.stepSeconds ?? 6;
  log(
    `lab: SIPp uac → OVS (userspace datapath) → uas, caller mirrored to callscope run --interface; ` +
      `${stepSeconds}-s steps at ${rates.join(', ')} cps (load average ${machine.loadAverageStart})`,
  );
  const dir = tmpDir('callscope-lab-bench-');
  let lab: OvsLab | null = null;
  let uas: Sipp | null = null;
  const steps: LabStep[] = [];
  let stoppedBecause = 'all rates done';
  try {
    lab = await startOvs();
    const caller = await lab.addVm({ port: 'tap9101i0', ip: '10.77.0.11/24' });
    const callee = await lab.addVm({ port: 'tap9103i0', ip: '10.77.0.13/24' });
    const monitor = await lab.addVm({ port: 'tap9199i0', ip: '10.77.0.99/24' });
    for (const vm of [caller, callee, monitor])
      await lab.exec(vm.ns, 'sysctl', [
        '-qw',
        'net.ipv6.conf.all.disable_ipv6=1',
        `net.ipv6.conf.${vm.nsIf}.disable_ipv6=1`,
      ]);
    // biome-ignore format: option/value pairs
    uas = startSipp(lab, callee.ns, 'uas', dir, ['-sn', 'uas', '-i', callee.ip, '-p', String(SIP_PORT)]);
    await waitUdpListening(lab, callee.ns, SIP_PORT);
    for (const vm of [caller, monitor]) await lab.udpEcho(vm, callee, { count: 2 });
    execFileSync(
      process.execPath,
      // biome-ignore format: option/value pairs
      [OVS_MIRROR, 'add', '--vm', '9101', '--to', monitor.port, '--name', 'noc-lab',
        '--db', lab.dbTarget, '--unixctl', lab.vswitchdCtl ?? '', '--json'],
      { timeout: 30_000 },
    );
    const pidFile = join(lab.dir, 'ovs-vswitchd.pid');
    const vswitchdPid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined;
    for (const rate of rates) {
      const step = await runStep(
        lab,
        { caller, callee, monitor },
        uas,
        vswitchdPid,
        dir,
        rate,
        stepSeconds,
        log,
      );
      steps.push(step);
      // Up while the capture is right as far as can be checked; the strict result is the highest exact step.
      if (!step.withinBounds) {
        stoppedBecause = `${rate} cps was not within bounds (${step.limit})`;
        break;
      }
      if (step.achievedCps < 0.9 * rate) {
        stoppedBecause = `SIPp reached ${step.achievedCps} of ${rate} cps`;
        break;
      }
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log(`lab: failed: ${message}`);
    return {
      skipped: null,
      error: message,
      machine,
      steps,
      highestExactCps: null,
      highestExactAchievedCps: null,
      highestWithinBoundsCps: null,
      stoppedBecause: 'error',
    };
  } finally {
    await uas?.stop().catch(() => {});
    await lab?.close().catch(() => {});
    removeTmpDir(dir);
  }
  const best = [...steps].filter((s) => s.exact).sort((a, b) => b.askedCps - a.askedCps)[0];
  const bounded = [...steps].filter((s) => s.withinBounds).sort((a, b) => b.askedCps - a.askedCps)[0];
  const result: LabBenchResult = {
    skipped: null,
    machine,
    steps,
    highestExactCps: best?.askedCps ?? null,
    highestExactAchievedCps: best?.achievedCps ?? null,
    highestWithinBoundsCps: bounded?.askedCps ?? null,
    stoppedBecause,
  };
  log(
    `lab: highest exact step ${result.highestExactCps ?? 'none'} cps asked (${result.highestExactAchievedCps ?? 'n/a'} achieved), ` +
      `highest within bounds ${result.highestWithinBoundsCps ?? 'none'} cps; ` +
      `stopped: ${stoppedBecause}`,
  );
  return result;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const at = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const rates = at('--rates')
    ?.split(',')
    .map(Number)
    .filter((n) => n > 0);
  const stepSeconds = at('--step-seconds') === undefined ? undefined : Number(at('--step-seconds'));
  // The steps' lines go to stderr either way: a lab run is long, and --json's object goes to stdout.
  const log = (line: string) => {
    process.stderr.write(`${line}\n`);
  };
  runLabBench({ log, rates, stepSeconds, quick: args.includes('--quick') })
    .then((r) => {
      if (json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      if (r.error !== undefined) process.exitCode = 1;
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    })
    .finally(() => setTimeout(() => process.exit(), 3000).unref());
}
