/**
 * Every outcome as it appears on the wire: the ladders real UAs, a stateful proxy and a B2BUA write, and
 * the ground truth (in the call record's terms) checked against what a reader of the capture can see.
 * The capture is read back here with a pcap walk of our own and with tshark, never with the generator's
 * code, so the truth is checked against the bytes, not against itself.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallOutcome } from '../../core/call.js';
import { needs, removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { runTshark, tsharkSipStat } from '../../test/oracle/tshark.js';
import { streamKey, tsharkRtpStreams } from '../../test/oracle/tshark-rtp.js';
import {
  type CallTruth,
  EVERY_OUTCOME,
  type GroundTruth,
  generateCapture,
  OUTCOMES,
  type Outcome,
  parseOutcomeMix,
} from './generate.js';
import { apportion, DEFAULT_OUTCOMES, resolveOptions } from './options.js';

const dir = tmpDir('callscope-outcomes-');
afterAll(() => removeTmpDir(dir));

/** One SIP message as read back from the capture. */
interface WireSip {
  /** Capture time, ms since the epoch. */
  ms: number;
  src: string;
  dst: string;
  text: string;
  method: string | null;
  code: number | null;
  headers: [string, string][];
  body: string;
}

/** SIP over UDP port 5060 from a classic pcap with Ethernet (optionally 802.1Q) and IPv4. */
function readSip(file: string): WireSip[] {
  const b = readFileSync(file);
  const nano = b.readUInt32LE(0) === 0xa1b23c4d;
  const out: WireSip[] = [];
  const ip = (o: number) => [b[o], b[o + 1], b[o + 2], b[o + 3]].join('.');
  for (let o = 24; o < b.length; ) {
    const sec = b.readUInt32LE(o);
    const frac = b.readUInt32LE(o + 4);
    const caplen = b.readUInt32LE(o + 8);
    const f = o + 16;
    o = f + caplen;
    const l3 = b.readUInt16BE(f + 12) === 0x8100 ? f + 18 : f + 14;
    if (b[l3 + 9] !== 17) continue;
    const l4 = l3 + (b[l3] & 15) * 4;
    if (b.readUInt16BE(l4) !== 5060 && b.readUInt16BE(l4 + 2) !== 5060) continue;
    const text = b.subarray(l4 + 8, f + caplen).toString('latin1');
    const [head, body] = [text.slice(0, text.indexOf('\r\n\r\n')), text.slice(text.indexOf('\r\n\r\n') + 4)];
    const [first, ...lines] = head.split('\r\n');
    const status = /^SIP\/2\.0 (\d{3}) /.exec(first);
    out.push({
      ms: sec * 1000 + (nano ? frac / 1e6 : frac / 1e3),
      src: ip(l3 + 12),
      dst: ip(l3 + 16),
      text,
      method: status ? null : first.split(' ')[0],
      code: status ? Number(status[1]) : null,
      headers: lines.map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
      body,
    });
  }
  return out;
}

const all = (m: WireSip, name: string) => m.headers.filter(([n]) => n === name).map(([, v]) => v);
const one = (m: WireSip, name: string) => all(m, name)[0];
const tagOf = (value: string | undefined) => (value ? (/;tag=([^;]+)/.exec(value)?.[1] ?? null) : null);
const cseqOf = (m: WireSip) => {
  const [n, method] = one(m, 'CSeq').split(' ');
  return { n: Number(n), method };
};
const branchOf = (via: string) => /;branch=([^;]+)/.exec(via)![1];
const step = (m: WireSip) => m.method ?? String(m.code);
const vmIp = (vm: string) => `10.0.0.${vm.slice(2)}`;
/** The Reason header as the record holds it. */
const reasonOf = (m: WireSip | undefined) => {
  const r = m && one(m, 'Reason');
  if (!r) return null;
  const cause = /;cause=(\d+)/.exec(r);
  const text = /;text="([^"]*)"/.exec(r);
  return { protocol: r.split(';')[0], cause: cause ? Number(cause[1]) : null, text: text ? text[1] : null };
};

