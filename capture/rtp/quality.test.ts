import { describe, expect, it } from 'vitest';
import { Rng } from '../generator/random.js';
import {
  burstRatio,
  CODEC_IMPAIRMENTS,
  codecImpairment,
  DELAY_THRESHOLDS_MS,
  DelayVariation,
  delayImpairment,
  effectiveEquipmentImpairment,
  G711_WITHOUT_PLC,
  intervalLossPercent,
  LossBurstHistogram,
  mosFromR,
  rFactor,
  UNKNOWN_CODEC_IMPAIRMENT,
} from './quality.js';

// Expected values below are worked by hand from the ITU-T formulas and the G.113 constants, never by
// calling the code under test.

describe('mosFromR (G.107 Annex B)', () => {
  it('gives 4.41 for the G.107 default connection, R = 93.2', () => {
    // 1 + 0.035·93.2 + 7e-6·93.2·(93.2−60)·(100−93.2) = 1 + 3.262 + 7e-6·93.2·33.2·6.8
    //   = 4.262 + 7e-6·21040.832 = 4.262 + 0.147285824 = 4.409285824
    expect(mosFromR(93.2)).toBeCloseTo(4.409285824, 9);
  });

  it('is 1 at R = 0 and below, 4.5 at R = 100 and above', () => {
    expect(mosFromR(0)).toBe(1);
    expect(mosFromR(-20)).toBe(1);
    // 1 + 0.035·100 + 7e-6·100·40·0 = 4.5
    expect(mosFromR(100)).toBe(4.5);
    expect(mosFromR(130)).toBe(4.5);
  });

  it('never drops below 1 where the polynomial dips (0 < R < 6.5)', () => {
    // Raw polynomial at R = 5: 1 + 0.175 + 7e-6·5·(−55)·95 = 1.175 − 0.182875 = 0.992125 → held at 1.
    expect(mosFromR(5)).toBe(1);
  });

  it('G.729 without loss: R = 93.2 − 11 = 82.2, MOS 4.104 (not the 4.09 sometimes quoted)', () => {
    // 1 + 0.035·82.2 + 7e-6·82.2·22.2·17.8 = 1 + 2.877 + 7e-6·32482.152 = 3.877 + 0.227375064 = 4.104375064
    expect(rFactor({ codec: 'G729', lossPercent: 0 })).toBeCloseTo(82.2, 10);
    expect(mosFromR(82.2)).toBeCloseTo(4.104375064, 9);
  });
});

describe('effectiveEquipmentImpairment (G.107 Ie,eff)', () => {
  it('G.711 without PLC, 1 % random loss: 95·1/(1/1 + 4.3) = 95/5.3 = 17.9245 → R = 75.2755', () => {
    expect(effectiveEquipmentImpairment(0, 4.3, 1)).toBeCloseTo(95 / 5.3, 10);
    expect(effectiveEquipmentImpairment(0, 4.3, 1)).toBeCloseTo(17.9245283, 6);
    // 93.2 − 17.9245283 = 75.2754717
    expect(rFactor({ codec: null, impairment: G711_WITHOUT_PLC, lossPercent: 1 })).toBeCloseTo(75.2754717, 6);
  });

  it('G.711 with PLC, 1 % random loss: 95/(1 + 25.1) = 3.6398 → R = 89.5602', () => {
    expect(rFactor({ codec: 'PCMA', lossPercent: 1 })).toBeCloseTo(93.2 - 95 / 26.1, 10);
    expect(rFactor({ codec: 'PCMA', lossPercent: 1 })).toBeCloseTo(89.5601533, 6);
  });

  it('G.729A at 2 %: 11 + 84·2/(2 + 19) = 11 + 8 = 19 → R = 74.2', () => {
    expect(effectiveEquipmentImpairment(11, 19, 2)).toBeCloseTo(19, 10);
    expect(rFactor({ codec: 'g729', lossPercent: 2 })).toBeCloseTo(74.2, 10);
  });

  it('bursty loss: G.711+PLC at 2 %, BurstR 2 → 95·2/(2/2 + 25.1) = 7.2797 (vs 95·2/27.1 = 7.0111 random)', () => {
    expect(effectiveEquipmentImpairment(0, 25.1, 2, 2)).toBeCloseTo(190 / 26.1, 10);
    expect(effectiveEquipmentImpairment(0, 25.1, 2, 1)).toBeCloseTo(190 / 27.1, 10);
  });

  it('is Ie at no loss and 95 at total loss', () => {
    expect(effectiveEquipmentImpairment(11, 19, 0)).toBe(11);
    expect(effectiveEquipmentImpairment(0, 0, 0)).toBe(0);
    // 11 + 84·100/(100 + 19) = 11 + 70.588 = 81.588; loss above 100 % is treated as 100 %.
    expect(effectiveEquipmentImpairment(11, 19, 150)).toBeCloseTo(11 + 8400 / 119, 10);
  });
});

