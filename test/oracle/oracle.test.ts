/**
 * Self-tests of the outside-oracle harness: tshark's sip,stat parser, real SIPp calls captured by
 * tcpdump, and the two agreeing with each other.
 */
import { createSocket } from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSippStatCsv, runSippCalls, type SippRun } from './sipp.js';
import { needs, ROOT, removeTmpDir, SHARED_CAPTURES, SHARED_PCAPS, tmpDir } from './tools.js';
import {
  foldToTsharkStatusCodes,
  parseTsharkSipStat,
  tsharkCount,
  tsharkKnownStatusCodes,
  tsharkSipStat,
  tsharkSipStatDetailed,
  writeSipUdpPcap,
} from './tshark.js';

const tshark = needs('tshark');
// tcpdump on loopback needs root.
const sipp = needs('sipp', 'tcpdump', 'tshark', ROOT);

// Own loopback addresses, so these runs never collide with other test files' SIPp runs (which use the
// defaults 127.0.0.2/127.0.0.3) on the same ports while vitest runs files in parallel.
const UAC_IP = '127.0.1.2';
const UAS_IP = '127.0.1.3';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeTmpDir(d);
});
function dir(): string {
  const d = tmpDir('callscope-oracle-');
  dirs.push(d);
  return d;
}

function record(label: string, run: SippRun, tshark: unknown): void {
  const brief = (s: SippRun['uac']) =>
    `created ${s.createdCalls} ok ${s.successfulCalls} failed ${s.failedCalls} retrans ${s.retransmissions}`;
  console.log(
    `[oracle] ${label}: ${run.elapsedMs} ms (UAC ${run.uacElapsedMs} ms), ` +
      `exit UAC ${run.uacExitCode} UAS ${run.uasExitCode}\n` +
      `  SIPp UAC: ${brief(run.uac)}\n  SIPp UAS: ${brief(run.uas)}\n  tshark: ${JSON.stringify(tshark)}`,
  );
}

describe('parsers (no tools needed)', () => {
  it('parses tshark sip,stat text, including the x99 "Others" buckets', () => {
    const text = [
      '===================================================================',
      'SIP Statistics',
      '',
      'Number of SIP messages: 10',
      'Number of resent SIP messages: 1',
      '',
      '* SIP Status Codes in reply packets',
      '  SIP 499 Client Error - Others :     3 Packets',
      '  SIP 183 Session Progress :     1 Packets',
      '  SIP 200 OK              :     5 Packets',
      '',
      '* List of SIP Request methods',
      '  FOO             :     1 Packets',
      '',
      '* Average setup time 0 ms',
      ' Min 0 ms',
      ' Max 0 ms',
      '===================================================================',
    ].join('\n');
    const { counts, responseLines } = parseTsharkSipStat(text);
    expect(counts).toEqual({
      messages: 10,
      retransmissions: 1,
      requests: { FOO: 1 },
      responses: { '499': 3, '183': 1, '200': 5 },
    });
    expect(responseLines.filter((l) => l.bucket).map((l) => l.code)).toEqual(['499']);
    expect(() => parseTsharkSipStat('tshark: The file "x" does not exist.')).toThrow(/SIP Statistics/);
  });

  it('parses the last row of a SIPp -trace_stat CSV', () => {
    const csv =
      'StartTime;TotalCallCreated;SuccessfulCall(C);FailedCall(C);Retransmissions(C);\n' +
      '2026-01-01\t00:00:00.0\t1.0;0;0;0;0;\n' +
      '2026-01-01\t00:00:01.0\t2.0;20;18;2;3;\n';
    const s = parseSippStatCsv(csv);
    expect(s).toMatchObject({ createdCalls: 20, successfulCalls: 18, failedCalls: 2, retransmissions: 3 });
    expect(s.raw['FailedCall(C)']).toBe('2');
  });
});

