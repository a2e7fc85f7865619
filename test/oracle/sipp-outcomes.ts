/**
 * Per-call truth from SIPp itself, for every way a call can end: the outside oracle the call engine's
 * acceptance test compares its call records with.
 *
 * {@link runSippOutcomes} runs the scenarios of {@link SIPP_OUTCOME_SCENARIOS} at the same time, each
 * an ordinary {@link runSippCalls} run (its own tcpdump, SIPp UAS and UAC, loopback addresses and
 * port), so everything takes as long as the slowest: the calls nobody answers, ~35 s. Each scenario
 * yields its capture and, per Call-ID, what SIPp saw happen to the call on each side.
 *
 * Where the per-call truth comes from (SIPp 3.6.1's own logs, nothing inferred from the capture):
 * - `-trace_shortmsg`: one line per SIP message each SIPp sent or received, retransmissions included
 *   (time, S/R, Call-ID, CSeq, first line). It gives the calls (their Call-IDs), the final status, who
 *   sent the BYE or CANCEL, and the retransmissions (a message sent again with the same CSeq and first
 *   line; SIPp resends byte for byte).
 * - `-trace_err`: SIPp names the Call-ID of each call it fails in a warning (see
 *   {@link parseSippFailedCalls}): that is its per-call verdict. Our scenarios fail calls only in ways
 *   that leave such a warning (a rejection's ereg looks in the Call-ID header for that reason).
 * - `-trace_stat`: the counters. Every run is checked: calls logged = TotalCallCreated, calls without
 *   a failure warning = SuccessfulCall(C), with one = FailedCall(C), retransmissions logged =
 *   Retransmissions(C), on both sides; a disagreement throws (so the truth handed out is never
 *   incomplete, e.g. a failure SIPp did not explain).
 *
 * SIPp's verdict maps onto call outcomes simply in these scenarios: the caller's SIPp counts a call
 * successful exactly when it was answered (2xx). Rejections, the CANCEL and the timeout are failures.
 *
 * Call-IDs: `SCENARIO-N-PID@UAC_IP` (SIPp's -cid_str), so every scenario's calls are told apart.
 * Nothing here imports product code (see tools.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  runSippCalls,
  type SippRun,
  type SippStats,
  type SippUacScenario,
  type SippUasScenario,
} from './sipp.js';

/** The caller's SIPp (UAC) or the callee's (UAS). */
export type SippSide = 'uac' | 'uas';

/** One call as one SIPp saw it. */
export interface SippCallTruth {
  /** SIPp's verdict on this side: 'failed' when its error log names the Call-ID as failed. */
  outcome: 'success' | 'failed';
  /** The warning with which SIPp failed the call (without its timestamp); null for a success. */
  failure: string | null;
  /**
   * Final status of the call's INVITE: the first 2xx to any INVITE if there was one (a 407 before it,
   * or a re-INVITE refused after it, do not change it), else the last final response to an INVITE
   * (487 after a CANCEL), else null (never answered).
   */
  finalStatus: number | null;
  /** Messages this SIPp sent again for the call (SIPp's Retransmissions(C) counts the same). */
  retransmissions: number;
  /**
   * The side that ended the call: the sender of the first BYE; else of a CANCEL (the caller); else the
   * callee when the final status is a refusal (>= 300); null when nothing ended it (no final response:
   * the caller gave up in silence).
   */
  endedBy: SippSide | null;
  /** SIP messages this SIPp sent and received for the call, retransmissions included. */
  messages: number;
}

/** One line of SIPp's `-trace_shortmsg` log. */
export interface SippLoggedMessage {
  /** Unix time in seconds, µs resolution (SIPp's clock when it sent or received the message). */
  time: number;
  /** 'S' sent by this SIPp, 'R' received. */
  direction: 'S' | 'R';
  callId: string;
  cseq: number;
  cseqMethod: string;
  /** The request's method, or null for a response. */
  method: string | null;
  /** The response's status code, or null for a request. */
  status: number | null;
  firstLine: string;
}

// `2026-12-06\t06:56:20.235217\t1796540180.235217\tS\tCALL-ID\tCSeq:1 INVITE\tINVITE sip:... SIP/2.0`
const SHORTMSG_LINE = /^\d{4}-\d\d-\d\d\t[\d:.]+\t(\d+\.\d+)\t([SR])\t([^\t]+)\tCSeq:\s*(\d+)\s+(\S+)\t(.*)$/;

