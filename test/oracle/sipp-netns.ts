/**
 * SIPp inside a network namespace of an OVS lab (test/oracle/ovs.ts): a UAS or UAC as a "VM", with
 * SIPp's own statistics file as the outside count of what it sent and received.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OvsLab } from './ovs.js';
import { parseSippStatCsv, type SippStats } from './sipp.js';

export interface NamespacedSipp {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exit: Promise<number | null>;
  readonly statsFile: string;
  readonly outputFile: string;
  /** SIPp's graceful quit (SIGUSR1, which writes the final statistics), then SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** The last row of SIPp's statistics file. */
  stats(): SippStats;
}

/**
 * A UAC scenario of our own: INVITE with a PCMA offer, ACK, SIPp replays g711a.pcap (236 packets,
 * 7.05 s) as RTP, a pause covering it (with margin for a loaded machine), BYE.
 */
export const RTP_UAC_SCENARIO = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callscope rtp uac">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/></action></nop>
  <pause milliseconds="9000"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: [service] <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
`;

export function writeRtpUacScenario(dir: string): string {
  const file = join(dir, 'rtp-uac.xml');
  writeFileSync(file, RTP_UAC_SCENARIO);
  return file;
}

/** Starts `sipp args` in `ns` with statistics, error and screen files under `dir/<name>.*`. */
export function startSippIn(
  lab: OvsLab,
  ns: string,
  name: string,
  dir: string,
  args: string[],
): NamespacedSipp {
  const statsFile = join(dir, `${name}.stat.csv`);
  const outputFile = join(dir, `${name}.out`);
  // biome-ignore format: option/value pairs
  const child = lab.spawnIn(ns, 'sipp', [
    ...args,
    '-nostdin',
    '-trace_stat', '-stf', statsFile, '-fd', '1', // a statistics row every second, so a running UAS can be read
    '-trace_err', '-error_file', join(dir, `${name}.err`),
    '-trace_screen', '-screen_file', join(dir, `${name}.screen`),
  ]);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString('latin1');
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString('latin1');
  });
  let exited = false;
  const exit = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exited = true;
      writeFileSync(outputFile, output);
      resolve(code);
    });
    child.once('error', () => {
      exited = true;
      resolve(null);
    });
  });
  return {
    name,
    child,
    exit,
    statsFile,
    outputFile,
    async stop() {
      if (exited) return;
      child.kill('SIGUSR1');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(timer);
    },
    stats() {
      if (!existsSync(statsFile))
        throw new Error(`SIPp ${name} wrote no statistics; output:\n${output.slice(-1500)}`);
      return parseSippStatCsv(readFileSync(statsFile, 'utf8'));
    },
  };
}

/** Waits until something listens on UDP `port` inside `ns`. */
export async function waitUdpListening(
  lab: OvsLab,
  ns: string,
  port: number,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const out = await lab.exec(ns, 'ss', ['-Hlun']);
    if (out.split('\n').some((line) => new RegExp(`:${port}\\s`).test(line))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on UDP ${port} in namespace ${ns} after ${timeoutMs} ms`);
}