/** core/call.ts's classes, from the final status the caller got. */
function outcomeOf(status: number | null): CallOutcome {
  if (status === null) return 'noAnswer';
  if (status < 300) return 'answered';
  if (status < 400) return 'redirected';
  if (status === 486 || status === 600) return 'busy';
  if (status === 487) return 'cancelled';
  if ([401, 404, 407, 480, 603, 604, 606, 607, 608].includes(status)) return 'rejected';
  return 'failed';
}

let truth: GroundTruth;
let file: string;
let wire: Map<string, WireSip[]>;
const truthsOf = (o: Outcome) => truth.calls.filter((c) => c.outcome === o);
const ladderOf = (c: CallTruth) => wire.get(c.callId)!;

beforeAll(() => {
  file = join(dir, 'every-outcome.pcap');
  // Two of each outcome, so the outcomes with two variants show both.
  truth = generateCapture({
    output: file,
    seed: 21,
    vms: 5,
    calls: 2 * OUTCOMES.length,
    callsPerSecond: 2,
    callDurationSec: 1.5,
    outcomes: EVERY_OUTCOME,
    vlan: 7,
    rtp: { jitterMs: 2, lossRate: 0.01 },
  });
  wire = new Map();
  for (const m of readSip(file)) {
    const id = one(m, 'Call-ID');
    wire.set(id, [...(wire.get(id) ?? []), m]);
  }
});

describe('the outcome mix', () => {
  it('keeps the original mix and its apportionment: new outcomes weigh 0 unless asked for', () => {
    for (const k of OUTCOMES.slice(6)) expect(DEFAULT_OUTCOMES[k]).toBe(0);
    const counts: Record<string, number> = {};
    for (const k of apportion(50, DEFAULT_OUTCOMES)) counts[k] = (counts[k] ?? 0) + 1;
    expect(counts).toEqual({
      answered: 35,
      busy: 3,
      cancelled: 3,
      unavailable: 3,
      noAnswer: 3,
      challenged: 3,
    });
  });

  it('parses the command-line spelling', () => {
    expect(parseOutcomeMix('all')).toEqual(EVERY_OUTCOME);
    expect(Object.values(EVERY_OUTCOME)).toEqual(OUTCOMES.map(() => 1));
    const mix = parseOutcomeMix('answered=70, busy=6,b2bua,proxiedFailover=0.5');
    expect({
      answered: mix.answered,
      busy: mix.busy,
      b2bua: mix.b2bua,
      failover: mix.proxiedFailover,
    }).toEqual({
      answered: 70,
      busy: 6,
      b2bua: 1,
      failover: 0.5,
    });
    expect(mix.noAnswer).toBe(0);
    expect(() => parseOutcomeMix('answered,hungUp')).toThrow(/unknown outcome "hungUp"/);
    expect(() => parseOutcomeMix('busy=-1')).toThrow(/>= 0/);
    expect(() => parseOutcomeMix('busy=')).toThrow(/>= 0/);
    expect(() => parseOutcomeMix('busy=1=2')).toThrow(/>= 0/);
  });

  it('asks for the VMs a PBX, a proxy and a failover destination need', () => {
    const o = { output: join(dir, 'x.pcap') };
    expect(() => resolveOptions({ ...o, vms: 2, outcomes: { b2bua: 1 } })).toThrow(/vms >= 3/);
    expect(() => resolveOptions({ ...o, vms: 2, outcomes: { proxied: 1 } })).toThrow(/vms >= 3/);
    expect(() => resolveOptions({ ...o, vms: 3, outcomes: { proxiedFailover: 1 } })).toThrow(/vms >= 4/);
    expect(resolveOptions({ ...o, vms: 3, outcomes: { b2bua: 1, proxied: 1 } }).vms).toBe(3);
  });

  it('apportions every outcome exactly; a B2BUA call has a truth per leg', () => {
    const per: Record<string, number> = {};
    for (const c of truth.calls) per[c.outcome] = (per[c.outcome] ?? 0) + 1;
    expect(per).toEqual(Object.fromEntries(OUTCOMES.map((k) => [k, k === 'b2bua' ? 4 : 2])));
    expect(wire.size).toBe(truth.calls.length);
    expect(new Set(truth.calls.map((c) => c.callId)).size).toBe(truth.calls.length);
  });
});