/** Parses a `-trace_shortmsg` log; throws on a line it does not understand (no silent gaps). */
export function parseSippShortMessages(text: string): SippLoggedMessage[] {
  const out: SippLoggedMessage[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const m = SHORTMSG_LINE.exec(line.replace(/\r$/, ''));
    if (!m) throw new Error(`SIPp short message log, line ${i + 1}: not understood: ${JSON.stringify(line)}`);
    const firstLine = m[6]!;
    const response = /^SIP\/2\.0 (\d{3}) /.exec(firstLine);
    out.push({
      time: Number(m[1]),
      direction: m[2] as 'S' | 'R',
      callId: m[3]!,
      cseq: Number(m[4]),
      cseqMethod: m[5]!,
      method: response ? null : (firstLine.split(' ')[0] ?? null),
      status: response ? Number(response[1]) : null,
      firstLine,
    });
  }
  return out;
}

// Each event of SIPp's error log starts `2026-12-06\t07:00:01.986012\t1796540401.986012: ` and is not
// terminated by a newline: events are split on that prefix.
const EVENT_PREFIX = /\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d+\t\d+\.\d+: /g;

/** SIPp 3.6.1's warnings that fail a call and name it. */
const FAILURE_WARNINGS: readonly RegExp[] = [
  // A recv's ereg with check_it="true" on the Call-ID header did not match (our rejections).
  /^Failed regexp match: looking in ' ?([^'\s]+)', with regexp '[^']*'$/,
  // The INVITE was retransmitted -max_invite_retrans times (5 by default) without a response.
  /^Aborting call on UDP retransmission timeout for Call-ID '([^']+)'$/,
  // A recv with a timeout attribute and no ontimeout label waited in vain.
  /^Call-Id: (\S+), receive timeout on message .* without label to jump to \(ontimeout attribute\): aborting call$/,
  // A message the scenario did not expect.
  /^Aborting call on unexpected message for Call-Id '([^']+)'/,
];

/**
 * The calls SIPp failed, by Call-ID, from its `-trace_err` log: Call-ID → the warning. Warnings that
 * fail no call or name none are ignored; a failure SIPp did not explain shows up as a disagreement
 * with FailedCall(C) ({@link sippTruthDisagreements}).
 */
export function parseSippFailedCalls(errorLog: string): Map<string, string> {
  const failed = new Map<string, string>();
  for (const event of errorLog.split(EVENT_PREFIX).slice(1)) {
    const text = event.trim();
    for (const pattern of FAILURE_WARNINGS) {
      const m = pattern.exec(text);
      if (m && !failed.has(m[1]!)) failed.set(m[1]!, text);
    }
  }
  return failed;
}

/** Folds one SIPp's logged messages and failures into per-call truth, by Call-ID in order of appearance. */
export function sippCallTruth(
  side: SippSide,
  messages: readonly SippLoggedMessage[],
  failures: ReadonlyMap<string, string>,
): Map<string, SippCallTruth> {
  const other: SippSide = side === 'uac' ? 'uas' : 'uac';
  const byCall = new Map<string, SippLoggedMessage[]>();
  for (const m of messages) {
    const list = byCall.get(m.callId);
    if (list) list.push(m);
    else byCall.set(m.callId, [m]);
  }
  for (const callId of failures.keys()) if (!byCall.has(callId)) byCall.set(callId, []);

  const truth = new Map<string, SippCallTruth>();
  for (const [callId, list] of byCall) {
    const sent = new Set<string>();
    let retransmissions = 0;
    let answered: number | null = null;
    let lastFinal: number | null = null;
    let bye: SippSide | null = null;
    let cancel: SippSide | null = null;
    for (const m of list) {
      const sender = m.direction === 'S' ? side : other;
      if (m.direction === 'S') {
        const key = `${m.cseq} ${m.cseqMethod}\n${m.firstLine}`;
        if (sent.has(key)) retransmissions++;
        else sent.add(key);
      }
      if (m.status !== null && m.cseqMethod === 'INVITE' && m.status >= 200 && answered === null) {
        if (m.status < 300) answered = m.status;
        else lastFinal = m.status;
      }
      if (m.method === 'BYE' && bye === null) bye = sender;
      if (m.method === 'CANCEL' && cancel === null) cancel = sender;
    }
    const finalStatus = answered ?? lastFinal;
    const failure = failures.get(callId) ?? null;
    truth.set(callId, {
      outcome: failure === null ? 'success' : 'failed',
      failure,
      finalStatus,
      retransmissions,
      endedBy: bye ?? cancel ?? (finalStatus !== null && finalStatus >= 300 ? 'uas' : null),
      messages: list.length,
    });
  }
  return truth;
}

