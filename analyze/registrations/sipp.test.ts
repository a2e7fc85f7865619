/**
 * Registrations against outside truth: real SIPp REGISTERs (test/sipp/uac-register.xml, one user per
 * call from an injection file) to a SIPp registrar that challenges every REGISTER, refuses some users
 * and loses the first 200 of some (test/sipp/uas-registrar.xml), captured on lo by tcpdump, decoded by our
 * pipeline into events and followed by the RegistrationTracker. What we say is compared with what SIPp
 * says user by user (its counters and its <log> lines) and with tshark's view of the same capture
 * (messages, retransmissions, and the times behind RRD and the per-second peak).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FileSource } from '../../capture/sources.js';
import { drive } from '../../core/drive.js';
import { CallbackSink } from '../../core/sink.js';
import { runSippCalls, type SippRun } from '../../test/oracle/sipp.js';
import { needs, ROOT, removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { tsharkFields } from '../../test/oracle/tshark.js';
import type { RegistrationRecord } from './record.js';
import type { RegistrationsSummary } from './summary.js';
import { RegistrationTracker } from './tracker.js';

// Own loopback addresses and port: other test files (and other checkouts on this machine) run SIPp
// on the defaults.
const UAC_IP = '127.0.7.2';
const UAS_IP = '127.0.7.3';
const PORT = 5192;

type Kind = 'ok' | 'slow' | 'bad' | 'quiet' | 'gone';
/**
 * 40 users: 25 register (asking 3600 or 300 s), 3 more too but the registrar's first 200 is lost (a
 * retransmission each), 4 are refused, 4 give up after the 401, 4 unregister.
 */
const USERS: Array<{ user: string; kind: Kind; expires: number }> = Array.from({ length: 40 }, (_, i) => {
  const kind: Kind =
    i % 10 === 3 ? 'quiet' : i % 10 === 7 ? 'gone' : i % 7 === 5 ? 'bad' : i % 8 === 1 ? 'slow' : 'ok';
  return {
    user: `${kind}${String(i).padStart(2, '0')}`,
    kind,
    expires: kind === 'gone' ? 0 : i % 2 ? 300 : 3600,
  };
});
const registers = (k: Kind) => k === 'ok' || k === 'slow';

const gate = needs('sipp', 'tcpdump', 'tshark', ROOT);