tshark.describe('tshark sip,stat', () => {
  needs(SHARED_CAPTURES).it('sip_ipv4_tcp.pcap: 7 messages, 1 INVITE', async () => {
    const file = join(SHARED_PCAPS!, 'sip_ipv4_tcp.pcap');
    const counts = await tsharkSipStat(file);
    console.log(`[oracle] tshark sip_ipv4_tcp.pcap: ${JSON.stringify(counts)}`);
    expect(counts.messages).toBe(7);
    expect(counts.requests.INVITE).toBe(1);
    expect(counts).toEqual({
      messages: 7,
      retransmissions: 0,
      requests: { INVITE: 1, ACK: 1, BYE: 1 },
      responses: { '100': 1, '180': 1, '200': 2 },
    });
  });

  it('status codes tshark has no name for are summed into x99 buckets', async () => {
    const d = dir();
    const file = join(d, 'odd-codes.pcap');
    const codes = [299, 419, 499, 555, 199, 183, 486];
    writeSipUdpPcap(
      file,
      codes.map(
        (code, i) =>
          `SIP/2.0 ${code} Whatever\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-${i}\r\n` +
          `From: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:b@127.0.0.3>;tag=2\r\nCall-ID: odd-${i}@x\r\n` +
          'CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n',
      ),
    );
    const { counts, responseLines } = await tsharkSipStatDetailed(file);
    console.log(`[oracle] tshark on unusual codes: ${JSON.stringify(responseLines)}`);
    expect(counts.responses).toEqual({ '299': 1, '499': 2, '599': 1, '199': 1, '183': 1, '486': 1 });

    const known = await tsharkKnownStatusCodes();
    expect(known.has(183)).toBe(true);
    expect(known.has(486)).toBe(true);
    expect(known.has(299)).toBe(false);
    expect(known.has(499)).toBe(false);
    const ours = { messages: 7, retransmissions: 0, requests: {}, responses: {} as Record<string, number> };
    for (const c of codes) ours.responses[String(c)] = 1;
    expect(foldToTsharkStatusCodes(ours, known)).toEqual(counts);
  });
});