/** Where per-call truth and SIPp's counters of the same side disagree (empty when they agree). */
export function sippTruthDisagreements(
  calls: ReadonlyMap<string, SippCallTruth>,
  stats: SippStats,
): string[] {
  const values = [...calls.values()];
  const success = values.filter((c) => c.outcome === 'success').length;
  const retransmissions = values.reduce((sum, c) => sum + c.retransmissions, 0);
  const problems: string[] = [];
  const compare = (what: string, ours: number, counter: string, sipp: number): void => {
    if (ours !== sipp) problems.push(`${what} ${ours} but SIPp's ${counter} ${sipp}`);
  };
  compare('calls logged', calls.size, 'TotalCallCreated', stats.createdCalls);
  compare('successful calls', success, 'SuccessfulCall(C)', stats.successfulCalls);
  compare('failed calls', calls.size - success, 'FailedCall(C)', stats.failedCalls);
  compare('retransmissions logged', retransmissions, 'Retransmissions(C)', stats.retransmissions);
  return problems;
}

export type SippOutcomeScenario =
  | 'answered'
  | 'callee-bye'
  | 'busy'
  | 'unavailable'
  | 'cancel'
  | 'no-answer'
  | 'auth'
  | 'reinvite-488'
  | 'overload';

/** What a scenario runs and how each of its calls is meant to end. */
export interface SippOutcomeDesign {
  /** `test/sipp/uac-NAME.xml` and `test/sipp/uas-NAME.xml`. */
  uac: SippUacScenario;
  uas: SippUasScenario;
  calls: number;
  /** Calls per second. */
  rate: number;
  /** SIPp -d: the UAC's `<pause/>` (talk time before its BYE or re-INVITE). */
  callDurationMs: number;
  /** What every call of the scenario should look like in the caller's truth ({@link SippCallTruth}). */
  expect: {
    outcome: 'success' | 'failed';
    finalStatus: number | null;
    endedBy: SippSide | null;
    /** Exact when structural (an unanswered INVITE); null when none is planned, though a slow machine may add some. */
    retransmissions: number | null;
  };
  /** The callee's SIPp verdict: it fails only the calls it never answered. */
  calleeOutcome: 'success' | 'failed';
  /** Distinct status codes and request methods each call shows on the wire, ascending. */
  statusCodes: readonly number[];
  methods: readonly string[];
}

const ANSWERED_BY_CALLER = {
  outcome: 'success',
  finalStatus: 200,
  endedBy: 'uac',
  retransmissions: null,
} as const;

/**
 * The scenarios. SIPp's no-answer behaviour (the default timers, T1 = 500 ms): the INVITE is sent at
 * 0 and again at 0.5, 1.5, 3.5, 7.5 and 15.5 s (5 retransmissions, -max_invite_retrans), and the call
 * is abandoned when the 6th would fall due, 31.5 s after the INVITE, without a message; the UAS waits
 * 32 s (Timer B) per call and the capture ends with a probe datagram after it, so each capture covers
 * more than Timer B after the last INVITE.
 */
