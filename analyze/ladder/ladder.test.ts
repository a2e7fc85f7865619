import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVERY_OUTCOME, generateCapture } from '../../capture/generator/generate.js';
import { SipParser } from '../../capture/sip/parser.js';
import { FileSource } from '../../capture/sources.js';
import type { CallRecord } from '../../core/call.js';
import { drive } from '../../core/drive.js';
import { type CaptureEvent, HEP_PROTO_SIP } from '../../core/event.js';
import { needs, removeTmpDir, SHARED_CAPTURES, SHARED_PCAPS, tmpDir } from '../../test/oracle/tools.js';
import { tsharkSipMessages } from '../../test/oracle/tshark.js';
import { CallAnalysis } from '../calls/analysis.js';
import { buildLadder } from './build.js';
import { ladderInputFromFile } from './gather.js';
import { renderHtml } from './html.js';
import { renderMermaid } from './mermaid.js';
import { renderSvg } from './svg.js';
import { renderText } from './text.js';

const dir = tmpDir('callscope-ladder-');
afterAll(() => removeTmpDir(dir));

const sharedFiles = SHARED_PCAPS ? readdirSync(SHARED_PCAPS).filter((f) => /\.pcap(ng)?$/.test(f)) : [];

describe('the ladder of each call of the shared captures, against tshark', () => {
  needs(SHARED_CAPTURES, 'tshark').it.each(sharedFiles)(
    '%s: every Call-ID has exactly its messages, in tshark frame order',
    async (name) => {
      const file = join(SHARED_PCAPS!, name);
      const reference = await tsharkSipMessages(file);
      const callIds = [...new Set(reference.map(([id]) => id))];
      for (const callId of callIds) {
        const ladder = buildLadder(await ladderInputFromFile(file, callId, { legs: false }));
        expect(
          ladder.messages.map((m) => m.cseq),
          `${name} ${callId}`,
        ).toEqual(reference.filter(([id]) => id === callId).map(([, cseq]) => cseq));
        for (const m of ladder.messages) expect(ladder.endpoints[m.from]).toBeDefined();
      }
    },
    120_000,
  );
});