sipp.describe('SIPp over loopback, captured by tcpdump', () => {
  it('UDP: 20 calls at 20 cps → 20 successes, 120 SIP messages in the capture', async () => {
    const run = await runSippCalls({
      dir: dir(),
      calls: 20,
      rate: 20,
      port: 5070,
      uacIp: UAC_IP,
      uasIp: UAS_IP,
    });
    const counts = await tsharkSipStat(run.pcap);
    record('UDP 20 calls', run, counts);
    expect(run.uac.successfulCalls).toBe(20);
    expect(run.uac.failedCalls).toBe(0);
    expect(run.uas.successfulCalls).toBe(20);
    expect(run.uacExitCode).toBe(0);
    expect(counts).toEqual({
      messages: 120,
      retransmissions: 0,
      requests: { INVITE: 20, ACK: 20, BYE: 20 },
      responses: { '180': 20, '200': 40 },
    });
  });

  it('TCP on port 6060: tshark needs -d tcp.port==6060,sip', async () => {
    const run = await runSippCalls({
      dir: dir(),
      calls: 10,
      rate: 20,
      transport: 'tcp',
      port: 6060,
      uacIp: UAC_IP,
      uasIp: UAS_IP,
    });
    const counts = await tsharkSipStat(run.pcap, { decodeAs: ['tcp.port==6060,sip'] });
    const undecoded = await tsharkSipStat(run.pcap);
    record('TCP 10 calls on 6060', run, { decodeAs: counts, without: undecoded.messages });
    expect(run.uac.successfulCalls).toBe(10);
    expect(run.uas.successfulCalls).toBe(10); // no FailedTcpClosed when the UAC hangs up its connection
    expect(run.uasExitCode).toBe(0);
    expect(counts.messages).toBe(60);
    expect(counts.requests).toEqual({ INVITE: 10, ACK: 10, BYE: 10 });
    expect(counts.responses).toEqual({ '180': 10, '200': 20 });
  });

  it('busy (486) and unavailable (503): SIPp counts failed calls, tshark sees the answers', async () => {
    const busy = await runSippCalls({
      dir: dir(),
      calls: 10,
      rate: 20,
      port: 5080,
      uasScenario: 'busy',
      uacIp: UAC_IP,
      uasIp: UAS_IP,
    });
    const busyCounts = await tsharkSipStat(busy.pcap);
    record('busy 10 calls', busy, busyCounts);
    expect(busy.uac.failedCalls).toBe(10);
    expect(busy.uac.successfulCalls).toBe(0);
    expect(busy.uac.raw['FailedRegexpDoesntMatch(C)']).toBe('10');
    expect(busy.uacExitCode).toBe(1);
    expect(busy.uas.successfulCalls).toBe(10);
    expect(busyCounts).toEqual({
      messages: 40,
      retransmissions: 0,
      requests: { INVITE: 10, ACK: 10 },
      responses: { '100': 10, '486': 10 },
    });

    const unavailable = await runSippCalls({
      dir: dir(),
      calls: 5,
      rate: 20,
      port: 5082,
      uasScenario: 'unavailable',
      uacIp: UAC_IP,
      uasIp: UAS_IP,
    });
    const unavailableCounts = await tsharkSipStat(unavailable.pcap);
    record('unavailable 5 calls', unavailable, unavailableCounts);
    expect(unavailable.uac.failedCalls).toBe(5);
    expect(unavailableCounts.responses).toEqual({ '100': 5, '503': 5 });
  });

  it('random-fail: SIPp failures equal the 486s tshark counts', async () => {
    const run = await runSippCalls({
      dir: dir(),
      calls: 20,
      rate: 20,
      port: 5084,
      uasScenario: 'random-fail',
      uacIp: UAC_IP,
      uasIp: UAS_IP,
    });
    const counts = await tsharkSipStat(run.pcap);
    record('random-fail 20 calls', run, counts);
    const busy = counts.responses['486'] ?? 0;
    expect(run.uac.successfulCalls + run.uac.failedCalls).toBe(20);
    expect(run.uac.failedCalls).toBe(busy);
    expect(counts.requests.INVITE).toBe(20);
    expect(counts.requests.BYE ?? 0).toBe(run.uac.successfulCalls);
    // answered: INVITE 100 180 200 ACK BYE 200 = 7; busy: INVITE 100 486 ACK = 4
    expect(counts.messages).toBe(7 * run.uac.successfulCalls + 4 * busy);
  });

  it('RTP: play_pcap_audio + rtp_echo → 236 RTP packets each way per call', async () => {
    const run = await runSippCalls({
      dir: dir(),
      calls: 2,
      rate: 10,
      port: 5086,
      uacScenario: 'rtp',
      uacIp: UAC_IP,
      uasIp: UAS_IP,
    });
    const counts = await tsharkSipStat(run.pcap);
    const rtp = await tsharkCount(run.pcap, 'rtp', { extraArgs: ['-o', 'rtp.heuristic_rtp:TRUE'] });
    record('RTP 2 calls', run, { ...counts, rtpPackets: rtp });
    expect(run.uac.successfulCalls).toBe(2);
    expect(counts.messages).toBe(12);
    // Exact unless tcpdump reports kernel drops on a loaded machine.
    expect(rtp).toBeLessThanOrEqual(2 * 2 * 236);
    expect(rtp).toBeGreaterThanOrEqual(2 * 2 * 236 - run.droppedByKernel);
  });

  it('refuses non-loopback addresses before starting anything', async () => {
    await expect(runSippCalls({ dir: dir(), calls: 1, rate: 1, uasIp: '192.0.2.2' })).rejects.toThrow(
      /loopback/,
    );
    await expect(runSippCalls({ dir: dir(), calls: 1, rate: 1, uacIp: 'localhost' })).rejects.toThrow(
      /loopback/,
    );
  });

  it('a taken UAS port fails fast, before anything is started', async () => {
    const socket = createSocket('udp4');
    await new Promise<void>((ok, fail) => {
      socket.once('error', fail);
      socket.bind(5090, UAS_IP, () => ok());
    });
    try {
      const started = Date.now();
      const error: Error = await runSippCalls({
        dir: dir(),
        calls: 1,
        rate: 1,
        port: 5090,
        uacIp: UAC_IP,
        uasIp: UAS_IP,
      }).then(
        () => new Error('expected a rejection'),
        (e: Error) => e,
      );
      console.log(
        `[oracle] taken port → rejected after ${Date.now() - started} ms: ${error.message.split('\n')[0]}`,
      );
      expect(error.message).toMatch(/127\.0\.1\.3:5090 is already in use/);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      socket.close();
    }
  });

  it('no tcpdump or SIPp of these runs is left running', () => {
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
