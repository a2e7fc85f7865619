/**
 * Self-test of the Kamailio oracle (kamailio.ts): its truth (SIPp's logs and counters, Kamailio's acc
 * lines and dispatch decisions) checked call by call against tshark's reading of the capture, and
 * Kamailio's HEP3 output in both siptrace modes counted against the SIP datagrams it sent and received.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  callerTruth,
  destinationTruth,
  KAMAILIO_LAB,
  type KamailioRun,
  parseKamailioAcc,
  parseKamailioDispatches,
  parseSippShortMessages,
  runKamailioCalls,
} from './kamailio.js';
import { needs, removeTmpDir, tmpDir } from './tools.js';
import { runTshark } from './tshark.js';

const gate = needs(...KAMAILIO_LAB, 'tshark');

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeTmpDir(d);
});
function dir(): string {
  const d = tmpDir('callscope-kamailio-');
  dirs.push(d);
  return d;
}

describe('parsers (no tools needed)', () => {
  it('SIPp short messages: requests, responses, both directions', () => {
    const text = [
      '2026-12-06\t07:12:18.199338\t1796541138.199338\tS\t1-42@127.0.2.2\tCSeq:1 INVITE\tINVITE sip:service@127.0.2.1:21000 SIP/2.0',
      '2026-12-06\t07:12:18.203490\t1796541138.203490\tR\t1-42@127.0.2.2\tCSeq:1 INVITE\tSIP/2.0 100 trying -- your call is important to us',
      '2026-12-06\t07:12:19.700000\t1796541139.700000\tR\t1-42@127.0.2.2\tCSeq:1 INVITE\tSIP/2.0 500 Service Unavailable',
      '2026-12-06\t07:12:19.700100\t1796541139.700100\tS\t1-42@127.0.2.2\tCSeq:1 ACK\tACK sip:service@127.0.2.1:21000 SIP/2.0',
      'garbage',
    ].join('\n');
    const messages = parseSippShortMessages(text);
    expect(messages.map((m) => [m.direction, m.method, m.status, m.cseqMethod])).toEqual([
      ['sent', 'INVITE', null, 'INVITE'],
      ['received', null, 100, 'INVITE'],
      ['received', null, 500, 'INVITE'],
      ['sent', 'ACK', null, 'ACK'],
    ]);
    expect(messages[2]).toMatchObject({ time: 1796541139.7, rest: 'Service Unavailable', cseq: 1 });
    expect(callerTruth(messages)).toEqual([
      {
        callId: '1-42@127.0.2.2',
        invitedAt: 1796541138.199338,
        invitesSent: 1,
        provisional: [100],
        finalStatus: 500,
        finalReason: 'Service Unavailable',
        finalAt: 1796541139.7,
        finalsReceived: 1,
        ackSent: true,
        byeStatus: null,
        destinations: [],
      },
    ]);
  });

  it('a destination: INVITEs with retransmissions, OPTIONS probes', () => {
    const line = (t: number, d: string, ci: string, cseq: string, first: string) =>
      `2026-12-06\t07:00:00.0\t${t}\t${d}\t${ci}\tCSeq:${cseq}\t${first}`;
    const messages = parseSippShortMessages(
      [
        line(1, 'R', 'probe-1', '10 OPTIONS', 'OPTIONS sip:127.0.2.5:21000 SIP/2.0'),
        line(1.1, 'S', 'probe-1', '10 OPTIONS', 'SIP/2.0 200 OK'),
        line(2, 'R', 'c1', '1 INVITE', 'INVITE sip:service@127.0.2.1:21000 SIP/2.0'),
        line(2.5, 'R', 'c1', '1 INVITE', 'INVITE sip:service@127.0.2.1:21000 SIP/2.0'),
        line(3, 'R', 'c2', '1 INVITE', 'INVITE sip:service@127.0.2.1:21000 SIP/2.0'),
        line(3.1, 'S', 'c2', '1 INVITE', 'SIP/2.0 503 Service Unavailable'),
        line(3.2, 'R', 'c2', '1 ACK', 'ACK sip:service@127.0.2.1:21000 SIP/2.0'),
      ].join('\n'),
    );
    const truth = destinationTruth(messages);
    expect(truth).toMatchObject({ optionsReceived: 1, optionsAnswered: 1, firstOptionsAt: 1 });
    expect(truth.invites).toEqual([
      { callId: 'c1', firstAt: 2, received: 2, finalSent: null, ackReceived: false, byeReceived: false },
      { callId: 'c2', firstAt: 3, received: 1, finalSent: 503, ackReceived: true, byeReceived: false },
    ]);
  });

  it('acc lines: values that hold ";" stay whole; dispatch lines', () => {
    const log = [
      ' 1(18948) NOTICE: {2 3-1@127.0.2.2} acc [acc.c:268]: acc_log_request(): ACC: transaction answered: ' +
        'timestamp=1796541139;time=1796541139.409;method=BYE;from_tag=cs1c3;to_tag=cs2s4;call_id=3-1@127.0.2.2;' +
        'code=200;reason=OK;src_ip=127.0.2.2;src_port=21000;ruri=sip:callee@127.0.2.3:21000;transport=UDP;du=;' +
        'dst=sip:callee@127.0.2.3:21000;transport=UDP',
      ' 3(18950) NOTICE: acc [acc.c:268]: acc_log_request(): ACC: call missed: timestamp=1796541139;' +
        'time=1796541139.684;method=INVITE;from_tag=cs1c1;to_tag=ecc55-be2c;call_id=1-1@127.0.2.2;code=408;' +
        'reason=Request Timeout;src_ip=127.0.2.2;src_port=21000;ruri=sip:service@127.0.2.1:21000;' +
        'du=sip:127.0.2.5:21000;dst=sip:127.0.2.5:21000',
      ' 2(18949) NOTICE: {1 2-1@127.0.2.2} <script>: CSDISPATCH ci=2-1@127.0.2.2 du=sip:127.0.2.4:21000',
    ].join('\n');
    const acc = parseKamailioAcc(log);
    expect(acc).toHaveLength(2);
    expect(acc[0]).toMatchObject({
      event: 'transaction answered',
      method: 'BYE',
      status: 200,
      reason: 'OK',
      fromTag: 'cs1c3',
      toTag: 'cs2s4',
      time: 1796541139.409,
      dst: 'sip:callee@127.0.2.3:21000;transport=UDP',
    });
    expect(acc[0]!.fields.ruri).toBe('sip:callee@127.0.2.3:21000;transport=UDP');
    expect(acc[1]).toMatchObject({ event: 'call missed', status: 408, reason: 'Request Timeout' });
    expect(parseKamailioDispatches(log)).toEqual([{ callId: '2-1@127.0.2.2', dst: 'sip:127.0.2.4:21000' }]);
  });
});

describe('argument and port checks (nothing is started)', () => {
  it('refuses non-loopback addresses before starting anything', async () => {
    await expect(runKamailioCalls({ dir: dir(), proxyIp: '192.0.2.1' })).rejects.toThrow(/loopback/);
    await expect(
      runKamailioCalls({ dir: dir(), destinationIps: ['10.0.0.1', '127.0.2.4', '127.0.2.5'] }),
    ).rejects.toThrow(/loopback/);
  });

  it('a taken port fails fast, before anything is started', async () => {
    const socket = createSocket('udp4');
    await new Promise<void>((ok, fail) => {
      socket.once('error', fail);
      socket.bind(29_990, '127.0.2.4', () => ok());
    });
    try {
      const started = Date.now();
      await expect(runKamailioCalls({ dir: dir(), port: 29_990 })).rejects.toThrow(
        /UDP port 29990 .* is already in use/,
      );
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await new Promise<void>((ok) => socket.close(() => ok()));
    }
  });
});

/** One SIP message of the capture, as tshark reads it. */
interface Wire {
  time: number;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  callId: string;
  method: string;
  status: number | null;
  cseqMethod: string;
  resend: boolean;
  ruri: string;
}