describe('legs, hops and media of a generated capture', () => {
  const pcap = join(dir, 'outcomes.pcap');
  generateCapture({
    output: pcap,
    seed: 5,
    vms: 6,
    calls: 120,
    callsPerSecond: 20,
    callDurationSec: 2,
    outcomes: EVERY_OUTCOME,
  });
  // The engine's records of the capture, once for every test.
  const records: CallRecord[] = [];
  beforeAll(async () => {
    const analysis = new CallAnalysis({ keepRecords: true });
    await drive(new FileSource(pcap), [analysis.sink]);
    await analysis.finish();
    records.push(...analysis.records);
  });

  it('a B2BUA call is one diagram: both legs, each message on its leg, media of both', async () => {
    const leg = records.find((r) => r.linkedBy !== null && r.outcome === 'answered');
    expect(leg).toBeDefined();
    const ladder = buildLadder(await ladderInputFromFile(pcap, leg!.callId));
    expect(ladder.legs.length).toBeGreaterThanOrEqual(2);
    expect(ladder.legs[0]!.callId).toBe(leg!.edgeCallId);
    const perLeg = ladder.legs.map((l) => records.find((r) => r.callId === l.callId)!.messages);
    for (const [i, count] of perLeg.entries()) {
      // Distinct messages per leg (the engine's count: copies on other hops are one message).
      expect(ladder.messages.filter((m) => m.leg === i).length).toBeGreaterThanOrEqual(count);
    }
    expect(ladder.streams.length).toBeGreaterThan(0);
    const times = ladder.messages.map((m) => m.time);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    // Offer and answer on the INVITE and its 200.
    expect(ladder.messages.find((m) => m.method === 'INVITE')?.sdp?.role).toBe('offer');
    expect(ladder.messages.find((m) => m.status === 200 && m.cseq.endsWith('INVITE'))?.sdp?.role).toBe(
      'answer',
    );

    const text = renderText(ladder, { width: 80 });
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    expect(text).toContain('A ');
    expect(text).toContain('B ');
    const folded = renderText(ladder, { width: 40 });
    for (const line of folded.split('\n')) expect(line.length).toBeLessThanOrEqual(40);
    expect(
      renderMermaid(ladder)
        .split('\n')
        .filter((l) => /->>|-->>/.test(l)),
    ).toHaveLength(ladder.messages.length);
    expect(renderSvg(ladder).match(/<g class="msg /g)).toHaveLength(ladder.messages.length);
  });

  it('a proxy failover numbers the branches the proxy tried', async () => {
    const failover = records.find((r) => r.hops.some((h) => h.branches.length > 1));
    expect(failover).toBeDefined();
    const ladder = buildLadder(await ladderInputFromFile(pcap, failover!.callId, { legs: false }));
    const branches = ladder.messages.filter((m) => m.branch !== null).map((m) => m.branch);
    expect(branches).toContain(1);
    expect(branches).toContain(2);
  });
});

/** A SIP message from 10.0.0.1:5060 to 10.0.0.2:5060 (or back) as the capture would hand it over. */
function event(parser: SipParser, bytes: Buffer, n: number, back = false): CaptureEvent {
  const parsed = parser.parse(bytes, 0, bytes.length);
  if (!parsed.ok) throw new Error('test message does not parse');
  return {
    timestampNs: 1_700_000_000_000_000_000n + BigInt(n) * 1_000_000n,
    ipFamily: 4,
    ipProtocol: 17,
    transport: 'udp',
    srcIp: back ? '10.0.0.2' : '10.0.0.1',
    dstIp: back ? '10.0.0.1' : '10.0.0.2',
    srcPort: 5060,
    dstPort: 5060,
    vlan: null,
    protoType: HEP_PROTO_SIP,
    captureId: 0,
    nodeName: '',
    correlationId: '',
    payload: bytes,
    sip: parsed.message,
    retransmission: false,
  };
}

const HOSTILE = '<script>alert("x")</script> \' " & \u001b[31mred\u001b]0;title\u0007 ; # %% -->> end\n';

function hostileCall(): CaptureEvent[] {
  const parser = new SipParser();
  const headers = (first: string, cseq: string, extra = '') =>
    Buffer.concat([
      Buffer.from(
        `${first}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: "${HOSTILE.replace(/[\r\n"]/g, '')}" <sip:a@x>;tag=1\r\n` +
          `To: <sip:b@y>${extra}\r\nCall-ID: hostile-1\r\nCSeq: ${cseq}\r\nUser-Agent: <img src=x onerror=alert(1)>\r\n`,
        'latin1',
      ),
      Buffer.from([0x58, 0x2d, 0x42, 0x61, 0x64, 0x3a, 0x20, 0xff, 0xfe, 0xc3, 0x28, 0x0d, 0x0a]), // X-Bad: invalid UTF-8
      Buffer.from('Content-Length: 0\r\n\r\n', 'latin1'),
    ]);
  return [
    event(parser, headers('INVITE sip:b@y SIP/2.0', '1 INVITE'), 0),
    event(parser, headers(`SIP/2.0 486 ${HOSTILE.replace(/[\r\n]/g, '')}`, '1 INVITE', ';tag=2'), 1, true),
    event(parser, headers('ACK sip:b@y SIP/2.0', '1 ACK', ';tag=2'), 2),
  ];
}

describe('hostile values in every format', () => {
  const ladder = buildLadder(
    {
      callId: 'hostile-1',
      records: [],
      events: hostileCall(),
      streams: [],
      logs: [{ time: 1_700_000_000_000.5, callId: 'hostile-1', text: HOSTILE }],
    },
    { aliases: new Map([['10.0.0.2', '</text><script>alert(2)</script>']]) },
  );

  it('text: no control character reaches the terminal', () => {
    const text = renderText(ladder, { colour: false });
    expect(text.replace(/\n/g, '')).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(text).toContain('486');
    const coloured = renderText(ladder, { colour: true });
    // Our own colour codes only: every ESC starts a SGR sequence we wrote.
    for (const m of coloured.matchAll(/\u001b(.{0,4})/g)) expect(m[1]).toMatch(/^\[\d+m/);
  });

  it('svg and html: no element or attribute from the capture, still well-formed XML', () => {
    const svg = renderSvg(ladder);
    expect(svg).not.toMatch(/<script|<img|onerror=|<\/text><script/);
    expect(svg).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
    const html = renderHtml(ladder);
    expect(html.match(/<script/g)).toHaveLength(2);
    expect(html).not.toMatch(/<img|<\/script><script>alert/);
    // The raw messages travel as JSON that no captured text can close.
    const json = /<script type="application\/json" id="ladder-data">([\s\S]*?)<\/script>/.exec(html)![1]!;
    expect(JSON.parse(json).messages).toHaveLength(3);
    expect(html).toMatch(/Content-Security-Policy" content="default-src 'none'/);
  });

  it('mermaid: one line per statement, nothing that ends or opens one', () => {
    const text = renderMermaid(ladder);
    const arrows = text.split('\n').filter((l) => /->>|-->>/.test(l));
    expect(arrows).toHaveLength(3);
    for (const line of text.split('\n').slice(1)) {
      if (line === '') continue;
      expect(line).toMatch(/^ {2}(participant|E\d|Note|%%)/);
      const words = line.replace(/^ {2}(%%|E\d+-?->>E\d+:|participant E\d+ as|Note over [E\d,]+:)/, '');
      // Mermaid's entity codes (#59;) are how the rest is written.
      expect(words.replace(/#\d+;/g, '')).not.toMatch(/[;#<>"]|-->>|->>/);
    }
  });

  it('json: the captured bytes as Latin-1 text, parseable', () => {
    const back = JSON.parse(JSON.stringify(ladder));
    expect(back.messages[1].label).toContain('<script>');
    expect(back.messages[0].raw).toContain('\u00ff\u00fe');
  });
});

describe('a call with 10,000 messages', () => {
  it('renders folded on a terminal and bounded in HTML', () => {
    const parser = new SipParser();
    const events = [
      event(
        parser,
        Buffer.from(
          'INVITE sip:b@y SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: big\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n',
        ),
        0,
      ),
    ];
    for (let i = 1; i < 10_000; i++)
      events.push(
        event(
          parser,
          Buffer.from(
            `INFO sip:b@y SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK${i}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: big\r\nCSeq: ${i + 1} INFO\r\nContent-Length: 0\r\n\r\n`,
          ),
          i,
          i % 2 === 0,
        ),
      );
    const input = { callId: 'big', records: [], events, streams: [], logs: [] };
    const full = buildLadder(input);
    expect(full.messages).toHaveLength(10_000);
    expect(renderText(full).split('\n').length).toBeGreaterThan(20_000);
    const bounded = buildLadder(input, { maxMessages: 2000 });
    expect(bounded.messagesOmitted).toBe(8000);
    const html = renderHtml(bounded);
    expect(html.match(/<g class="msg /g)).toHaveLength(2000);
    expect(html).toContain('8000 more messages not drawn');
  });
});
