/**
 * A failover in a capture file, end to end without a network: `analyze` finds it, `run` stores it (and
 * the calls table), the store's summary gives it back, and the store queries count what it did — the
 * calls it cut and the re-REGISTER wave — against what the script made happen.
 */
import { execFile, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSummary } from '../../bin/report.js';
import { gratuitousArp } from '../../capture/generator/arp.js';
import { type Host, makeHost } from '../../capture/generator/frames.js';
import { expandMacros } from '../../dashboards/macros.js';
import { ingestFile } from '../../ingest/run.js';
import { openStore, type Store } from '../../ingest/store/client.js';
import { behind, FrameScript, sipText, T0 } from '../../test/fixtures/failover.js';
import { built, needs, removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { analyzeFile } from '../analyze.js';
import { storeSummary } from '../store-summary.js';
import type { AnalyzeSummary } from '../summary.js';
import { FAILOVER_ANNOTATION_SQL, failoverImpact } from './queries.js';

const CALLSCOPE = resolve(import.meta.dirname, '../../dist/bin/callscope.js');

const caller = makeHost(1, 0);
const vipOnA = makeHost(50, 0);
const vipOnB = behind(vipOnA, 0xbb);
const phones = Array.from({ length: 10 }, (_, i) => makeHost(10 + i, 0));

/** Node A answers what reaches it before this; B answers once the gratuitous ARP is out. */
const A_DIES = 3000;
const GARP = 3500;
/** What a sender resends after, when nothing answered (a UAC's retransmission). */
const RESEND = 600;

/**
 * 35 calls at 10/s to the VIP, each with a BYE 2 s after its answer (one caller never sends its BYE);
 * a REGISTER a second before the move and a wave of 10 after it. A answers until it dies; what is sent
 * while the address is down is resent after RESEND and answered by B, which knows none of A's dialogs
 * (481 to their BYEs).
 */
function script(): FrameScript {
  const s = new FrameScript();
  const serving = (t: number): Host | null => (t < A_DIES ? vipOnA : t >= GARP ? vipOnB : null);
  /** A request to the VIP at `t` and the answer of whoever serves then (resent once when nobody does). */
  const ask = (t: number, from: Host, first: string, dialog: Parameters<typeof sipText>[1], status = 200) => {
    // Requests go to the MAC the sender's ARP cache has: A's until the gratuitous ARP.
    const to = (at: number) => (at < GARP ? vipOnA : vipOnB);
    s.sip(t, from, to(t), sipText(first, dialog));
    let node = serving(t);
    let at = t;
    if (node === null) {
      at = t + RESEND;
      node = serving(at);
      s.sip(at, from, to(at), sipText(first, dialog));
    }
    if (node === null) throw new Error('script: resent into the outage');
    const code =
      node === vipOnB && dialog.cseq.endsWith('BYE') && dialog.callId.startsWith('a-') ? 481 : status;
    s.sip(
      at + 10,
      node,
      from,
      sipText(`SIP/2.0 ${code} ${code === 200 ? 'OK' : 'Call Does Not Exist'}`, { ...dialog, toTag: 'b' }),
    );
    return at + 10;
  };
  for (let i = 0; i < 35; i++) {
    const t = i * 100;
    // Calls A answered are `a-N`; B's are `b-N`.
    const callId = `${serving(t) === vipOnA ? 'a' : 'b'}-${i}`;
    const dialog = { callId, cseq: '1 INVITE', from: caller, to: vipOnA, fromTag: `f${i}` };
    const answered = ask(t, caller, `INVITE sip:u50@${vipOnA.ipText} SIP/2.0`, dialog);
    s.sip(
      answered + 10,
      caller,
      vipOnA,
      sipText(`ACK sip:u50@${vipOnA.ipText} SIP/2.0`, { ...dialog, cseq: '1 ACK', toTag: 'b' }),
    );
    if (i === 29) continue; // this caller never hangs up: nobody sees the call end
    ask(answered + 2000, caller, `BYE sip:u50@${vipOnA.ipText} SIP/2.0`, {
      ...dialog,
      cseq: '2 BYE',
      toTag: 'b',
    });
  }
  const register = (t: number, phone: Host, n: number) =>
    ask(t, phone, `REGISTER sip:${vipOnA.ipText} SIP/2.0`, {
      callId: `r-${phone.index}-${n}`,
      cseq: `${n} REGISTER`,
      from: phone,
      to: phone,
      fromTag: `p${phone.index}`,
    });
  register(100, phones[0]!, 1);
  register(1100, phones[1]!, 1);
  register(2100, phones[2]!, 1);
  register(3100, phones[3]!, 1); // in the outage: resent, answered by B
  phones.forEach((phone, k) => {
    register(4000 + k * 50, phone, 2);
  });
  s.add(GARP, gratuitousArp(vipOnB));
  s.add(GARP + 1000, gratuitousArp(vipOnB));
  // The capture goes on a while (media-less calls end at the capture's end).
  s.sip(
    9000,
    caller,
    phones[0]!,
    'OPTIONS sip:x SIP/2.0\r\nCall-ID: end\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n',
  );
  return s;
}

/** Last answer from A: the 200 to call 9's BYE (sent at 2910). */
const LAST_ANSWER = 2920;
/** First answer from B: its 481 to call 15's BYE (sent at 3510, the first request after the move). */
const FIRST_ANSWER = 3520;

describe('a failover in a capture file', () => {
  const dir = tmpDir('callscope-failover-file-');
  const pcap = join(dir, 'failover.pcap');
  let store: Store;
  let analyzed: AnalyzeSummary;
  let runId: string;

  beforeAll(async () => {
    script().writePcap(pcap);
    analyzed = await analyzeFile(pcap);
    store = await openStore({ dataDir: join(dir, 'store') });
    runId = (await ingestFile(pcap, { store, database: 'callscope', ttlDays: 0 })).runId;
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    removeTmpDir(dir);
  });

  it('analyze finds it, with its gap, and prints it', () => {
    expect(analyzed.failovers).toMatchObject({
      count: 1,
      omitted: 0,
      list: [
        {
          time: T0 + GARP,
          address: vipOnA.ipText,
          oldMac: vipOnA.macText,
          newMac: vipOnB.macText,
          oldVm: vipOnA.macText,
          newVm: vipOnB.macText,
          signal: 'gratuitous-arp',
          lastAnswerBefore: T0 + LAST_ANSWER,
          firstAnswerAfter: T0 + FIRST_ANSWER,
          gapMs: FIRST_ANSWER - LAST_ANSWER,
        },
      ],
      tracker: { failovers: 1, gratuitousArps: 2, withoutAnswer: 0 },
    });
    expect(analyzed.decode.arp).toEqual({ requests: 2, replies: 0, gratuitous: 2, other: 0 });
    const text = formatSummary(analyzed);
    expect(text).toContain('FAILOVERS  1');
    expect(text).toContain(`${vipOnA.macText} → ${vipOnB.macText}  by gratuitous-arp`);
    expect(text).toContain(`no answer for ${FIRST_ANSWER - LAST_ANSWER} ms`);
  });

  it('run stores one row, and the summary from the store is the capture’s', async () => {
    const rows = await query(`SELECT address, old_vm, new_vm, signal, gap_ms, run_id FROM failovers FINAL`);
    expect(rows).toEqual([
      {
        address: vipOnA.ipText,
        old_vm: vipOnA.macText,
        new_vm: vipOnB.macText,
        signal: 'gratuitous-arp',
        gap_ms: FIRST_ANSWER - LAST_ANSWER,
        run_id: runId,
      },
    ]);
    const fromStore = await storeSummary(store.client, { database: 'callscope', runId });
    expect(fromStore.failovers).toEqual(analyzed.failovers);
    expect(fromStore.decode.arp).toEqual(analyzed.decode.arp);
  });

  it('counts the calls it cut and the re-REGISTER wave', async () => {
    const impact = await failoverImpact(store.client, 'callscope', analyzed.failovers.list[0]!);
    // A's calls still up when it died: 10..29 (call 9's BYE was answered at 2920). 29 never ended.
    expect(impact).toMatchObject({
      callsCut: 20,
      callsWithoutBye: 1,
      registersBefore: 4,
      registersAfter: 10,
      usersRegisteringAfter: 10,
    });
    expect(impact.examples.every((id) => id.startsWith('a-'))).toBe(true);
  });

  it('is drawn by the annotation query', async () => {
    const sql = expandMacros(FAILOVER_ANNOTATION_SQL, {
      from: new Date(T0),
      to: new Date(T0 + 60_000),
      intervalSec: 10,
      vars: {},
    });
    const rows = await query(sql);
    expect(rows).toEqual([
      {
        time: new Date(T0 + GARP).toISOString().replace('T', ' ').replace('Z', ''),
        text: `failover of ${vipOnA.ipText}: ${vipOnA.macText} → ${vipOnB.macText} (gratuitous-arp), no answer for ${FIRST_ANSWER - LAST_ANSWER} ms`,
        tags: ['failover', vipOnA.ipText, vipOnB.macText],
      },
    ]);
  });

  const cli = needs(built(CALLSCOPE));
  cli.it(
    'travels as HEP from `capture` to `ingest` and is stored the same',
    async () => {
      const dataDir = join(dir, 'split');
      // biome-ignore format: option/value pairs
      const ingest = spawn(process.execPath, [
      CALLSCOPE, 'ingest', '--hep-listen', '127.0.0.1:0', '--data-dir', dataDir,
      '--log-format', 'json', '--log-level', 'info', '--stats-interval', '1',
    ]);
      let log = '';
      ingest.stderr.on('data', (c: Buffer) => {
        log += c.toString();
      });
      const exited = new Promise<number | null>((r) => ingest.once('exit', r));
      const run = promisify(execFile);
      try {
        let port = 0;
        for (const deadline = Date.now() + 30_000; port === 0 && Date.now() < deadline; ) {
          const started = /"msg":"HEP listener started".*?"tcpPort":(\d+)/.exec(log);
          if (started) port = Number(started[1]);
          else await new Promise((r) => setTimeout(r, 50));
        }
        expect(port, log.slice(-2000)).toBeGreaterThan(0);
        // biome-ignore format: option/value pairs
        const sent = JSON.parse((await run(process.execPath, [
        CALLSCOPE, 'capture', '--pcap', pcap, '--hep-to', `tcp:127.0.0.1:${port}`, '--json',
      ], { timeout: 30_000 })).stdout).hep.sent as number;
        // Stopped once the listener has every frame: SIGINT then flushes them into the store.
        const framesIn = () =>
          Math.max(0, ...[...log.matchAll(/"msg":"statistics".*?"frames":(\d+)/g)].map((m) => Number(m[1])));
        for (const deadline = Date.now() + 20_000; framesIn() < sent && Date.now() < deadline; )
          await new Promise((r) => setTimeout(r, 100));
        expect(framesIn()).toBe(sent);
      } finally {
        ingest.kill('SIGINT');
      }
      expect(await exited, log.slice(-2000)).toBe(0);
      const stats = JSON.parse(
        (await run(process.execPath, [CALLSCOPE, 'stats', '--data-dir', dataDir, '--json'])).stdout,
      );
      expect(stats.format).toBe('store');
      expect(stats.failovers.count).toBe(1);
      expect(stats.failovers.list).toEqual(analyzed.failovers.list);
    },
    60_000,
  );

  async function query(sql: string): Promise<Record<string, unknown>[]> {
    const result = await store.client.query({ query: sql, format: 'JSONEachRow' });
    return result.json<Record<string, unknown>>();
  }
});