async function tsharkSip(run: KamailioRun): Promise<Wire[]> {
  // biome-ignore format: one field per line
  const fields = [
    'frame.time_epoch', 'ip.src', 'udp.srcport', 'ip.dst', 'udp.dstport', 'sip.Call-ID', 'sip.Method',
    'sip.Status-Code', 'sip.CSeq.method', 'sip.resend', 'sip.r-uri',
  ];
  const args = ['-n', '-r', run.pcap, '-Y', 'sip && !icmp', '-T', 'fields', '-E', 'separator=/t'];
  for (const rule of run.decodeAs) args.push('-d', rule);
  for (const f of fields) args.push('-e', f);
  const { stdout } = await runTshark(args);
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const v = l.split('\t');
      return {
        time: Number(v[0]),
        src: v[1]!,
        srcPort: Number(v[2]),
        dst: v[3]!,
        dstPort: Number(v[4]),
        callId: v[5]!,
        method: v[6]!,
        status: v[7] ? Number(v[7]) : null,
        cseqMethod: v[8]!,
        resend: v[9] === '1' || v[9] === 'True',
        ruri: v[10] ?? '',
      };
    });
}

interface HepCount {
  packets: number;
  /** Packets that start with "HEP3". */
  hep3: number;
  sip: number;
  logs: number;
  /** Correlation ids of the type-100 logs. */
  logCorrelation: string[];
  /** Call-IDs of the SIP payloads (a per-call view of the count). */
  sipCallIds: string[];
}