describe('MOS against loss, codec and burstiness', () => {
  const losses = Array.from({ length: 41 }, (_, i) => i / 2); // 0, 0.5, … 20 %

  for (const codec of ['pcma', 'g729']) {
    it(`${codec}: MOS strictly decreases as loss goes 0 → 20 %`, () => {
      const mos = losses.map((lossPercent) => mosFromR(rFactor({ codec, lossPercent })));
      for (let i = 1; i < mos.length; i++) expect(mos[i]).toBeLessThan(mos[i - 1]);
    });
  }

  it('G.729 scores below G.711 at every equal loss 0 → 20 %', () => {
    for (const lossPercent of losses) {
      expect(mosFromR(rFactor({ codec: 'G729', lossPercent }))).toBeLessThan(
        mosFromR(rFactor({ codec: 'PCMU', lossPercent })),
      );
    }
  });

  it('BurstR > 1 lowers MOS at the same loss', () => {
    for (const codec of ['pcmu', 'g729', 'g722']) {
      const random = mosFromR(rFactor({ codec, lossPercent: 3 }));
      const bursty = mosFromR(rFactor({ codec, lossPercent: 3, burstR: 2.5 }));
      expect(bursty).toBeLessThan(random);
    }
  });

  it('clamps R to [0, 100]', () => {
    expect(rFactor({ codec: 'g726-16', lossPercent: 100, oneWayDelayMs: 2000 })).toBe(0);
    expect(rFactor({ codec: 'pcmu', lossPercent: -5 })).toBeCloseTo(93.2, 10);
  });
});

describe('delayImpairment (G.107 Idd)', () => {
  it('is 0 up to 100 ms', () => {
    for (const ta of [0, 50, 99.9, 100]) expect(delayImpairment(ta)).toBe(0);
  });

  // Idd = 25·{(1 + X⁶)^(1/6) − 3·(1 + (X/3)⁶)^(1/6) + 2}, X = log2(Ta/100)
  it('150 ms: X = 0.5849625, X⁶ = 0.0400653, (X/3)⁶ = 5.49592e-5 → 25·(1.0065687 − 3.0000275 + 2) = 0.16353', () => {
    expect(delayImpairment(150)).toBeCloseTo(0.16353, 4);
  });

  it('200 ms: X = 1 → 25·(2^(1/6) − 3·(1 + 1/729)^(1/6) + 2) = 25·(1.1224620 − 3.0006855 + 2) = 3.04441', () => {
    expect(delayImpairment(200)).toBeCloseTo(3.04441, 4);
  });

  it('300 ms: X = log2 3 = 1.5849625, X⁶ = 15.853091, (X/3)⁶ = 0.0217464 → 25·(1.6012037 − 3.0107759 + 2) = 14.76069', () => {
    expect(delayImpairment(300)).toBeCloseTo(14.76069, 4);
  });

  it('400 ms: X = 2 → 25·(65^(1/6) − 3·(1 + 64/729)^(1/6) + 2) = 25·(2.0051747 − 3.0423712 + 2) = 24.07009', () => {
    expect(delayImpairment(400)).toBeCloseTo(24.07009, 4);
  });

  it('never decreases with delay', () => {
    let previous = 0;
    for (let ta = 0; ta <= 1000; ta += 5) {
      const id = delayImpairment(ta);
      expect(id).toBeGreaterThanOrEqual(previous);
      previous = id;
    }
  });

  it('enters R directly: G.711, no loss, 200 ms → 93.2 − 3.04441 = 90.15559', () => {
    expect(rFactor({ codec: 'pcmu', lossPercent: 0, oneWayDelayMs: 200 })).toBeCloseTo(90.15559, 4);
  });
});

