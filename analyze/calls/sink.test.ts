/**
 * The call engine against our generator's ground truth (capture/sample: answered, busy, cancelled,
 * 503, no answer with retransmissions, 407 then answered), call by call.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GroundTruth } from '../../capture/generator/truth.js';
import { FileSource } from '../../capture/sources.js';
import type { CallRecord } from '../../core/call.js';
import { drive } from '../../core/drive.js';
import { CaptureSummary } from '../summary.js';

const SAMPLE = fileURLToPath(new URL('../../capture/sample/calls.pcap', import.meta.url));
const TRUTH = fileURLToPath(new URL('../../capture/sample/calls.truth.json', import.meta.url));

let truth: GroundTruth;
let records: Map<string, CallRecord>;
let summary: CaptureSummary;

beforeAll(async () => {
  truth = JSON.parse(readFileSync(TRUTH, 'utf8'));
  summary = new CaptureSummary({ calls: { keepRecords: true } });
  const result = await drive(new FileSource(SAMPLE), summary.sinks);
  await summary.of(result.source);
  records = new Map(summary.calls.records.map((r) => [r.callId, r]));
});

const ms = (epochSeconds: number | null) => (epochSeconds === null ? null : Math.round(epochSeconds * 1000));

describe('calls from the sample capture', () => {
  it('makes one record per generated call, and no other', () => {
    expect(records.size).toBe(truth.calls.length);
    for (const c of truth.calls) expect(records.has(c.callId), c.callId).toBe(true);
  });

  it('gives each call the outcome, status, times and counts of the ground truth', () => {
    const lastPacket = truth.lastPacket! * 1000;
    for (const t of truth.calls) {
      const r = records.get(t.callId)!;
      const expected = {
        answered: 'answered',
        challenged: 'answered',
        busy: 'busy',
        cancelled: 'cancelled',
        unavailable: 'failed',
        // The capture cannot know a timeout that comes after its last packet.
        noAnswer: t.end * 1000 <= lastPacket ? 'noAnswer' : 'inProgress',
      }[t.outcome];
      const where = `${t.callId} (${t.outcome})`;
      expect(r.outcome, where).toBe(expected);
      expect(r.finalStatus, where).toBe(t.finalStatus);
      expect(Math.abs(r.start - ms(t.start)!), where).toBeLessThanOrEqual(1);
      if (t.ringing !== null) expect(Math.abs(r.ringing! - ms(t.ringing)!), where).toBeLessThanOrEqual(1);
      else expect(r.ringing, where).toBeNull();
      if (t.answer !== null) expect(Math.abs(r.answer! - ms(t.answer)!), where).toBeLessThanOrEqual(1);
      else expect(r.answer, where).toBeNull();
      if (expected !== 'inProgress') expect(Math.abs(r.end - ms(t.end)!), where).toBeLessThanOrEqual(1);
      expect(r.inviteTransactions, where).toBe(t.attempts);
      expect(r.authChallenges, where).toBe(t.outcome === 'challenged' ? 1 : 0);
      expect(r.messages, where).toBe(t.messages);
      expect(r.caller.vm, where).toBeNull();
      if (t.hangupBy !== null) expect(r.endedBy, where).toBe(t.hangupBy);
      if (t.outcome === 'busy') expect(r.endedBy, where).toBe('callee');
      if (t.outcome === 'unavailable' || t.outcome === 'noAnswer')
        expect(r.endedBy, where).toBe(expected === 'inProgress' ? 'unknown' : 'network');
      if (expected === 'answered') expect(r.byeAnswered, where).toBe(true);
    }
  });

  it('counts each call once in the KPIs, as the ground truth gives them', async () => {
    const calls = (await summary.of((await drive(new FileSource(SAMPLE), [])).source)).calls;
    const lastPacket = truth.lastPacket! * 1000;
    const inProgress = truth.calls.filter(
      (c) => c.outcome === 'noAnswer' && c.end * 1000 > lastPacket,
    ).length;
    const completed = truth.calls.length - inProgress;
    const answered = truth.calls.filter((c) => c.answer !== null).length;
    const failed =
      truth.calls.filter((c) => c.outcome === 'unavailable' || c.outcome === 'noAnswer').length - inProgress;
    const busy = truth.calls.filter((c) => c.outcome === 'busy').length;
    expect(calls.attempts).toBe(truth.calls.length);
    expect(calls.answered).toBe(answered);
    expect(calls.failed).toBe(failed);
    expect(calls.outcomes.inProgress).toBe(inProgress);
    const r = (n: number, d: number) => Math.round((n / d) * 1e6) / 1e6;
    expect(calls.kpis.asr).toBe(r(answered, completed));
    expect(calls.kpis.ser).toBe(r(answered, completed)); // no 3xx in the sample
    expect(calls.kpis.seer).toBe(r(answered + busy, completed));
    expect(calls.kpis.failedRatio).toBe(r(failed, completed));
    expect(calls.kpis.ner).toBe(r(completed - failed, completed));
    const billsec = truth.calls.filter((c) => c.answer !== null).map((c) => c.end - c.answer!);
    expect(calls.kpis.acdSec).toBeCloseTo(billsec.reduce((a, b) => a + b, 0) / billsec.length, 2);
    expect(calls.peakPending).toBeGreaterThan(0);
    expect(calls.peakConcurrent).toBeGreaterThan(0);
  });
});