/** A UDP socket on 127.0.0.1 counting HEP3 packets by payload type (chunk 0x0b: 1 SIP, 100 log). */
async function hepListener(): Promise<{ port: number; count: HepCount; close(): Promise<void> }> {
  const socket: Socket = createSocket('udp4');
  const count: HepCount = { packets: 0, hep3: 0, sip: 0, logs: 0, logCorrelation: [], sipCallIds: [] };
  socket.on('message', (msg) => {
    count.packets++;
    if (msg.length < 6 || msg.toString('latin1', 0, 4) !== 'HEP3') return;
    count.hep3++;
    let type = -1;
    let payload = '';
    let correlation = '';
    for (let o = 6; o + 6 <= msg.length; ) {
      const chunkType = msg.readUInt16BE(o + 2);
      const len = msg.readUInt16BE(o + 4);
      if (len < 6 || o + len > msg.length) break;
      const body = msg.subarray(o + 6, o + len);
      if (chunkType === 0x0b) type = body[0] ?? -1;
      else if (chunkType === 0x0f) payload = body.toString('latin1');
      else if (chunkType === 0x11) correlation = body.toString('latin1');
      o += len;
    }
    if (type === 1) {
      count.sip++;
      count.sipCallIds.push(/^Call-ID:\s*(.+?)\s*$/im.exec(payload)?.[1] ?? '');
    } else if (type === 100) {
      count.logs++;
      count.logCorrelation.push(correlation);
    }
  });
  await new Promise<void>((ok, fail) => {
    socket.once('error', fail);
    socket.bind(0, '127.0.0.1', () => ok());
  });
  return {
    port: socket.address().port,
    count,
    close: () => new Promise<void>((ok) => socket.close(() => ok())),
  };
}

function describeRun(label: string, run: KamailioRun): void {
  const outcome = new Map<string, number>();
  for (const c of run.calls) {
    const key = `${c.destinations.join('→')} ⇒ ${c.finalStatus}`;
    outcome.set(key, (outcome.get(key) ?? 0) + 1);
  }
  console.log(
    `[kamailio] ${label}: ${run.elapsedMs} ms (UAC ${run.uacElapsedMs} ms), port ${run.proxy.port}, ` +
      `UAC ok ${run.uac.successfulCalls} failed ${run.uac.failedCalls} (exit ${run.uacExitCode}), ` +
      `acc ${run.acc.length} lines, ${run.dispatches.length} dispatches, ${run.optionsProbes} OPTIONS probes, ` +
      `kernel drops ${run.droppedByKernel}\n  ${[...outcome].map(([k, n]) => `${n}× ${k}`).join('\n  ')}`,
  );
}