describe('ladders', () => {
  it('rejected: 603 Decline after ringing, or 404 Not Found, each with its Q.850 cause, then ACK', () => {
    const [decline, notFound] = truthsOf('rejected').map(ladderOf);
    expect(decline.map(step)).toEqual(['INVITE', '100', '180', '603', 'ACK']);
    expect(reasonOf(decline[3])).toEqual({ protocol: 'Q.850', cause: 21, text: 'Call rejected' });
    expect(notFound.map(step)).toEqual(['INVITE', '100', '404', 'ACK']);
    expect(reasonOf(notFound[2])?.cause).toBe(1);
    for (const l of [decline, notFound]) {
      const ack = l[l.length - 1];
      // A non-2xx ACK belongs to the INVITE's transaction: same branch, same CSeq number, the refusal's tag.
      expect(branchOf(one(ack, 'Via'))).toBe(branchOf(one(l[0], 'Via')));
      expect(cseqOf(ack)).toEqual({ n: cseqOf(l[0]).n, method: 'ACK' });
      expect(tagOf(one(ack, 'To'))).toBe(tagOf(one(l[l.length - 2], 'To')));
    }
  });

  it('redirected: 302 with the new target in Contact and a Diversion header', () => {
    for (const c of truthsOf('redirected')) {
      const l = ladderOf(c);
      expect(l.map(step)).toEqual(['INVITE', '100', '302', 'ACK']);
      expect(one(l[2], 'Contact')).toMatch(/^<sip:9\d{3}@10\.0\.0\.\d+:5060>$/);
      expect(one(l[2], 'Diversion')).toBe(`<${c.to}>;reason=unconditional`);
    }
  });

  it('failed: 500 with cause 127, and 408 after the server’s 32 s Timer B with cause 102', () => {
    const [error, timeout] = truthsOf('failed').map(ladderOf);
    expect(error.map(step)).toEqual(['INVITE', '100', '500', 'ACK']);
    expect(reasonOf(error[2])?.cause).toBe(127);
    expect(timeout.map(step)).toEqual(['INVITE', '100', '408', 'ACK']);
    expect(reasonOf(timeout[2])?.cause).toBe(102);
    expect(timeout[2].ms - timeout[0].ms).toBeGreaterThan(32_000);
  });

  it('calleeHangup: the BYE comes from the callee with the tags swapped', () => {
    for (const c of truthsOf('calleeHangup')) {
      const l = ladderOf(c);
      expect(l.map(step)).toEqual(['INVITE', '100', '180', '200', 'ACK', 'BYE', '200']);
      const bye = l[5];
      expect(bye.src).toBe(vmIp(c.calleeVm));
      expect(tagOf(one(bye, 'From'))).toBe(c.toTag);
      expect(tagOf(one(bye, 'To'))).toBe(c.fromTag);
      expect(reasonOf(bye)).toEqual({ protocol: 'Q.850', cause: 16, text: 'Normal call clearing' });
    }
  });

  it('reInvite: hold accepted (sendonly/recvonly), a G.722-only offer refused with 488, the call goes on', () => {
    for (const c of truthsOf('reInvite')) {
      const l = ladderOf(c);
      expect(l.map(step)).toEqual([
        'INVITE',
        '100',
        '180',
        '200',
        'ACK',
        'INVITE',
        '200',
        'ACK',
        'INVITE',
        '488',
        'ACK',
        'BYE',
        '200',
      ]);
      const n = cseqOf(l[0]).n;
      const [hold, held, , resume, refusal, refusalAck, bye] = l.slice(5);
      expect([cseqOf(hold).n, cseqOf(resume).n]).toEqual([n + 1, n + 2]);
      // In-dialog: To carries the callee's tag, the Request-URI is its Contact.
      for (const r of [hold, resume]) {
        expect(tagOf(one(r, 'To'))).toBe(c.toTag);
        expect(r.text.split(' ')[1]).toBe(one(l[3], 'Contact').slice(1, -1));
      }
      expect(hold.body).toContain('a=sendonly');
      expect(held.body).toContain('a=recvonly');
      expect(resume.body).toContain('a=rtpmap:9 G722/8000');
      expect(one(refusal, 'Warning')).toMatch(/^305 /);
      expect(reasonOf(refusal)?.cause).toBe(88);
      expect(branchOf(one(refusalAck, 'Via'))).toBe(branchOf(one(resume, 'Via')));
      if (bye.src === vmIp(c.callerVm)) expect(cseqOf(bye).n).toBe(n + 3);
      expect(c).toMatchObject({
        reInvites: 2,
        reInvitesRejected: 1,
        finalStatus: 200,
        recordOutcome: 'answered',
      });
    }
    // Once on hold the callee stops sending: its stream is shorter than the holding caller's.
    for (const c of truthsOf('reInvite')) {
      const [fromCaller, fromCallee] = [c.callerVm, c.calleeVm].map(
        (vm) => truth.rtpStreams.find((s) => s.callId === c.callId && s.src === vmIp(vm))!,
      );
      expect(fromCallee.packetsSent).toBeLessThan(fromCaller.packetsSent * 0.6);
    }
  });

  it('b2bua: leg B has its own Call-ID, names leg A in X-CID, and both share the Session-ID', () => {
    const legs = truthsOf('b2bua');
    expect(legs.map((c) => c.leg)).toEqual(['a', 'b', 'a', 'b']);
    for (let i = 0; i < legs.length; i += 2) {
      const [a, b] = [legs[i], legs[i + 1]];
      expect(a.linkedCallIds).toEqual([b.callId]);
      expect(b.linkedCallIds).toEqual([a.callId]);
      // The PBX is the callee of leg A and the caller of leg B.
      expect(a.calleeVm).toBe(b.callerVm);
      expect(a.callerVm).not.toBe(b.calleeVm);
      const [la, lb] = [ladderOf(a), ladderOf(b)];
      for (const l of [la, lb])
        expect(l.map(step)).toEqual(['INVITE', '100', '180', '200', 'ACK', 'BYE', '200']);
      expect(one(lb[0], 'X-CID')).toBe(a.callId);
      expect(one(la[0], 'X-CID')).toBeUndefined();
      const uuid = /^([0-9a-f]{32});remote=([0-9a-f]{32})$/;
      const session = (m: WireSip) => uuid.exec(one(m, 'Session-ID'))!.slice(1);
      const [caller, none] = session(la[0]);
      expect(none).toBe('0'.repeat(32));
      expect(session(lb[0])).toEqual([caller, none]);
      // The PBX's own 100 Trying has the null UUID (RFC 7989); the callee's answers carry its UUID.
      expect(session(la[1])).toEqual([none, caller]);
      const callee = session(lb[3])[0];
      expect(callee).not.toBe(none);
      expect(session(la[3])).toEqual([callee, caller]);
      for (const l of [la, lb]) {
        expect(all(l[5], 'Session-ID')).toHaveLength(1);
        expect(reasonOf(l[5])?.cause).toBe(16);
      }
      // The hangup crosses the PBX: the BYE on the far leg follows the one on the near leg.
      const [first, second] = la[5].ms < lb[5].ms ? [la, lb] : [lb, la];
      expect(first[5].src === vmIp(a.callerVm) || first[5].src === vmIp(b.calleeVm)).toBe(true);
      expect(second[5].src).toBe(vmIp(a.calleeVm));
      expect(a.endedBy).toBe(b.endedBy);
      // Media is anchored: each leg's RTP runs between its own two ends.
      for (const leg of [a, b]) {
        const streams = truth.rtpStreams.filter((s) => s.callId === leg.callId);
        expect(streams.map((s) => [s.src, s.dst].sort().join('-'))).toEqual(
          Array(2).fill([vmIp(leg.callerVm), vmIp(leg.calleeVm)].sort().join('-')),
        );
      }
    }
  });

  it('proxied: one Call-ID over two hops; the proxy adds its Via, Record-Route, and takes one off Max-Forwards', () => {
    for (const c of truthsOf('proxied')) {
      const l = ladderOf(c);
      const [caller, proxy, callee] = [c.callerVm, c.proxyVm!, c.calleeVm].map(vmIp);
      const pairs = new Set(l.map((m) => [m.src, m.dst].sort().join('-')));
      expect(pairs).toEqual(new Set([[caller, proxy].sort().join('-'), [proxy, callee].sort().join('-')]));
      // Every end-to-end request and every relayed response is on the wire once per hop.
      const farHop = l.filter((m) => m.src === callee || m.dst === callee).map(step);
      const nearHop = l.filter((m) => m.src === caller || m.dst === caller).map(step);
      expect(farHop).toEqual(['INVITE', '100', '180', '200', 'ACK', 'BYE', '200']);
      expect(nearHop).toEqual(['INVITE', '100', '180', '200', 'ACK', 'BYE', '200']);
      const [inviteIn, inviteOut] = l.filter((m) => m.method === 'INVITE');
      expect(all(inviteIn, 'Via')).toHaveLength(1);
      const vias = all(inviteOut, 'Via');
      expect(vias).toHaveLength(2);
      expect(vias[0]).toMatch(new RegExp(`^SIP/2\\.0/UDP ${proxy}:5060;branch=z9hG4bK.+\\.0$`));
      expect(vias[1]).toBe(`${one(inviteIn, 'Via')}=5060;received=${caller}`);
      expect([one(inviteIn, 'Max-Forwards'), one(inviteOut, 'Max-Forwards')]).toEqual(['70', '69']);
      expect(one(inviteOut, 'Record-Route')).toBe(`<sip:${proxy};lr>`);
      expect(cseqOf(inviteOut)).toEqual(cseqOf(inviteIn));
      // Responses lose the proxy's Via on their way back; in-dialog requests carry the route set.
      for (const m of l.filter((x) => x.code !== null))
        expect(all(m, 'Via')).toHaveLength(m.dst === proxy ? 2 : 1);
      const ok = l.find((m) => m.code === 200 && m.dst === caller)!;
      expect(one(ok, 'Record-Route')).toBe(`<sip:${proxy};lr>`);
      const byeIn = l.find((m) => m.method === 'BYE' && m.dst === proxy)!;
      expect(one(byeIn, 'Route')).toBe(`<sip:${proxy};lr>`);
      expect(c).toMatchObject({ hops: 2, inviteTransactions: 1, finalStatus: 200, proxyVm: c.proxyVm });
    }
  });

  it('proxiedFailover: the first destination answers 503 (ACKed by the proxy), a second branch answers the call', () => {
    for (const c of truthsOf('proxiedFailover')) {
      const l = ladderOf(c);
      const proxy = vmIp(c.proxyVm!);
      const caller = vmIp(c.callerVm);
      const out = l.filter((m) => m.method === 'INVITE' && m.src === proxy);
      expect(out).toHaveLength(2);
      const [first, second] = out;
      expect(first.dst).not.toBe(second.dst);
      expect(second.dst).toBe(vmIp(c.calleeVm));
      const [b0, b1] = out.map((m) => branchOf(all(m, 'Via')[0]));
      expect(b0.replace(/\.0$/, '.1')).toBe(b1);
      const fromFirst = l.filter((m) => m.src === first.dst || m.dst === first.dst).map(step);
      expect(fromFirst).toEqual(['INVITE', '100', '503', 'ACK']);
      const failAck = l.find((m) => m.method === 'ACK' && m.dst === first.dst)!;
      expect(all(failAck, 'Via').map(branchOf)).toEqual([b0]);
      // The caller never sees the failed branch.
      expect([
        ['100', '180', '200', '200'],
        ['100', '180', '200', 'BYE'],
      ]).toContainEqual(l.filter((m) => m.dst === caller).map(step));
      expect(c.hopPath[1].branches.map((b) => [b.branch, b.finalStatus])).toEqual([
        [b0, 503],
        [b1, 200],
      ]);
      expect(c).toMatchObject({ hops: 2, recordOutcome: 'answered', finalStatus: 200 });
    }
  });
});

