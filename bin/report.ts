import type { CallsSummary } from '../analyze/calls/kpis.js';
import { type AnalyzeSummary, limitsReached } from '../analyze/summary.js';
import { formatInt } from './progress.js';

/** The terminal summary of `callscope analyze`: what a NOC engineer reads first. */
export function formatSummary(s: AnalyzeSummary): string {
  const lines: string[] = [];
  const sip = s.sip;
  lines.push(`${s.file} (${s.format})`);
  if (s.format === 'store') {
    // Events that came through Kafka or HEP: the store knows no packets, only events and their times.
    lines.push(
      `  events       over ${s.durationSec.toFixed(3)} s` +
        (s.firstPacketTime ? `, from ${s.firstPacketTime} to ${s.lastPacketTime}` : '') +
        ' (no capture run: packet counts unknown)',
    );
  } else {
    // The traffic's own rate, from capture times; how fast callscope decoded it is the last line.
    const captureRate =
      s.durationSec > 0 ? ` (${formatInt(s.packets / s.durationSec)} packets/s in the capture)` : '';
    lines.push(
      `  packets      ${formatInt(s.packets)} over ${s.durationSec.toFixed(3)} s${captureRate}` +
        (s.firstPacketTime ? `, from ${s.firstPacketTime}` : '') +
        `; ${formatInt(s.malformedPackets)} malformed, ${formatInt(s.truncatedPackets)} cut by the snaplen`,
    );
  }
  if (s.decode.truncatedRecords > 0) {
    const where = s.decode.fileWarnings.find((w) => w.includes('cut off by end of file'));
    lines.push(
      `  FILE CUT SHORT in the middle of a packet: everything before it is counted${where ? ` (${where})` : ''}`,
    );
  }
  lines.push(
    `  decoded      IPv4 ${formatInt(s.decode.ipv4)}, IPv6 ${formatInt(s.decode.ipv6)}, UDP ${formatInt(s.decode.udp)}, ` +
      `TCP ${formatInt(s.decode.tcp)}, SCTP ${formatInt(s.decode.sctp)}, non-IP ${formatInt(s.decode.nonIp)}`,
  );
  const t = s.decode.tunnelled;
  if (t.ipip + t.gre + t.erspan + t.vxlan > 0) {
    lines.push(`  tunnels      IP-in-IP ${t.ipip}, GRE ${t.gre}, ERSPAN ${t.erspan}, VXLAN ${t.vxlan}`);
  }
  const f = s.decode.fragments;
  if (f.fragments > 0) {
    lines.push(
      `  fragments    ${formatInt(f.fragments)} fragments, ${formatInt(f.reassembled)} datagrams reassembled, ` +
        `${formatInt(f.timedOut + f.evicted)} incomplete`,
    );
  }
  lines.push('');
  const transports = Object.entries(sip.transports)
    .map(([k, v]) => `${k} ${formatInt(v)}`)
    .join(', ');
  lines.push(
    `SIP  ${formatInt(sip.messages)} messages, ${formatInt(sip.retransmissions)} retransmissions, ` +
      `${formatInt(sip.callIds)} Call-IDs${transports ? ` (${transports})` : ''}` +
      (sip.malformed ? `, ${formatInt(sip.malformed)} malformed` : ''),
  );
  const requests = Object.entries(sip.requests).sort((a, b) => b[1] - a[1]);
  if (requests.length) {
    lines.push('  requests');
    for (const [method, n] of requests) lines.push(`    ${method.padEnd(12)} ${formatInt(n).padStart(10)}`);
  }
  const responses = Object.entries(sip.responses).sort((a, b) => Number(a[0]) - Number(b[0]));
  if (responses.length) {
    lines.push('  responses');
    for (const [code, n] of responses) {
      lines.push(`    ${code.padEnd(4)} ${reasonOf(Number(code)).padEnd(24)} ${formatInt(n).padStart(10)}`);
    }
  }
  if (sip.endpoints.length) {
    lines.push('  busiest endpoints                          sent   received');
    for (const e of sip.endpoints.slice(0, 10)) {
      const where = `${e.transport} ${e.ip.includes(':') ? `[${e.ip}]` : e.ip}:${e.port}`;
      lines.push(
        `    ${where.padEnd(36)} ${formatInt(e.sent).padStart(8)} ${formatInt(e.received).padStart(10)}`,
      );
    }
  }
  if (s.vms?.length) {
    lines.push('');
    lines.push('VMs                SIP sent   received   INVITEs sent/received   streams sent/received');
    for (const v of s.vms.slice(0, 50)) {
      lines.push(
        `  ${v.vm.padEnd(16)} ${formatInt(v.sipSent).padStart(8)} ${formatInt(v.sipReceived).padStart(10)} ` +
          `${`${formatInt(v.invitesSent)}/${formatInt(v.invitesReceived)}`.padStart(23)} ` +
          `${`${formatInt(v.streamsSent)}/${formatInt(v.streamsReceived)}`.padStart(23)}`,
      );
    }
    if (s.vms.length > 50) lines.push(`  ... ${s.vms.length - 50} more with --json`);
  }
  lines.push('');
  lines.push(...formatCallsSummary(s.calls));
  lines.push('');
  const tracked = formatTracked(s);
  if (tracked.length > 0) lines.push(...tracked, '');
  lines.push(...formatMedia(s));
  lines.push('');
  const reached = Object.entries(limitsReached(s.limits));
  if (reached.length > 0) {
    lines.push(
      `LIMITS REACHED (state forgotten or not counted to bound memory): ${reached
        .map(([k, v]) => (v === true ? k : `${k} ${formatInt(v as number)}`))
        .join(', ')}`,
    );
    lines.push('');
  }
  if (s.elapsedMs > 0) {
    lines.push(
      `decoded in ${(s.elapsedMs / 1000).toFixed(2)} s (${formatInt(s.packetsPerSecond)} packets/s processing)`,
    );
  }
  return lines.join('\n');
}