/** Checks a run's truth against tshark's reading of its capture, call by call. Returns the wire view. */
async function checkRun(run: KamailioRun, calls: number): Promise<Wire[]> {
  const wire = await tsharkSip(run);
  const proxy = run.proxy.ip;
  const port = run.proxy.port;
  const nameOf = new Map(run.destinations.map((d) => [d.ip, d.name]));
  const nameOfUri = new Map(run.destinations.map((d) => [d.uri, d.name]));

  // Every call SIPp placed is in its log, and SIPp's counters add up.
  expect(run.uac.createdCalls).toBe(calls);
  expect(run.calls).toHaveLength(calls);
  expect(run.uac.successfulCalls + run.uac.failedCalls).toBe(calls);
  expect(run.calls.filter((c) => c.finalStatus === 200 && c.byeStatus === 200)).toHaveLength(
    run.uac.successfulCalls,
  );
  expect(run.droppedByKernel).toBe(0);

  const fromProxy = wire.filter((w) => w.src === proxy && w.srcPort === port);
  for (const c of run.calls) {
    const mine = wire.filter((w) => w.callId === c.callId);
    // The caller's final answer: SIPp's log = the first final the proxy sent the UAC on the wire = acc.
    const final = mine.find(
      (w) => w.src === proxy && w.dst === run.uacIp && w.cseqMethod === 'INVITE' && (w.status ?? 0) >= 200,
    );
    expect(final?.status, c.callId).toBe(c.finalStatus);
    const acc = run.acc.filter((a) => a.callId === c.callId);
    const answered = acc.filter((a) => a.event === 'transaction answered' && a.method === 'INVITE');
    expect(
      answered.map((a) => a.status),
      c.callId,
    ).toEqual([c.finalStatus]);

    // Where the proxy sent the call: the wire (first copies, in order) = the destinations' logs =
    // Kamailio's own dispatch lines.
    const branches = mine.filter((w) => w.method === 'INVITE' && w.src === proxy && !w.resend);
    expect(
      branches.map((w) => nameOf.get(w.dst)),
      c.callId,
    ).toEqual(c.destinations);
    expect(
      run.dispatches.filter((d) => d.callId === c.callId).map((d) => nameOfUri.get(d.dst)),
      c.callId,
    ).toEqual(c.destinations);

    // Every failed branch is one "call missed" and one "request accounted" acc line, with the code the
    // destination sent on the wire, or 408 when it sent nothing before fr_timer.
    const failed = c.destinations
      .filter((_, i) => i < c.destinations.length - 1 || (c.finalStatus ?? 0) >= 300)
      .map((name) => {
        const d = run.destinations.find((x) => x.name === name)!;
        const sent = mine.find(
          (w) => w.src === d.ip && w.cseqMethod === 'INVITE' && (w.status ?? 0) >= 200,
        )?.status;
        return [d.uri, sent ?? 408];
      });
    for (const event of ['call missed', 'request accounted'] as const) {
      expect(
        acc.filter((a) => a.event === event).map((a) => [a.dst, a.status]),
        `${c.callId} ${event}`,
      ).toEqual(failed);
    }
    // Each destination's log counts the INVITE copies the wire shows (retransmissions included).
    for (const d of run.destinations) {
      const inv = d.invites.find((i) => i.callId === c.callId);
      const onWire = mine.filter((w) => w.method === 'INVITE' && w.dst === d.ip).length;
      expect(inv?.received ?? 0, `${c.callId} → ${d.name}`).toBe(onWire);
    }
    // An answered call's BYE went through the proxy and is accounted.
    if (c.byeStatus !== null) {
      expect(acc.filter((a) => a.method === 'BYE').map((a) => a.status)).toEqual([c.byeStatus]);
      expect(mine.filter((w) => w.method === 'BYE').map((w) => w.src)).toEqual([run.uacIp, proxy]);
    }
  }
  // No acc line or dispatch for a call SIPp did not place.
  const placed = new Set(run.calls.map((c) => c.callId));
  expect(run.acc.filter((a) => !placed.has(a.callId))).toEqual([]);
  expect(run.dispatches.filter((d) => !placed.has(d.callId))).toEqual([]);

  // OPTIONS probes: on the wire, from the proxy, as many to each destination as its log received;
  // every destination was probed before the first call.
  for (const d of run.destinations) {
    const probes = fromProxy.filter((w) => w.method === 'OPTIONS' && w.dst === d.ip).length;
    expect(probes, d.name).toBe(d.optionsReceived);
    expect(d.optionsReceived, d.name).toBeGreaterThan(0);
    expect(d.firstOptionsAt!, d.name).toBeLessThan(run.calls[0]!.invitedAt);
  }
  expect(run.optionsProbes).toBe(fromProxy.filter((w) => w.method === 'OPTIONS').length);
  return wire;
}

/** SIP datagrams Kamailio received or sent, in the capture. */
function atProxy(run: KamailioRun, wire: Wire[]): Wire[] {
  const { ip, port } = run.proxy;
  return wire.filter((w) => (w.src === ip && w.srcPort === port) || (w.dst === ip && w.dstPort === port));
}