export const SIPP_OUTCOME_SCENARIOS: Readonly<Record<SippOutcomeScenario, SippOutcomeDesign>> = {
  // INVITE, 180, 200, ACK, 1 s, BYE from the caller, 200.
  answered: {
    uac: 'basic',
    uas: 'answer',
    calls: 3,
    rate: 10,
    callDurationMs: 1000,
    expect: ANSWERED_BY_CALLER,
    calleeOutcome: 'success',
    statusCodes: [180, 200],
    methods: ['ACK', 'BYE', 'INVITE'],
  },
  // INVITE, 180, 200, ACK, 1 s, BYE from the callee, 200.
  'callee-bye': {
    uac: 'callee-bye',
    uas: 'callee-bye',
    calls: 3,
    rate: 10,
    callDurationMs: 0,
    expect: { outcome: 'success', finalStatus: 200, endedBy: 'uas', retransmissions: null },
    calleeOutcome: 'success',
    statusCodes: [180, 200],
    methods: ['ACK', 'BYE', 'INVITE'],
  },
  // INVITE, 100, 486, ACK.
  busy: {
    uac: 'basic',
    uas: 'busy',
    calls: 3,
    rate: 10,
    callDurationMs: 0,
    expect: { outcome: 'failed', finalStatus: 486, endedBy: 'uas', retransmissions: null },
    calleeOutcome: 'success',
    statusCodes: [100, 486],
    methods: ['ACK', 'INVITE'],
  },
  // INVITE, 100, 503, ACK.
  unavailable: {
    uac: 'basic',
    uas: 'unavailable',
    calls: 3,
    rate: 10,
    callDurationMs: 0,
    expect: { outcome: 'failed', finalStatus: 503, endedBy: 'uas', retransmissions: null },
    calleeOutcome: 'success',
    statusCodes: [100, 503],
    methods: ['ACK', 'INVITE'],
  },
  // INVITE, 100, 180, 0.5 s, CANCEL, 200 (CANCEL), 487, ACK.
  cancel: {
    uac: 'cancel',
    uas: 'ring-cancel',
    calls: 3,
    rate: 10,
    callDurationMs: 0,
    expect: { outcome: 'failed', finalStatus: 487, endedBy: 'uac', retransmissions: null },
    calleeOutcome: 'success',
    statusCodes: [100, 180, 200, 487],
    methods: ['ACK', 'CANCEL', 'INVITE'],
  },
  // INVITE and its 5 retransmissions, nothing else; abandoned at 31.5 s.
  'no-answer': {
    uac: 'basic',
    uas: 'silent',
    calls: 2,
    rate: 2,
    callDurationMs: 0,
    expect: { outcome: 'failed', finalStatus: null, endedBy: null, retransmissions: 5 },
    calleeOutcome: 'failed',
    statusCodes: [],
    methods: ['INVITE'],
  },
  // INVITE, 407, ACK, INVITE with Proxy-Authorization (CSeq 2), 180, 200, ACK, 1 s, BYE, 200.
  auth: {
    uac: 'auth',
    uas: 'auth',
    calls: 3,
    rate: 10,
    callDurationMs: 1000,
    expect: ANSWERED_BY_CALLER,
    calleeOutcome: 'success',
    statusCodes: [180, 200, 407],
    methods: ['ACK', 'BYE', 'INVITE'],
  },
  // INVITE, 180, 200, ACK, 1 s, re-INVITE, 488, ACK, 0.5 s, BYE from the caller, 200.
  'reinvite-488': {
    uac: 'reinvite',
    uas: 'reinvite-488',
    calls: 3,
    rate: 10,
    callDurationMs: 1000,
    expect: ANSWERED_BY_CALLER,
    calleeOutcome: 'success',
    statusCodes: [180, 200, 488],
    methods: ['ACK', 'BYE', 'INVITE'],
  },
  // The theses' overloaded PBX: 20 calls at 10 cps, none answered, each INVITE sent 6 times.
  overload: {
    uac: 'basic',
    uas: 'silent',
    calls: 20,
    rate: 10,
    callDurationMs: 0,
    expect: { outcome: 'failed', finalStatus: null, endedBy: null, retransmissions: 5 },
    calleeOutcome: 'failed',
    statusCodes: [],
    methods: ['INVITE'],
  },
};

export const SIPP_OUTCOME_SCENARIO_NAMES = Object.keys(SIPP_OUTCOME_SCENARIOS) as SippOutcomeScenario[];