describe('codec table', () => {
  it('holds the G.113 Appendix I constants', () => {
    expect(codecImpairment('PCMU')).toMatchObject({ ie: 0, bpl: 25.1, wideband: false });
    expect(codecImpairment('PCMA')).toMatchObject({ ie: 0, bpl: 25.1, wideband: false });
    expect(codecImpairment('G729')).toMatchObject({ ie: 11, bpl: 19 });
    expect(codecImpairment('G723')).toMatchObject({ ie: 15, bpl: 16.1 });
    expect(codecImpairment('GSM-EFR')).toMatchObject({ ie: 5, bpl: 10 });
    expect(codecImpairment('GSM')).toMatchObject({ ie: 20 });
    expect(codecImpairment('G722')).toMatchObject({ ie: 13, wideband: true });
    expect(G711_WITHOUT_PLC).toMatchObject({ ie: 0, bpl: 4.3 });
  });

  it('every entry is keyed by its lower-case name and names its source', () => {
    for (const [key, c] of Object.entries(CODEC_IMPAIRMENTS)) {
      expect(key).toBe(key.toLowerCase());
      expect(c.codec).toBe(key);
      expect(c.source).toMatch(/ITU-T G\.113/);
      expect(c.ie).toBeGreaterThanOrEqual(0);
      expect(c.bpl).toBeGreaterThan(0);
    }
  });

  it('falls back to G.711 constants for unknown or missing codecs', () => {
    for (const name of [null, 'opus', 'AMR-WB', 'constructor', 'toString', '']) {
      expect(codecImpairment(name)).toBe(UNKNOWN_CODEC_IMPAIRMENT);
    }
    expect(UNKNOWN_CODEC_IMPAIRMENT).toMatchObject({ ie: 0, bpl: 25.1, wideband: false });
    expect(rFactor({ codec: 'opus', lossPercent: 1 })).toBe(rFactor({ codec: 'pcmu', lossPercent: 1 }));
  });
});

describe('wideband (G.107.1 scale)', () => {
  it('G.722 without loss: (129 − 13)/1.29 = 89.92248', () => {
    expect(rFactor({ codec: 'G722', lossPercent: 0 })).toBeCloseTo(116 / 1.29, 10);
  });

  it('G.722, 1 % loss: Ie,eff,WB = 13 + 116·1/(1 + 25.1) = 17.44444 → (129 − 17.44444)/1.29 = 86.47718', () => {
    expect(rFactor({ codec: 'G722', lossPercent: 1 })).toBeCloseTo((129 - 13 - 116 / 26.1) / 1.29, 10);
    expect(rFactor({ codec: 'G722', lossPercent: 1 })).toBeCloseTo(86.47718, 4);
  });

  it('a delay costs the same R as on narrowband: 200 ms → 89.92248 − 3.04441', () => {
    expect(rFactor({ codec: 'G722', lossPercent: 0, oneWayDelayMs: 200 })).toBeCloseTo(89.92248 - 3.04441, 4);
  });

  it('100 % loss: 13 + 116·100/(100 + 25.1) = 105.72582 → (129 − 105.72582)/1.29 = 18.04200', () => {
    // As on narrowband, Ppl/(Ppl + Bpl) < 1 even at 100 %, so loss alone never reaches R = 0.
    expect(rFactor({ codec: 'G722', lossPercent: 100 })).toBeCloseTo(18.042, 4);
  });
});

describe('intervalLossPercent', () => {
  it('is the loss of the interval, duplicates count as none', () => {
    expect(intervalLossPercent(50, 49)).toBe(2);
    expect(intervalLossPercent(50, 52)).toBe(0);
    expect(intervalLossPercent(0, 0)).toBe(0);
  });
});

/** Transition counts of a per-packet loss sequence (true = lost), as the G.107 Markov model defines them. */
function transitions(lost: boolean[]) {
  const t = { receivedToLost: 0, receivedToReceived: 0, lostToReceived: 0, lostToLost: 0 };
  for (let i = 1; i < lost.length; i++) {
    if (lost[i - 1]) lost[i] ? t.lostToLost++ : t.lostToReceived++;
    else lost[i] ? t.receivedToLost++ : t.receivedToReceived++;
  }
  return t;
}

/** Two-state Gilbert loss: p = P(lost | previous received), q = P(received | previous lost). */
function gilbert(rng: Rng, n: number, p: number, q: number): boolean[] {
  const out: boolean[] = [];
  let lost = false;
  for (let i = 0; i < n; i++) {
    lost = lost ? rng.next() >= q : rng.next() < p;
    out.push(lost);
  }
  return out;
}

/** Lengths of the runs of consecutive losses. */
function runs(lost: boolean[]): number[] {
  const out: number[] = [];
  let run = 0;
  for (const l of lost) {
    if (l) run++;
    else if (run > 0) {
      out.push(run);
      run = 0;
    }
  }
  if (run > 0) out.push(run);
  return out;
}