gate.describe('registrations: SIPp UAs and registrar, captured, against SIPp and tshark', () => {
  let dir: string;
  let run: SippRun;
  let tracker: RegistrationTracker;
  let records: Map<string, RegistrationRecord>;
  let summary: RegistrationsSummary;
  /** tshark: every SIP message of a REGISTER transaction (frame time, Call-ID, CSeq, method, status, resent, source). */
  let rows: Array<{
    t: number;
    callId: string;
    cseq: number;
    method: string;
    status: number;
    resent: boolean;
    src: string;
  }>;
  /** SIPp UAC's own log: user → 'ok' | 'forbidden' | 'challenged', and the granted expiry it read. */
  let sippSays: Map<string, { what: string; granted: string }>;

  beforeAll(async () => {
    dir = tmpDir('callscope-registrations-');
    const csv = join(dir, 'users.csv');
    writeFileSync(
      csv,
      `SEQUENTIAL\n${USERS.map((u) => `${u.user};${u.kind === 'gone' ? '*' : `<sip:${u.user}@${UAC_IP}:${PORT}>`};${u.expires}`).join('\n')}\n`,
    );
    run = await runSippCalls({
      dir,
      calls: USERS.length,
      rate: 20,
      port: PORT,
      uacIp: UAC_IP,
      uasIp: UAS_IP,
      uacScenario: 'register',
      traceLogs: true,
      uacArgs: ['-inf', csv, '-au', 'callscope', '-ap', 'secret', '-default_behaviors', 'all,-bye'],
    });
    tracker = new RegistrationTracker();
    const result = await drive(new FileSource(run.pcap), [new CallbackSink((e) => tracker.add(e))]);
    tracker.close((result.source.lastTimestamp ?? 0) * 1000);
    records = new Map(tracker.records().map((r) => [r.user ?? '', r]));
    summary = tracker.summary();
    rows = (
      await tsharkFields(run.pcap, 'sip.CSeq.method == "REGISTER" && !icmp', [
        'frame.time_epoch',
        'sip.Call-ID',
        'sip.CSeq.seq',
        'sip.Method',
        'sip.Status-Code',
        'sip.resend',
        'ip.src',
      ])
    ).map(([t, callId, cseq, method, status, resent, src]) => ({
      t: Number(t) * 1000,
      callId: callId!,
      cseq: Number(cseq),
      method: method!,
      status: status ? Number(status) : 0,
      resent: resent === '1' || resent === 'True',
      src: src!,
    }));
    sippSays = new Map();
    for (const line of readFileSync(run.files.uacLogs, 'utf8').split('\n')) {
      const m = /^outcome (\S+) (\S+)\s*(\S*)/.exec(line);
      if (m) sippSays.set(m[1]!, { what: m[2]!, granted: m[3]! });
    }
    console.log(
      `[registrations] SIPp UAC: ${run.uac.successfulCalls} ok, ${run.uac.failedCalls} failed, ` +
        `${run.uac.retransmissions} retransmissions; UAS retransmissions ${run.uas.retransmissions}; ` +
        `tshark: ${rows.length} REGISTER-transaction messages, ${rows.filter((r) => r.resent).length} resent; ` +
        `we: ${JSON.stringify({ outcomes: summary.outcomes, transactions: summary.transactions, authChallenges: summary.authChallenges, retransmissions: summary.retransmissions, rrdMs: summary.rrdMs, peakPerSecond: summary.peakPerSecond, live: summary.bindings.live })}`,
    );
  });

  afterAll(() => {
    if (dir) removeTmpDir(dir);
  });

  it('one record per user, with the outcome SIPp logged for that user', () => {
    expect(run.uac.createdCalls).toBe(USERS.length);
    expect(sippSays.size).toBe(USERS.length);
    expect(records.size).toBe(USERS.length);
    const expected = {
      ok: 'registered',
      slow: 'registered',
      gone: 'unregistered',
      bad: 'failed',
      quiet: 'challenged',
    } as const;
    for (const u of USERS) {
      const r = records.get(u.user)!;
      const sipp = sippSays.get(u.user)!;
      const where = `${u.user} (SIPp: ${sipp.what})`;
      expect(sipp.what, where).toBe(
        { ok: 'ok', slow: 'ok', gone: 'ok', bad: 'forbidden', quiet: 'challenged' }[u.kind],
      );
      expect(r.outcome, where).toBe(expected[u.kind]);
      expect(r.domain, where).toBe('callscope.test');
      expect(r.requestedExpires, where).toBe(u.expires);
      expect(r.transactions, where).toBe(u.kind === 'quiet' ? 1 : 2);
      expect(r.authChallenges, where).toBe(u.kind === 'quiet' ? 0 : 1);
      expect(r.finalStatus, where).toBe({ ok: 200, slow: 200, gone: 200, bad: 403, quiet: 401 }[u.kind]);
      expect(r.retransmissions, where).toBe(u.kind === 'slow' ? 1 : 0);
      // A UA that gave up after the 401: the capture ended before the wait for its new REGISTER did.
      expect(r.closedBy, where).toBe(u.kind === 'quiet' ? 'end-of-capture' : null);
      expect([r.uaIp, r.uaPort, r.registrarIp, r.registrarPort], where).toEqual([UAC_IP, PORT, UAS_IP, PORT]);
      expect(r.userAgent, where).toBe('callscope-oracle-ua');
      expect(r.server, where).toBe('callscope-oracle-registrar');
      // The registrar grants 600 s in the 200's Contact, and SIPp read the same from it.
      if (registers(u.kind)) expect([r.grantedExpires, sipp.granted], where).toEqual([600, '600']);
      else expect(r.grantedExpires, where).toBeNull();
    }
    // SIPp's counters: a registration is a successful call, a refusal or a UA giving up a failed one.
    const ok = USERS.filter((u) => registers(u.kind) || u.kind === 'gone').length;
    expect(run.uac.successfulCalls).toBe(ok);
    expect(run.uac.failedCalls).toBe(USERS.length - ok);
    expect(summary.successes).toBe(ok);
    expect(summary.failures).toBe(USERS.length - ok);
    expect(summary.failuresByStatus).toEqual({
      '401': USERS.filter((u) => u.kind === 'quiet').length,
      '403': USERS.filter((u) => u.kind === 'bad').length,
    });
  });

  it('transactions, challenges and retransmissions: as tshark counts the messages', () => {
    const requests = rows.filter((r) => r.method === 'REGISTER');
    const finals = (status: number) => rows.filter((r) => r.status === status && !r.resent).length;
    expect(summary.attempts).toBe(USERS.length);
    expect(summary.transactions).toBe(requests.filter((r) => !r.resent).length);
    expect(summary.authChallenges + summary.outcomes.challenged).toBe(finals(401));
    expect(summary.outcomes.registered + summary.outcomes.unregistered).toBe(finals(200));
    expect(summary.outcomes.failed).toBe(finals(403));
    // Retransmissions: the REGISTERs SIPp resent when the registrar "lost" its 200; tshark marks each
    // as resent.
    expect(summary.retransmissions).toBe(USERS.filter((u) => u.kind === 'slow').length);
    expect(summary.retransmissions).toBe(rows.filter((r) => r.resent).length);
    const ours = [...records.values()].reduce((n, r) => n + r.retransmissions, 0);
    expect(ours).toBe(summary.retransmissions);
    expect(requests.filter((r) => r.resent).length).toBe(run.uac.retransmissions);
  });

  it('RRD and response times: the first REGISTER to the final answer, as tshark times them', () => {
    const byCall = new Map<string, typeof rows>();
    for (const r of rows) byCall.set(r.callId, [...(byCall.get(r.callId) ?? []), r]);
    let compared = 0;
    for (const r of records.values()) {
      const msgs = byCall.get(r.callId)!;
      const first = Math.min(...msgs.filter((m) => m.method === 'REGISTER').map((m) => m.t));
      const lastCseq = Math.max(...msgs.map((m) => m.cseq));
      const final = msgs.find((m) => m.cseq === lastCseq && m.status >= 200)!;
      const expected = final.t - first;
      expect(Math.abs(r.responseMs! - expected), r.callId).toBeLessThan(0.002);
      if (r.outcome === 'registered' || r.outcome === 'unregistered') {
        expect(Math.abs(r.rrdMs! - expected), r.callId).toBeLessThan(0.002);
        compared++;
      } else expect(r.rrdMs, r.callId).toBeNull();
    }
    expect(compared).toBe(summary.successes);
    // The registrar takes 5–60 ms after the challenge round trip (700 ms more for the slow users).
    expect(summary.rrdMs.count).toBe(summary.successes);
    expect(summary.rrdMs.p50!).toBeGreaterThan(5);
    expect(summary.rrdMs.max!).toBeGreaterThan(700);
    const rrds = [...records.values()].filter((r) => r.rrdMs !== null).map((r) => r.rrdMs!);
    expect(summary.rrdMs.max).toBe(Math.max(...rrds));
  });

  it('attempts per second: the peak second as tshark counts first REGISTERs', () => {
    const seconds = new Map<number, number>();
    for (const r of rows)
      if (r.method === 'REGISTER' && r.cseq === 1 && !r.resent) {
        const s = Math.floor(r.t / 1000);
        seconds.set(s, (seconds.get(s) ?? 0) + 1);
      }
    const peak = Math.max(...seconds.values());
    const at = Math.min(...[...seconds].filter(([, n]) => n === peak).map(([s]) => s));
    expect(summary.peakPerSecond).toBe(peak);
    expect(summary.peakAt).toBe(at * 1000);
    expect(summary.series.buckets.reduce((n, b) => n + b.attempts, 0)).toBe(USERS.length);
  });

  it('bindings: the registered users, each until its 200 + the 600 s granted', () => {
    const registered = USERS.filter((u) => registers(u.kind));
    expect(summary.bindings.live).toBe(registered.length);
    expect(summary.bindings.aors).toBe(registered.length);
    for (const b of summary.bindings.listed) {
      const r = records.get(b.user!)!;
      const ok = rows.find((m) => m.callId === r.callId && m.status === 200 && !m.resent)!;
      expect(b.contact).toBe(`sip:${b.user}@${UAC_IP}:${PORT}`);
      expect(b.registeredAt).toBe(Math.floor(ok.t));
      expect(b.expiresAt).toBe(Math.floor(ok.t + 600_000));
    }
  });
});
