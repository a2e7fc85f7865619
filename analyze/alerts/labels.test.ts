/** Label sanitation against hostile values: what SIP can put in a label must not break an alert. */
import { describe, expect, it } from 'vitest';
import {
  alertAnnotations,
  alertLabels,
  MAX_ANNOTATION_VALUE,
  MAX_LABEL_VALUE,
  safeAnnotationValue,
  safeLabelName,
  safeLabelValue,
} from './labels.js';

const codePoints = (s: string) => Array.from(s).length;
/** Well-formed UTF-16 survives a UTF-8 round trip unchanged; a lone surrogate does not. */
const wellFormed = (s: string) => new TextDecoder().decode(new TextEncoder().encode(s)) === s;

describe('safeLabelName', () => {
  it('rewrites what is not [a-zA-Z_][a-zA-Z0-9_]*', () => {
    expect(safeLabelName('vm')).toBe('vm');
    expect(safeLabelName('peer-ip.v4')).toBe('peer_ip_v4');
    expect(safeLabelName('1st')).toBe('_1st');
    expect(safeLabelName('')).toBe('_');
    expect(safeLabelName('é😀x')).toBe('__x');
    expect(safeLabelName('a'.repeat(500))).toHaveLength(128);
  });
});

describe('safeLabelValue', () => {
  it('keeps quotes, replaces control characters, line breaks and bidi overrides', () => {
    const v = safeLabelValue('"Bob" <sip:bob@x>\r\nVia: evil\t\u0000\u001b[31m\u0085\u2028\u202eabc');
    expect(v).toBe('"Bob" <sip:bob@x>  Via: evil \ufffd\ufffd[31m  \ufffdabc');
    expect(v).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  it('truncates a 64 KB user part to 256 characters with a visible marker', () => {
    const v = safeLabelValue('u'.repeat(65_536));
    expect(codePoints(v)).toBe(MAX_LABEL_VALUE);
    const kept = MAX_LABEL_VALUE - '…[+65286]'.length;
    expect(v).toBe(`${'u'.repeat(kept)}…[+${65_536 - kept}]`);
  });

  it('never cuts a surrogate pair, and replaces lone surrogates', () => {
    for (const prefix of ['', 'x']) {
      const v = safeLabelValue(prefix + '😀'.repeat(300));
      expect(wellFormed(v)).toBe(true);
      expect(codePoints(v)).toBe(MAX_LABEL_VALUE);
    }
    expect(safeLabelValue('a\ud800b\udc00c\ud83d\ude00')).toBe('a\ufffdb\ufffdc😀');
    expect(wellFormed(safeLabelValue('\udfff'.repeat(1000)))).toBe(true);
  });

  it('is stable: a safe value is unchanged', () => {
    const once = safeLabelValue(`x\n${'y'.repeat(1000)}`);
    expect(safeLabelValue(once)).toBe(once);
    expect(safeLabelValue(42)).toBe('42');
    expect(safeLabelValue(null)).toBe('');
  });
});

describe('safeAnnotationValue', () => {
  it('keeps newlines and tabs (CR LF → LF), bounds at 4096 characters', () => {
    expect(safeAnnotationValue('line 1\r\nline 2\rline\t3\u0007')).toBe('line 1\nline 2\nline\t3\ufffd');
    const v = safeAnnotationValue('d'.repeat(10_000));
    expect(codePoints(v)).toBe(MAX_ANNOTATION_VALUE);
    expect(v.endsWith(`…[+${10_000 - (MAX_ANNOTATION_VALUE - '…[+5911]'.length)}]`)).toBe(true);
  });
});

describe('alertLabels / alertAnnotations', () => {
  it('merges left to right, alertname last, drops empty values, sorts names', () => {
    const labels = alertLabels(
      'HighFailedCallRatio',
      { vm: 'pbx-1', 'peer-ip': '10.0.0.1', alertname: 'spoofed', empty: '' },
      { severity: 'page', vm: 'pbx-2', user: 'x\ny' },
    );
    expect(labels).toEqual({
      alertname: 'HighFailedCallRatio',
      peer_ip: '10.0.0.1',
      severity: 'page',
      user: 'x y',
      vm: 'pbx-2',
    });
    expect(Object.keys(labels)).toEqual(['alertname', 'peer_ip', 'severity', 'user', 'vm']);
    expect(alertLabels('\u0000')).toEqual({ alertname: '\ufffd' });
    expect(alertLabels('')).toEqual({ alertname: '_' });
  });

  it('annotations: names rewritten, values multi-line and bounded', () => {
    expect(alertAnnotations({ summary: 'a\nb', 'runbook-url': 'http://x', gone: undefined })).toEqual({
      runbook_url: 'http://x',
      summary: 'a\nb',
    });
  });
});