/** One scenario's run: its capture and SIPp's truth about each call. */
export interface SippOutcomeRun {
  scenario: SippOutcomeScenario;
  design: SippOutcomeDesign;
  /** The caller's and the callee's address; both use `port` for SIP (UDP). */
  uacIp: string;
  uasIp: string;
  port: number;
  /** tcpdump's capture (SIP on lo between the scenario's two addresses, plus the two probe datagrams). */
  pcap: string;
  /** Per-call truth by Call-ID as the caller's SIPp (UAC) saw it: what the call record describes. */
  calls: Map<string, SippCallTruth>;
  /** The same calls as the callee's SIPp (UAS) saw them. */
  calleeCalls: Map<string, SippCallTruth>;
  /**
   * The underlying run: SIPp's -trace_stat counters (run.uac, run.uas), exit codes, logs (run.files),
   * times, and run.droppedByKernel (exact comparisons with the capture need it to be 0).
   */
  run: SippRun;
}

/** Each scenario's own loopback pair and SIP port, fixed by its place in the list. */
function addresses(scenario: SippOutcomeScenario): { uacIp: string; uasIp: string; port: number } {
  const i = SIPP_OUTCOME_SCENARIO_NAMES.indexOf(scenario);
  return { uacIp: `127.0.12.${10 + 2 * i}`, uasIp: `127.0.12.${11 + 2 * i}`, port: 7100 + 10 * i };
}

function readIfPresent(file: string): string {
  // SIPp creates its error log with the first warning: no file, no failure.
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/**
 * Runs one scenario and reads SIPp's truth. Rejects when the truth disagrees with SIPp's counters
 * (the run directory is named in the error), or as {@link runSippCalls} does.
 */
export async function runSippOutcome(dir: string, scenario: SippOutcomeScenario): Promise<SippOutcomeRun> {
  const design = SIPP_OUTCOME_SCENARIOS[scenario];
  const silent = design.uas === 'silent';
  const { uacIp, uasIp, port } = addresses(scenario);
  const run = await runSippCalls({
    dir,
    uacIp,
    uasIp,
    port,
    calls: design.calls,
    rate: design.rate,
    uacScenario: design.uac,
    uasScenario: design.uas,
    callDurationMs: design.callDurationMs,
    callIdPrefix: scenario,
    traceMessages: true,
    endProbe: true,
    // Unanswered calls last 31.5 s at the caller and 32 s at the callee, after the last one starts.
    timeoutMs: silent ? Math.ceil((design.calls / design.rate) * 1000) + 45_000 : undefined,
  });
  const side = (which: SippSide): Map<string, SippCallTruth> => {
    const files = run.files;
    const messages = parseSippShortMessages(
      readIfPresent(which === 'uac' ? files.uacShortMessages : files.uasShortMessages),
    );
    const failures = parseSippFailedCalls(readIfPresent(which === 'uac' ? files.uacErrors : files.uasErrors));
    return sippCallTruth(which, messages, failures);
  };
  const calls = side('uac');
  const calleeCalls = side('uas');
  const problems = [
    ...sippTruthDisagreements(calls, run.uac).map((p) => `UAC: ${p}`),
    ...sippTruthDisagreements(calleeCalls, run.uas).map((p) => `UAS: ${p}`),
  ];
  if (problems.length > 0) {
    throw new Error(
      `SIPp scenario ${scenario}: per-call logs disagree with SIPp's counters: ${problems.join('; ')} ` +
        `(logs in ${run.files.dir})`,
    );
  }
  return { scenario, design, uacIp, uasIp, port, pcap: run.pcap, calls, calleeCalls, run };
}

export interface SippOutcomesOptions {
  /** Working directory; each scenario makes its own `sipp-*` subdirectory in it. */
  dir: string;
  /** Default: all of {@link SIPP_OUTCOME_SCENARIOS}. */
  scenarios?: readonly SippOutcomeScenario[];
}

/**
 * Runs the scenarios at the same time (each on its own addresses and port) and returns their runs in
 * the order asked. Every run finishes, and every process it started is gone, before this settles; if
 * any failed it then rejects with the first error.
 */
export async function runSippOutcomes(
  options: SippOutcomesOptions,
): Promise<{ runs: SippOutcomeRun[]; elapsedMs: number }> {
  const started = Date.now();
  const names = options.scenarios ?? SIPP_OUTCOME_SCENARIO_NAMES;
  const settled = await Promise.allSettled(names.map((name) => runSippOutcome(options.dir, name)));
  const runs: SippOutcomeRun[] = [];
  for (const result of settled) {
    if (result.status === 'rejected') throw result.reason;
    runs.push(result.value);
  }
  return { runs, elapsedMs: Date.now() - started };
}