gate.describe('Kamailio dispatcher in front of SIPp destinations, over loopback', () => {
  it('30 calls at 15 cps, no HEP: the truth agrees with tshark call by call', async () => {
    const run = await runKamailioCalls({ dir: dir(), calls: 30, rate: 15 });
    describeRun('no HEP', run);
    await checkRun(run, 30);
    // The scenario does what it claims: with round robin over [answer, unavailable, silent] and two
    // attempts, calls are answered at once, answered after a 503, and fail after a timeout and a 503.
    const paths = new Set(run.calls.map((c) => `${c.destinations.join(',')}=${c.finalStatus}`));
    expect(paths).toEqual(new Set(['answer=200', 'unavailable,answer=200', 'silent,unavailable=500']));
    // The silent branch fails over after fr_timer (1.5 s): the 503 branch starts ~1.5 s after the INVITE.
    const timedOut = run.calls.filter((c) => c.destinations[0] === 'silent');
    for (const c of timedOut) {
      const missed = run.acc.find(
        (a) => a.callId === c.callId && a.event === 'call missed' && a.status === 408,
      );
      const after = (missed?.time ?? Number.NaN) - c.invitedAt;
      expect(after, c.callId).toBeGreaterThan(1.4);
      expect(after, c.callId).toBeLessThan(2.5);
    }
    expect(run.elapsedMs).toBeLessThan(30_000);
  });

  it('HEP "script" and "mirror", two runs in parallel: HEP3 counted against the capture', async () => {
    const script = await hepListener();
    const mirror = await hepListener();
    let runs: [KamailioRun, KamailioRun];
    try {
      runs = await Promise.all([
        runKamailioCalls({
          dir: dir(),
          calls: 20,
          rate: 15,
          hep: { port: script.port, mode: 'script', hlog: true },
        }),
        runKamailioCalls({ dir: dir(), calls: 20, rate: 15, hep: { port: mirror.port, mode: 'mirror' } }),
      ]);
      await new Promise((r) => setTimeout(r, 300)); // the last HEP datagrams
    } finally {
      await script.close();
      await mirror.close();
    }
    const [s, m] = runs;
    expect(s.proxy.port).not.toBe(m.proxy.port);
    describeRun('HEP script', s);
    describeRun('HEP mirror', m);
    const sWire = atProxy(s, await checkRun(s, 20));
    const mWire = atProxy(m, await checkRun(m, 20));

    for (const [label, hep] of [
      ['script', script.count],
      ['mirror', mirror.count],
    ] as const) {
      expect(hep.packets, label).toBeGreaterThan(0);
      expect(hep.hep3, label).toBe(hep.packets);
    }

    // mirror: one HEP packet per SIP datagram Kamailio received or sent, retransmissions and its own
    // OPTIONS probes included.
    console.log(
      `[kamailio] HEP mirror: ${mirror.count.sip} SIP packets; capture: ${mWire.length} SIP datagrams at the proxy ` +
        `(${mWire.filter((w) => w.cseqMethod === 'OPTIONS').length} OPTIONS, ${mWire.filter((w) => w.resend).length} retransmissions)`,
    );
    expect(mirror.count.sip).toBe(mWire.length);
    expect([...mirror.count.sipCallIds].sort()).toEqual(mWire.map((w) => w.callId).sort());
    expect(mirror.count.logs).toBe(0);

    // script: the same minus what sip_trace() never sees: retransmissions, the OPTIONS probes and their
    // answers, the relayed 2xx ACK (Request-URI = the callee's Contact).
    const isRelayedAck = (w: Wire) =>
      w.method === 'ACK' && w.src === s.proxy.ip && w.ruri.startsWith('sip:callee@');
    const options = sWire.filter((w) => w.cseqMethod === 'OPTIONS').length;
    const resent = sWire.filter((w) => w.resend && w.cseqMethod !== 'OPTIONS').length;
    const relayedAck = sWire.filter(isRelayedAck).length;
    console.log(
      `[kamailio] HEP script: ${script.count.sip} SIP packets, ${script.count.logs} hlog events; capture: ` +
        `${sWire.length} SIP datagrams at the proxy, ${options} OPTIONS, ${resent} retransmissions, ${relayedAck} relayed 2xx ACKs`,
    );
    expect(script.count.sip).toBeLessThan(sWire.length);
    expect(script.count.sip).toBe(sWire.length - options - resent - relayedAck);
    const traced = sWire.filter((w) => w.cseqMethod !== 'OPTIONS' && !w.resend && !isRelayedAck(w));
    expect([...script.count.sipCallIds].sort()).toEqual(traced.map((w) => w.callId).sort());
    // hlog: one event per dispatch and one per failed branch, each keyed by its call's Call-ID.
    const missed = s.acc.filter((a) => a.event === 'call missed').length;
    expect(script.count.logs).toBe(s.dispatches.length + missed);
    const placed = new Set(s.calls.map((c) => c.callId));
    expect(script.count.logCorrelation.filter((id) => !placed.has(id))).toEqual([]);
  });

  it('no process of these runs is left running', () => {
    for (const d of dirs) expect(processesMentioning(d)).toEqual([]);
  });
});

/** PIDs whose command line mentions `text` (our run directories are unique). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}