describe('the truth is what the wire shows', () => {
  it('messages and retransmissions per Call-ID', () => {
    for (const c of truth.calls) {
      const l = ladderOf(c);
      const seen = new Set<string>();
      let resent = 0;
      for (const m of l) {
        const key = `${m.src}>${m.dst}|${m.text}`;
        if (seen.has(key)) resent++;
        seen.add(key);
      }
      expect({ id: c.callId, messages: l.length, resent }).toEqual({
        id: c.callId,
        messages: c.messages,
        resent: c.retransmissions,
      });
    }
  });

  it('distinct messages: a proxy forwarding or relaying a message on the wire makes no new message', () => {
    // A copy keeps everything but the hop-by-hop headers (and a forwarded INVITE's Request-URI).
    const hopByHop = /^(Via|Max-Forwards|Route|Record-Route|Content-Length|Content-Type)$/;
    const norm = (m: WireSip) =>
      [step(m), ...m.headers.filter(([n]) => !hopByHop.test(n)).map(([n, v]) => `${n}: ${v}`), m.body].join(
        '\n',
      );
    for (const c of truth.calls) {
      const firstFrom = new Map<string, string>();
      let copies = 0;
      for (const m of ladderOf(c)) {
        const key = norm(m);
        const from = firstFrom.get(key);
        if (from === undefined) firstFrom.set(key, m.src);
        else if (from !== m.src) copies++;
      }
      expect(c.distinctMessages, c.callId).toBe(c.messages - copies);
      if (c.hops === 1) expect(c.distinctMessages).toBe(c.messages);
    }
    // Proxied: 14 on the wire, 6 of them forwards or relays; both 100 Trying are originals.
    for (const c of truthsOf('proxied')) expect([c.messages, c.distinctMessages]).toEqual([14, 8]);
  });

  it('linking keys: X-CID, the Session-ID UUID of the INVITE sender, the edge leg', () => {
    for (const c of truth.calls) {
      const invite = ladderOf(c)[0];
      const xCid = one(invite, 'X-CID') ?? null;
      const uuid = one(invite, 'Session-ID')?.split(';')[0] ?? null;
      expect(c.correlation).toEqual({ xCid, sessionId: uuid, icid: null });
      expect(c.edgeCallId).toBe(xCid ?? c.callId);
      expect(c.linkedBy).toBe(xCid === null ? null : 'x-cid');
    }
  });

  it('outcome, status, tags, times, hops and transactions: the call record one would derive', () => {
    for (const c of truth.calls) {
      const l = ladderOf(c);
      const caller = vmIp(c.callerVm);
      const initial = l.filter((m) => m.method === 'INVITE' && tagOf(one(m, 'To')) === null);
      const callerInvites = initial.filter((m) => m.src === caller);
      const lastCseq = Math.max(...callerInvites.map((m) => cseqOf(m).n));
      const finals = l.filter(
        (m) =>
          m.dst === caller &&
          (m.code ?? 0) >= 200 &&
          cseqOf(m).method === 'INVITE' &&
          cseqOf(m).n === lastCseq,
      );
      const final = finals.at(0);
      const firstOf = (p: (m: WireSip) => boolean) => l.find(p)?.ms ?? null;
      const start = l[0].ms;
      // Ringing and answer are what the caller got; a proxy's far hop sees them a little earlier.
      const toCaller = (m: WireSip) => m.dst === caller && cseqOf(m).method === 'INVITE';
      const ringing = firstOf((m) => toCaller(m) && m.code !== null && m.code >= 180 && m.code < 190);
      const answer = firstOf((m) => toCaller(m) && m.code === 200);
      const bye = l.find((m) => m.method === 'BYE');
      const cancel = l.find((m) => m.method === 'CANCEL');
      const endMessage = answer !== null ? bye : (cancel ?? final);
      const end = endMessage?.ms ?? start + 32_000;
      const near = (a: number | null, b: number | null) =>
        a === null || b === null ? expect(a).toBe(b) : expect(Math.abs(a - b)).toBeLessThan(1e-3);
      const label = `${c.outcome} ${c.callId}`;
      expect(c.finalStatus, label).toBe(final?.code ?? null);
      expect(c.reasonPhrase, label).toBe(final ? final.text.split('\r\n')[0].slice(12) : null);
      expect(c.recordOutcome, label).toBe(outcomeOf(c.finalStatus));
      expect(c.fromTag, label).toBe(tagOf(one(l[0], 'From')));
      expect(c.toTag, label).toBe(tagOf(final && one(final, 'To')));
      expect(c.reason, label).toEqual(reasonOf(endMessage));
      const endedBy =
        answer !== null
          ? bye!.src === caller
            ? 'caller'
            : 'callee'
          : cancel
            ? 'caller'
            : ['busy', 'rejected', 'redirected'].includes(c.recordOutcome)
              ? 'callee'
              : 'network';
      expect(c.endedBy, label).toBe(endedBy);
      const byeOk = bye && l.some((m) => m.code === 200 && one(m, 'CSeq') === one(bye, 'CSeq'));
      expect(c.byeAnswered, label).toBe(answer !== null && Boolean(byeOk));
      near(c.startMs, start);
      near(c.ringingMs, ringing);
      near(c.answerMs, answer);
      near(c.endMs, end);
      near(c.pddMs, ringing !== null ? ringing - start : final ? final.ms - start : null);
      near(c.setupMs, answer === null ? null : answer - start);
      near(c.billsec * 1000, answer === null ? 0 : end - answer);
      near(c.durationSec * 1000, end - start);
      expect(Math.abs(c.start * 1000 - c.startMs)).toBeLessThan(1e-3);
      expect(c.inviteTransactions, label).toBe(
        new Set(callerInvites.map((m) => branchOf(one(m, 'Via')))).size,
      );
      expect(c.attempts).toBe(c.inviteTransactions);
      expect(c.authChallenges, label).toBe(l.filter((m) => m.code === 401 || m.code === 407).length);
      const reInvites = l.filter((m) => m.method === 'INVITE' && tagOf(one(m, 'To')) !== null);
      expect(c.reInvites, label).toBe(new Set(reInvites.map((m) => branchOf(one(m, 'Via')))).size);
      expect(c.reInvitesRejected, label).toBe(
        l.filter((m) => (m.code ?? 0) >= 300 && tagOf(one(m, 'To')) !== null && cseqOf(m).n > lastCseq)
          .length,
      );
      // A hop per sender of the initial INVITE; a branch per INVITE transaction it started.
      const senders = [...new Set(initial.map((m) => m.src))];
      expect(c.hops, label).toBe(senders.length);
      expect(c.hopPath.map((h) => h.from)).toEqual(senders.map((s) => `${s}:5060`));
      for (const [i, hop] of c.hopPath.entries()) {
        const sent = initial.filter((m) => m.src === senders[i]);
        const branches = [...new Set(sent.map((m) => branchOf(all(m, 'Via')[0])))];
        expect(hop.branches.map((b) => b.branch)).toEqual(branches);
        for (const b of hop.branches) {
          const tx = sent.filter((m) => branchOf(all(m, 'Via')[0]) === b.branch);
          const reply = l.find(
            (m) =>
              (m.code ?? 0) >= 200 &&
              cseqOf(m).method === 'INVITE' &&
              m.dst === senders[i] &&
              branchOf(all(m, 'Via')[0]) === b.branch,
          );
          expect(b.finalStatus).toBe(reply?.code ?? null);
          expect(b.retransmissions).toBe(tx.length - 1);
          near(b.start, tx[0].ms);
        }
      }
      expect(c.hopPath.at(-1)!.to).toBe(`${vmIp(c.calleeVm)}:5060`);
    }
  });
});