/** Streams listed in the terminal summary, worst first; `--json` has them all. */
const LISTED_STREAMS = 20;

function formatMedia(s: AnalyzeSummary): string[] {
  const m = s.rtp.stats;
  const lines: string[] = [];
  lines.push(
    `RTP  ${formatInt(s.rtp.streams.length + s.rtp.streamsOmitted)} streams ` +
      `(${formatInt(m.streamsFromSdp)} from SDP, ${formatInt(m.streamsFromHeuristic)} by heuristic), ` +
      `${formatInt(m.rtpPackets)} packets; RTCP ${formatInt(m.rtcpPackets)}` +
      (m.rtcpMalformed ? ` (${formatInt(m.rtcpMalformed)} malformed)` : '') +
      (m.rtcpTrailingBytes
        ? ` (${formatInt(m.rtcpTrailingBytes)} with stray bytes after the last packet)`
        : '') +
      (m.udptlPackets ? `; T.38 UDPTL ${formatInt(m.udptlPackets)}` : '') +
      (m.streamsEvicted + m.streamsRefused
        ? `; ${formatInt(m.streamsEvicted)} evicted, ${formatInt(m.streamsRefused)} refused at the stream limit`
        : ''),
  );
  if (s.rtp.streams.length === 0) return lines;
  // Worst first: lowest MOS (streams without voice last), then most loss.
  const worst = [...s.rtp.streams].sort(
    (a, b) =>
      (a.minMos ?? 9) - (b.minMos ?? 9) || b.lossPercent - a.lossPercent || b.maxJitterMs - a.maxJitterMs,
  );
  const listed = worst.slice(0, LISTED_STREAMS);
  lines.push(
    '  worst streams                                     codec      packets   lost       jitter ms   MOS           problems',
  );
  lines.push(
    '                                                                                    mean   max  mean min',
  );
  for (const r of listed) {
    const where = `${endpoint(r.src, r.srcPort)} > ${endpoint(r.dst, r.dstPort)}`;
    const lost = `${formatInt(r.lost)} (${r.lossPercent.toFixed(1)}%)`;
    const mos = r.mos === null ? '   -    -' : `${r.mos.toFixed(2)} ${r.minMos!.toFixed(2)}`;
    lines.push(
      `    ${where.padEnd(46)} ${(r.codec ?? `PT ${r.payloadType}`).padEnd(9)} ${formatInt(r.packets).padStart(8)} ` +
        `${lost.padStart(13)} ${r.meanJitterMs.toFixed(2).padStart(6)} ${r.maxJitterMs.toFixed(2).padStart(6)}  ${mos}` +
        (r.problem ? `  ${problems(r)}` : ''),
    );
    lines.push(
      `      ssrc 0x${r.ssrc.toString(16).padStart(8, '0')}  call ${r.callId ?? '(no signalling seen)'}`,
    );
  }
  if (worst.length > LISTED_STREAMS) lines.push(`  ... ${worst.length - LISTED_STREAMS} more with --json`);
  if (listed.some((r) => r.problem)) lines.push(...PROBLEMS_LEGEND);
  return lines;
}