describe('burstRatio', () => {
  it('is 1 without losses or without data', () => {
    expect(burstRatio({ receivedToLost: 0, receivedToReceived: 500, lostToReceived: 0, lostToLost: 0 })).toBe(
      1,
    );
    expect(burstRatio({ receivedToLost: 0, receivedToReceived: 0, lostToReceived: 0, lostToLost: 0 })).toBe(
      1,
    );
  });

  it('is 1/(p + q) from the counts: p = 10/100, q = 5/20 → 1/0.35', () => {
    expect(
      burstRatio({ receivedToLost: 10, receivedToReceived: 90, lostToReceived: 5, lostToLost: 15 }),
    ).toBeCloseTo(1 / 0.35, 10);
  });

  it('random (Bernoulli) loss gives ≈ 1', () => {
    const rng = new Rng(20240611);
    const lost = Array.from({ length: 200_000 }, () => rng.next() < 0.03);
    // p ≈ 0.03 and q ≈ 0.97 whatever the loss rate, so p + q ≈ 1.
    expect(burstRatio(transitions(lost))).toBeCloseTo(1, 1);
  });

  it('bursty Gilbert loss gives > 1, near the model value 1/(p + q)', () => {
    const rng = new Rng(7);
    const lost = gilbert(rng, 200_000, 0.01, 0.25);
    // 1/(0.01 + 0.25) = 3.846
    const b = burstRatio(transitions(lost));
    expect(b).toBeGreaterThan(3.846 * 0.9);
    expect(b).toBeLessThan(3.846 * 1.1);
  });
});

describe('LossBurstHistogram', () => {
  it('counts exact run lengths and folds long runs into the ≥ maxRun bucket', () => {
    const h = new LossBurstHistogram();
    for (const run of [1, 1, 3, 10, 25, 0, -2]) h.record(run);
    expect(h.counts).toEqual([2, 0, 1, 0, 0, 0, 0, 0, 0, 2]);
    expect(h.runs).toBe(5);
    expect(h.lostPackets).toBe(40); // 1 + 1 + 3 + 10 + 25: long runs keep their full length
  });

  it('honours a custom maxRun', () => {
    const h = new LossBurstHistogram(3);
    for (const run of [2, 3, 7]) h.record(run);
    expect(h.counts).toEqual([0, 1, 2]);
    expect(() => new LossBurstHistogram(0)).toThrow(RangeError);
  });

  it('resets', () => {
    const h = new LossBurstHistogram(4);
    h.record(2);
    h.reset();
    expect(h.counts).toEqual([0, 0, 0, 0]);
    expect(h.runs).toBe(0);
    expect(h.lostPackets).toBe(0);
  });

  it('sees geometric run lengths under Gilbert loss: share of single-packet runs ≈ q', () => {
    const lost = gilbert(new Rng(11), 200_000, 0.01, 0.25);
    const h = new LossBurstHistogram();
    for (const run of runs(lost)) h.record(run);
    expect(h.lostPackets).toBe(lost.filter(Boolean).length);
    expect(h.counts[0] / h.runs).toBeCloseTo(0.25, 1);
  });
});

describe('DelayVariation', () => {
  it('has the documented thresholds', () => {
    expect(DELAY_THRESHOLDS_MS).toEqual([50, 70, 90, 120, 150, 200, 300]);
  });

  it('counts packets strictly later than each threshold', () => {
    const d = new DelayVariation();
    for (const late of [0, 50, 50.1, 75, 120, 299, 300, 301, 1000]) d.add(late);
    //               >50 >70 >90 >120 >150 >200 >300
    expect(d.counts).toEqual([7, 6, 5, 4, 4, 4, 2]);
    expect(d.packets).toBe(9);
    const s = d.shares();
    expect(Object.keys(s)).toEqual(['50', '70', '90', '120', '150', '200', '300']);
    expect(s['50']).toBeCloseTo(7 / 9, 12);
    expect(s['300']).toBeCloseTo(2 / 9, 12);
  });

  it('measures lateness from the fastest transit so far, across resets', () => {
    const d = new DelayVariation();
    // transit = arrival − RTP time: 1000 (first, baseline), 1020 (+20), 990 (new fastest), 1100 (+110)
    expect([1000, 1020, 990, 1100].map((t) => d.addTransit(t))).toEqual([0, 20, 0, 110]);
    expect(d.counts).toEqual([1, 1, 1, 0, 0, 0, 0]);
    d.reset();
    expect(d.packets).toBe(0);
    expect(d.shares()['50']).toBe(0);
    expect(d.addTransit(1050)).toBe(60);
  });
});