needs('tshark').describe('tshark agrees with the truth of a capture with every outcome', () => {
  it('sip,stat: messages, resent, methods and status codes', async () => {
    const stat = await tsharkSipStat(file);
    expect(stat).toEqual(truth.sip);
    for (const code of ['302', '404', '408', '488', '500', '503', '603'])
      expect(truth.sip.responses[code], code).toBeGreaterThan(0);
  });

  it('messages per Call-ID; X-CID and RFC 7989 Session-ID link the B2BUA legs', async () => {
    const { stdout } = await runTshark([
      '-r',
      file,
      '-Y',
      'sip',
      '-T',
      'fields',
      '-E',
      'separator=|',
      '-e',
      'sip.Call-ID',
      '-e',
      'sip.Method',
      '-e',
      'sip.msg_hdr',
      '-e',
      'sip.Session-ID.local_uuid',
      '-e',
      'sip.Session-ID.remote_uuid',
    ]);
    const count = new Map<string, number>();
    const xcid = new Map<string, string>();
    const inviteSession = new Map<string, string>();
    for (const line of stdout.trim().split('\n')) {
      const [id, method, headers, local, remote] = line.split('|');
      count.set(id, (count.get(id) ?? 0) + 1);
      // tshark prints the header block with CR LF escaped as the four characters \r\n.
      const linked = /X-CID: (.*?)\\r\\n/.exec(headers);
      if (linked) xcid.set(id, linked[1]);
      // tshark shows the UUIDs in their 8-4-4-4-12 form; the header has them without dashes.
      if (method === 'INVITE' && local)
        inviteSession.set(id, `${local};remote=${remote}`.replaceAll('-', ''));
    }
    expect(Object.fromEntries(count)).toEqual(
      Object.fromEntries(truth.calls.map((c) => [c.callId, c.messages])),
    );
    const legsB = truth.calls.filter((c) => c.leg === 'b');
    expect(Object.fromEntries(xcid)).toEqual(
      Object.fromEntries(legsB.map((c) => [c.callId, c.linkedCallIds[0]])),
    );
    // Only B2BUA legs carry Session-ID; tshark reads both legs' INVITEs as the same session.
    expect(inviteSession.size).toBe(2 * legsB.length);
    for (const b of legsB) {
      expect(inviteSession.get(b.callId)).toMatch(/^[0-9a-f]{32};remote=0{32}$/);
      expect(inviteSession.get(b.callId)).toBe(inviteSession.get(b.linkedCallIds[0]));
    }
  });

  it('no expert findings but the one a custom header earns: X-CID is unknown to tshark', async () => {
    const { stdout } = await runTshark(['-r', file, '-q', '-o', 'udp.check_checksum:TRUE', '-z', 'expert']);
    const findings = stdout
      .split('\n')
      .filter((l) => /^\s+\d+\s/.test(l))
      .map((l) => l.trim().split(/\s{2,}/));
    expect(findings).toEqual([
      [String(truthsOf('b2bua').length / 2), 'Undecoded', 'SIP', 'Unrecognised SIP header (x-cid)'],
    ]);
  });

  it('rtp,streams: every stream, the PBX-anchored legs included, with its packets and lost counts', async () => {
    const seen = new Map((await tsharkRtpStreams(file)).map((s) => [streamKey(s), s]));
    const expected = truth.rtpStreams.filter((s) => s.packetsCaptured > 0);
    expect(seen.size).toBe(expected.length);
    for (const s of expected) {
      const t = seen.get(streamKey(s));
      expect(t, streamKey(s)).toBeDefined();
      expect({ packets: t!.packets, lost: t!.lost }).toEqual({ packets: s.packetsCaptured, lost: s.lost });
    }
  });
});