// What the problems column holds: the reasons tshark's RTP Streams has for its "Problems?" mark.
const PROBLEMS_LEGEND = [
  `  problems: why tshark marks the stream in "Problems?": seq N = N packets out of sequence`,
  `            (after a gap, i.e. loss, or duplicated or late); ts N = N timestamps before the stream's first`,
];

/** Why tshark would mark the stream (`problem`): sequence errors, timestamps before the first. */
function problems(r: AnalyzeSummary['rtp']['streams'][number]): string {
  const parts: string[] = [];
  if (r.sequenceErrors > 0) parts.push(`seq ${formatInt(r.sequenceErrors)}`);
  if (r.wrongTimestamps > 0) parts.push(`ts ${formatInt(r.wrongTimestamps)}`);
  return parts.join(', ');
}

function endpoint(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

const REASONS: Record<number, string> = {
  100: 'Trying',
  180: 'Ringing',
  181: 'Call Is Being Forwarded',
  182: 'Queued',
  183: 'Session Progress',
  200: 'OK',
  202: 'Accepted',
  301: 'Moved Permanently',
  302: 'Moved Temporarily',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  407: 'Proxy Auth Required',
  408: 'Request Timeout',
  480: 'Temporarily Unavailable',
  481: 'Call Does Not Exist',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  500: 'Server Internal Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Server Time-out',
  600: 'Busy Everywhere',
  603: 'Decline',
};

function reasonOf(code: number): string {
  return REASONS[code] ?? '';
}

const pct = (r: number | null) => (r === null ? 'n/a' : `${(r * 100).toFixed(1)}%`);

/** Registrations and OPTIONS peer health (docs/REGISTRATIONS.md); nothing when the capture has none. */
function formatTracked(s: AnalyzeSummary): string[] {
  const lines: string[] = [];
  const r = s.registrations;
  if (r.attempts > 0) {
    const failures = Object.entries(r.failuresByStatus)
      .sort(([, a], [, b]) => b - a)
      .slice(0, 6)
      .map(([status, n]) => `${status === 'none' ? 'no response' : status} ${formatInt(n)}`);
    lines.push(
      `REGISTRATIONS  ${formatInt(r.attempts)} attempts: ${formatInt(r.successes)} succeeded, ` +
        `${formatInt(r.failures)} failed (IRA ${pct(r.ira)})${failures.length > 0 ? `: ${failures.join(', ')}` : ''}`,
      `  times        RRD mean ${r.rrdMs.mean === null ? 'n/a' : `${Math.round(r.rrdMs.mean)} ms`}, ` +
        `p95 ${r.rrdMs.p95 === null ? 'n/a' : Math.round(r.rrdMs.p95)}, max ${r.rrdMs.max === null ? 'n/a' : Math.round(r.rrdMs.max)} ms; ` +
        `peak ${formatInt(r.peakPerSecond)} attempts in one second`,
      `  bindings     ${formatInt(r.bindings.live)} live for ${formatInt(r.bindings.aors)} addresses of record at the end`,
    );
  }
  const p = s.probes;
  if (p.pairs.length > 0) {
    lines.push(
      `OPTIONS PROBES  ${formatInt(p.pairs.length)} prober → peer pairs: ${formatInt(p.up)} up, ${formatInt(p.down)} down, ` +
        `${formatInt(p.unknown)} unknown; ${formatInt(p.sent)} probes, ${formatInt(p.answered)} answered, ` +
        `${formatInt(p.failing)} failing`,
    );
    for (const pair of p.pairs.filter((x) => x.state === 'down').slice(0, 10))
      lines.push(`  down         ${pair.prober} → ${pair.probed}`);
  }
  lines.push(...formatFailovers(s.failovers));
  return lines;
}

/** Failovers listed in the terminal summary; `--json` has them all. */
const LISTED_FAILOVERS = 10;

/** Addresses that moved to another MAC / VM, with their service gap (docs/FAILOVER.md). */
function formatFailovers(f: AnalyzeSummary['failovers']): string[] {
  const t = f.tracker;
  if (f.count === 0 && t.gratuitousArps === 0 && t.oldMacAfterMove === 0) return [];
  const iso = (ms: number | null) => (ms === null ? 'none' : new Date(ms).toISOString());
  const lines = [
    `FAILOVERS  ${formatInt(f.count)} (an address that served SIP/RTP moved to another MAC / VM)` +
      (t.withoutAnswer > 0 ? `, ${formatInt(t.withoutAnswer)} without an answer after the move` : ''),
  ];
  for (const x of f.list.slice(0, LISTED_FAILOVERS)) {
    lines.push(
      `  ${iso(x.time)}  ${x.address}${x.vlan === null ? '' : ` (VLAN ${x.vlan})`}  ${x.oldVm} → ${x.newVm}  by ${x.signal}`,
      `    no answer for ${x.gapMs === null ? 'unknown' : `${formatInt(x.gapMs)} ms`}: last answer ${iso(x.lastAnswerBefore)}, ` +
        `first after ${iso(x.firstAnswerAfter)}`,
    );
  }
  if (f.count > LISTED_FAILOVERS)
    lines.push(`  ... ${formatInt(f.count - LISTED_FAILOVERS)} more with --json`);
  lines.push(
    `  seen         ${formatInt(t.gratuitousArps)} gratuitous ARPs (${formatInt(t.gratuitousUnserved)} for addresses ` +
      `that served nothing), ${formatInt(t.arpFromNewMac)} ARP from a new MAC, ${formatInt(t.oldMacAfterMove)} ` +
      `frames from an old MAC after its move`,
  );
  return lines;
}

/** The calls: one per call, each counted once (docs/CALLS.md). */
export function formatCallsSummary(c: CallsSummary): string[] {
  const o = c.outcomes;
  const k = c.kpis;
  const lines = [
    `CALLS  ${formatInt(c.attempts)} attempts: ${formatInt(c.answered)} answered, ${formatInt(o.busy)} busy, ` +
      `${formatInt(o.cancelled)} cancelled, ${formatInt(o.rejected)} rejected, ${formatInt(o.redirected)} redirected, ` +
      `${formatInt(o.failed)} failed, ${formatInt(o.noAnswer)} no answer, ${formatInt(o.inProgress)} in progress` +
      (c.legs > 0 ? ` (+${formatInt(c.legs)} B2BUA legs linked to them)` : ''),
  ];
  if (c.attempts === 0) return lines;
  lines.push(
    `  ratios       ASR ${pct(k.asr)}  SER ${pct(k.ser)}  SEER ${pct(k.seer)}  NER ${pct(k.ner)}  ` +
      `ISA ${pct(k.isa)}  SCR ${pct(k.scr)}  failed ${pct(k.failedRatio)}`,
  );
  const pdd = k.pddMs;
  lines.push(
    `  times        ACD ${k.acdSec === null ? 'n/a' : `${k.acdSec.toFixed(1)} s`}  PDD mean ` +
      `${pdd.mean === null ? 'n/a' : `${Math.round(pdd.mean)} ms`}, p50 ${pdd.p50 ?? 'n/a'}, p95 ${pdd.p95 ?? 'n/a'}, ` +
      `max ${pdd.max ?? 'n/a'} ms`,
  );
  lines.push(
    `  load         peak ${formatInt(c.peakConcurrent)} calls up at once, ${formatInt(c.peakPending)} waiting ` +
      `for an answer, ${formatInt(c.peakCps)} started in one second`,
  );
  const statuses = Object.entries(c.finalStatus)
    .filter(([status]) => status !== '200')
    .sort(([, a], [, b]) => b - a)
    .slice(0, 8)
    .map(([status, n]) => `${status === 'none' ? 'no final response' : status} ${formatInt(n)}`);
  if (statuses.length > 0) lines.push(`  not 200      ${statuses.join(', ')}`);
  return lines;
}
