/**
 * Real captures (../shared/pcaps, see its README): tshark is the oracle for Call-ID, CSeq, method, status,
 * SDP connection address and media port; we parse the same UDP payloads (tshark reassembles the IPv6
 * fragments for us) and compare. Skipped, visibly, when the captures or tshark are not available
 * (failing under CI without tshark: test/oracle/tools.ts).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { needs, SHARED_CAPTURES } from '../../test/oracle/tools.js';
import { looksLikeSip } from './detect.js';
import { SipParser } from './parser.js';

const parser = new SipParser();

const PCAPS = fileURLToPath(new URL('../../../shared/pcaps/', import.meta.url));

interface Row {
  callId: string;
  seq: string;
  method: string;
  status: string;
  sdpAddress: string;
  sdpPort: string;
  payload: Buffer;
}

function tsharkRows(file: string): Row[] {
  const fields = [
    'sip.Call-ID',
    'sip.CSeq.seq',
    'sip.Method',
    'sip.Status-Code',
    'sdp.connection_info.address',
    'sdp.media.port',
    'udp.payload',
  ];
  const out = execFileSync(
    'tshark',
    [
      '-r',
      `${PCAPS}${file}`,
      '-Y',
      'sip',
      '-T',
      'fields',
      '-E',
      'occurrence=f',
      ...fields.flatMap((f) => ['-e', f]),
    ],
    { encoding: 'latin1', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 },
  );
  return out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [callId, seq, method, status, sdpAddress, sdpPort, hex] = l.split('\t');
      return {
        callId,
        seq,
        method,
        status,
        sdpAddress,
        sdpPort,
        payload: Buffer.from(hex.replace(/:/g, ''), 'hex'),
      };
    });
}

needs(SHARED_CAPTURES, 'tshark').describe('real captures vs tshark', () => {
  for (const [file, count] of [
    ['sip_ipv6_udp.pcap', 6],
    ['ipv6frag.pcap', 32],
  ] as const) {
    it(`${file}: same Call-ID, CSeq, method, status and SDP media as tshark`, () => {
      const rows = tsharkRows(file);
      expect(rows).toHaveLength(count);
      for (const row of rows) {
        expect(looksLikeSip(row.payload, 0, row.payload.length)).toBe(true);
        const r = parser.parse(row.payload, 0, row.payload.length);
        expect(r.ok).toBe(true);
        if (!r.ok) continue;
        const m = r.message;
        expect(m.callId).toBe(row.callId);
        expect(String(m.cseq?.seq)).toBe(row.seq);
        expect(m.method ?? '').toBe(row.method);
        expect(m.statusCode === null ? '' : String(m.statusCode)).toBe(row.status);
        if (m.method !== null) expect(m.cseq?.method).toBe(m.method);
        const conn = m.sdp?.media[0]?.connection ?? m.sdp?.connection;
        if (m.contentType === null && m.body.length > 0) {
          // tshark leaves a body without Content-Type undecoded; we still read it as SDP when it starts
          // with "v=" (this capture's 200 OK does that).
          expect(row.sdpAddress).toBe('');
          expect(m.sdp?.media[0]?.port).toBeGreaterThan(0);
        } else {
          expect(conn?.address ?? '').toBe(row.sdpAddress);
          expect(m.sdp ? String(m.sdp.media[0]?.port) : '').toBe(row.sdpPort);
        }
        expect(m.via.length).toBeGreaterThan(0);
        expect(m.from?.tag).toBeTruthy();
        // Real traffic from these stacks is well formed except for what we know about.
        expect(m.warnings.filter((w) => w !== 'content-length mismatch')).toEqual([]);
      }
    });
  }
});
