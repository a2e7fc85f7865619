import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import { SipParser } from '../capture/sip/parser.js';
import type { CaptureEvent } from '../core/event.js';
import type { MediaStreamReport } from '../core/media-report.js';
import type { SipMessage } from '../core/sip-message.js';
import { eventId } from './event-id.js';
import { eventRows, mediaReportFromJson } from './rows.js';
import { migrate } from './schema/migrate.js';
import { columnNames, HEP_LOGS, MEDIA_REPORTS, RTCP_REPORTS, SIP_MESSAGES } from './schema/tables.js';
import { openTestStore, type TestStore } from './schema/test-store.js';
import { IngestSip } from './sip.js';
import { StoreWriter } from './writer.js';

const parser = new SipParser();

const DB = 'rows_test';

/** Every byte value, repeated to `length`: NUL, controls, quotes, backslash, invalid UTF-8. */
function allBytes(length: number, offset = 0): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i + offset) & 0xff;
  return b;
}

const SQL_FRAGMENT = "'); DROP TABLE rows_test.sip_messages; -- \\' \" `x` {x:String} \\N";

function latin1(b: Buffer): string {
  return b.toString('latin1');
}

function sipEvent(sip: SipMessage, payload: Buffer, extra: Partial<CaptureEvent> = {}): CaptureEvent {
  return {
    timestampNs: 1_767_225_600_123_456_789n,
    ipFamily: 4,
    ipProtocol: 17,
    transport: 'udp',
    srcIp: '10.0.0.1',
    dstIp: '10.0.0.2',
    srcPort: 5060,
    dstPort: 5061,
    vlan: 42,
    protoType: 1,
    captureId: 3,
    nodeName: "hv'1\t\\ü",
    correlationId: sip.callId ?? '',
    payload,
    sip,
    retransmission: true,
    ...extra,
  };
}

/** A message model with every text field hostile (what the parser hands over is just such strings). */
function hostileSip(n: number): SipMessage {
  const big = (k: number) =>
    latin1(Buffer.concat([Buffer.from(SQL_FRAGMENT, 'latin1'), allBytes(65_536, k + n)]));
  const nameAddr = (user: string, tag: string) => ({
    displayName: null,
    uri: { scheme: 'sip', user, host: 'h', port: null, params: {}, raw: '' },
    tag,
    params: {},
    raw: '',
  });
  return {
    isRequest: true,
    method: `INV'\\\t${n}`,
    requestUri: null,
    statusCode: null,
    reasonPhrase: null,
    headers: [],
    callId: big(1),
    from: nameAddr(big(2), big(3)),
    to: nameAddr(big(4), big(5)),
    via: [
      {
        protocol: 'SIP/2.0',
        transport: 'UDP',
        host: 'h',
        port: null,
        branch: big(6),
        received: null,
        rport: null,
        params: {},
        raw: '',
      },
    ],
    cseq: { seq: 4_294_967_295, method: latin1(allBytes(256)) },
    contact: [],
    maxForwards: null,
    contentType: null,
    contentLength: null,
    reason: { protocol: latin1(allBytes(40, 200)), cause: 16, text: big(7) },
    userAgent: big(8),
    server: null,
    pAssertedIdentity: [],
    correlationCallId: big(9),
    body: Buffer.alloc(0),
    bodyParts: [],
    sdp: null,
    warnings: [],
  };
}

/** Columns holding SIP text and the bytes each must hold. */
function expectedSipBytes(e: CaptureEvent): Record<string, Buffer> {
  const s = e.sip!;
  const b = (text: string | null | undefined) => Buffer.from(text ?? '', 'latin1');
  return {
    call_id: b(s.callId),
    method: b(s.method),
    cseq_method: b(s.cseq?.method),
    from_user: b(s.from?.uri?.user),
    from_tag: b(s.from?.tag),
    to_user: b(s.to?.uri?.user),
    to_tag: b(s.to?.tag),
    via_branch: b(s.via[0]?.branch),
    user_agent: b(s.userAgent ?? s.server),
    reason_protocol: b(s.reason?.protocol),
    reason_text: b(s.reason?.text),
    correlation_call_id: b(s.correlationCallId),
    node: Buffer.from(e.nodeName, 'utf8'),
    raw: e.payload,
  };
}

describe('rows', () => {
  it('has one field per column in every table, whatever the values', () => {
    const e = sipEvent(hostileSip(0), allBytes(70_000));
    const { rows } = eventRows(e, 'r\t1');
    const fields = rows.sip_messages!.toString('latin1').replace(/\n$/, '').split('\t');
    expect(fields).toHaveLength(columnNames(SIP_MESSAGES).length);
  });

  it('stores SIP that arrived as payload only once it is parsed (ingest/sip.ts); skips it otherwise', () => {
    const raw = Buffer.from(
      'BYE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: hep-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n',
    );
    const { sip: _sip, ...rest } = sipEvent(hostileSip(0), raw);
    expect(eventRows(rest).skipped).toBe('unparsable SIP');
    const [prepared] = new IngestSip().prepare([{ ...rest }]);
    expect(eventRows(prepared).rows.sip_messages?.toString()).toContain('\thep-1\ttrue\tBYE\t0\t');
    const [junk] = new IngestSip().prepare([{ ...rest, payload: Buffer.from('not sip at all') }]);
    expect(eventRows(junk).skipped).toBe('unparsable SIP');
    expect(eventRows({ ...rest, protoType: 53 }).skipped).toBe('protocol type 53');
  });

  it('keeps HEP type-100 logs with their correlation id', () => {
    const { sip: _sip, ...rest } = sipEvent(hostileSip(0), Buffer.alloc(0));
    const log = {
      ...rest,
      protoType: 100,
      correlationId: "call'1\t",
      payload: Buffer.from('ds_next_dst: 503'),
    };
    const { rows, skipped } = eventRows(log);
    expect(skipped).toBeUndefined();
    const fields = rows.hep_logs!.toString('latin1').replace(/\n$/, '').split('\t');
    expect(fields).toHaveLength(columnNames(HEP_LOGS).length);
    expect(fields[2]).toBe("call\\'1\\t");
    expect(fields[7]).toBe('ds_next_dst: 503');
  });
});

describe('rows in the store', () => {
  let store: TestStore;

  beforeAll(async () => {
    store = await openTestStore();
    await migrate(store.client, { database: DB, ttlDays: 0 });
  });

  afterAll(async () => {
    await store?.close();
  });

  async function hexColumns(
    eventIds: bigint[],
    columns: string[],
  ): Promise<Map<string, Record<string, string>>> {
    const result = await store.client.query({
      query: `SELECT toString(event_id) AS id, ${columns.map((c) => `hex(${c}) AS ${c}`).join(', ')}
              FROM ${DB}.sip_messages WHERE event_id IN {ids:Array(UInt64)}`,
      query_params: { ids: eventIds },
      format: 'JSONEachRow',
    });
    const rows = await result.json<Record<string, string>>();
    return new Map(rows.map((r) => [r.id!, r]));
  }

  it('stores hostile SIP header values byte for byte (quotes, backslashes, NUL, invalid UTF-8, SQL, 64 KB)', async () => {
    const parsedRaw = Buffer.from(
      "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK'x\\y\r\n" +
        'From: "Al\\"ice" <sip:alice@example.com>;tag=t\x00a\bg\xff\xfe\r\n' +
        "To: <sip:bob@example.com>;tag=');DROP TABLE x;--\r\n" +
        "Call-ID: c'a\\l\tl\x01\x7f\x80\xff\x00@h\r\nCSeq: 1 INVITE\r\nUser-Agent: UA \\N \x0c\r\n" +
        'Reason: Q.850;cause=16;text="No\\"rm\' \x00\x0c"\r\nX-CID: x\x08c\x0cid\r\nContent-Length: 0\r\n\r\n',
      'latin1',
    );
    const parsed = parser.parse(parsedRaw, 0, parsedRaw.length);
    if (!parsed.ok) throw new Error(parsed.error);
    expect(parsed.message.callId).toContain('\x00');
    const events = [
      sipEvent(parsed.message, parsedRaw),
      ...[0, 1, 2].map((n) => sipEvent(hostileSip(n), allBytes(65_536 + n, n), { timestampNs: BigInt(n) })),
    ];
    const writer = new StoreWriter(store.client, { database: DB, runId: "run ' \\ \t" });
    await writer.write(events);
    await writer.close();

    const columns = Object.keys(expectedSipBytes(events[0]!));
    const stored = await hexColumns(
      events.map((e) => eventId(e)),
      [...columns, 'run_id'],
    );
    expect(stored.size).toBe(events.length);
    for (const e of events) {
      const row = stored.get(eventId(e).toString())!;
      for (const [column, bytes] of Object.entries(expectedSipBytes(e))) {
        expect(row[column], column).toBe(bytes.toString('hex').toUpperCase());
      }
      expect(row.run_id).toBe(Buffer.from("run ' \\ \t").toString('hex').toUpperCase());
    }
    // The 64 KB values really were 64 KB of every byte value.
    const big = stored.get(eventId(events[1]!).toString())!;
    expect(big.user_agent!.length / 2).toBeGreaterThan(65_536);
  });

  it('stores the numbers, times and flags of a SIP row', async () => {
    const e = sipEvent(hostileSip(5), Buffer.from('x'), {
      vlan: null,
      timestampNs: 1_767_225_600_987_654_321n,
    });
    const writer = new StoreWriter(store.client, { database: DB });
    await writer.write([e]);
    await writer.close();
    const result = await store.client.query({
      query: `SELECT toString(time) AS time, is_request, status, cseq_num, src_ip, src_port, dst_port, transport, vlan,
                retransmission, capture_id, reason_cause, src_vm
              FROM ${DB}.sip_messages WHERE event_id = {id:UInt64}`,
      query_params: { id: eventId(e).toString() },
      format: 'JSONEachRow',
    });
    expect(await result.json()).toEqual([
      {
        time: '2026-01-01 00:00:00.987654321',
        is_request: true,
        status: 0,
        cseq_num: 4_294_967_295,
        src_ip: '10.0.0.1',
        src_port: 5060,
        dst_port: 5061,
        transport: 'udp',
        vlan: null,
        retransmission: true,
        capture_id: 3,
        reason_cause: 16,
        src_vm: '',
      },
    ]);
  });

  it('stores media reports, their RTCP and HEP type-5 JSON', async () => {
    const report: MediaStreamReport = {
      kind: 'interval',
      endReason: null,
      callId: "c'all\\\x00\xff",
      discovery: 'sdp',
      ipFamily: 6,
      src: '2001:db8::1',
      srcPort: 40000,
      dst: '2001:db8::2',
      dstPort: 40002,
      vlan: null,
      ssrc: 4_294_967_295,
      previousSsrc: 7,
      payloadType: 8,
      codec: "PC'MA\\",
      clockRate: 8000,
      payloadTypes: [8, 101],
      payloadNames: ["g711A'", 'tele\\phone-event'],
      startNs: 1_767_225_600_000_000_000n,
      endNs: 1_767_225_610_000_000_000n,
      startTime: 0.02,
      endTime: 10.02,
      packets: 500,
      expected: 502,
      lost: -2,
      lossPercent: 0.398406374501992,
      sequenceErrors: 1,
      duplicates: 4,
      outOfOrder: 2,
      wrongTimestamps: 0,
      markers: 1,
      minDeltaMs: 0.001,
      meanDeltaMs: 20.000000000000004,
      maxDeltaMs: 45.5,
      minJitterMs: -1,
      meanJitterMs: Number.NaN,
      maxJitterMs: 3.25,
      maxSkewMs: -12.5,
      bytes: 86_000,
      bitrateKbps: 68.8,
      problem: true,
      mos: 4.38,
      minMos: null,
      rFactor: 92.1,
      lossBursts: [1, 0, 0, 0, 0, 0, 0, 0, 0, 4_294_967_295],
      delayOver: { '50': 0.1, '300': 0 },
      interval: {
        startNs: 1_767_225_600_000_000_000n,
        endNs: 1_767_225_610_000_000_000n,
        packets: 500,
        expected: 502,
        lost: 2,
        lossPercent: 0.4,
        jitterMs: 1.5,
        maxJitterMs: 3.25,
        burstR: 1,
        rFactor: 92.1,
        mos: 4.38,
      },
      rtcp: {
        senderReports: 3,
        receiverReports: 4,
        fractionLost: 0.05078125,
        cumulativeLost: -3,
        jitterMs: 2.5,
        roundTripMs: null,
        xrRFactor: 80,
        xrMosLq: 4.1,
        xrMosCq: null,
        cname: "us'er\\@hö\t",
      },
    };
    const base = sipEvent(hostileSip(0), Buffer.from('{}'), { protoType: 34, sip: undefined });
    const mediaEvent: CaptureEvent = { ...base, media: report, payload: Buffer.from('report 1') };
    // Type 34 that crossed HEP or Kafka without the object: the JSON is read back.
    const { media: _m, ...viaJson } = {
      ...mediaEvent,
      payload: Buffer.from(
        JSON.stringify(
          { ...report, kind: 'final', endReason: 'bye', interval: null, meanJitterMs: 1 },
          (_k, v) => (typeof v === 'bigint' ? v.toString() : v),
        ),
      ),
    };
    const hep5: CaptureEvent = {
      ...base,
      protoType: 5,
      correlationId: 'call-5',
      payload: Buffer.from(
        JSON.stringify({
          type: 201,
          ssrc: 1,
          report_blocks: [{ source_ssrc: 99, fraction_lost: 64, packets_lost: 12 }],
        }),
      ),
    };
    const writer = new StoreWriter(store.client, { database: DB });
    await writer.write([mediaEvent, viaJson, hep5]);
    await writer.close();
    expect(writer.stats.rowsByTable).toEqual({
      sip_messages: 0,
      media_reports: 2,
      rtcp_reports: 3,
      hep_logs: 0,
      failovers: 0,
    });

    const media = await store.client.query({
      query: `SELECT kind, end_reason, hex(call_id) AS call_id, ip_family, vlan, ssrc, previous_ssrc, codec, payload_names,
                toString(lost) AS lost, loss_percent, mean_delta_ms, mean_jitter_ms, max_skew_ms, loss_bursts, delay_over, mos, min_mos,
                has_interval, toString(interval_lost) AS interval_lost, has_rtcp
              FROM ${DB}.media_reports ORDER BY kind DESC
              SETTINGS output_format_json_quote_denormals = 1`,
      format: 'JSONEachRow',
    });
    const rows = await media.json<Record<string, unknown>>();
    expect(rows[0]).toEqual({
      kind: 'interval',
      end_reason: '',
      call_id: Buffer.from(report.callId!, 'latin1').toString('hex').toUpperCase(),
      ip_family: 6,
      vlan: null,
      ssrc: 4_294_967_295,
      previous_ssrc: 7,
      codec: "PC'MA\\",
      payload_names: ["g711A'", 'tele\\phone-event'],
      lost: '-2',
      loss_percent: 0.398406374501992,
      mean_delta_ms: 20.000000000000004,
      mean_jitter_ms: 'nan',
      max_skew_ms: -12.5,
      loss_bursts: [1, 0, 0, 0, 0, 0, 0, 0, 0, 4_294_967_295],
      delay_over: { '50': 0.1, '300': 0 },
      mos: 4.38,
      min_mos: null,
      has_interval: true,
      interval_lost: '2',
      has_rtcp: true,
    });
    expect(rows[1]).toMatchObject({
      kind: 'final',
      end_reason: 'bye',
      has_interval: false,
      mean_jitter_ms: 1,
    });

    const rtcp = await store.client.query({
      query: `SELECT origin, report_kind, ssrc, sender_reports, receiver_reports, fraction_lost,
                toString(cumulative_lost) AS cumulative_lost,
                round_trip_ms, cname, hex(call_id) AS call_id, toBool(raw_json = '') AS no_json
              FROM ${DB}.rtcp_reports ORDER BY origin, report_kind`,
      format: 'JSONEachRow',
    });
    expect(await rtcp.json()).toEqual([
      {
        origin: 'hep',
        report_kind: '',
        ssrc: 99,
        sender_reports: 0,
        receiver_reports: 1,
        fraction_lost: 0.25,
        cumulative_lost: '12',
        round_trip_ms: null,
        cname: null,
        call_id: Buffer.from('call-5').toString('hex').toUpperCase(),
        no_json: false,
      },
      ...['final', 'interval'].map((kind) => ({
        origin: 'media-report',
        report_kind: kind,
        ssrc: 4_294_967_295,
        sender_reports: 3,
        receiver_reports: 4,
        fraction_lost: 0.05078125,
        cumulative_lost: '-3',
        round_trip_ms: null,
        cname: "us'er\\@hö\t",
        call_id: Buffer.from(report.callId!, 'latin1').toString('hex').toUpperCase(),
        no_json: true,
      })),
    ]);
  });

  it('reads only the JSON shape callscope writes as a type-34 report', () => {
    expect(mediaReportFromJson(Buffer.from('{"kind":"final"}'))).toBeNull();
    expect(mediaReportFromJson(Buffer.from('[1,2]'))).toBeNull();
    expect(mediaReportFromJson(Buffer.from('not json'))).toBeNull();
  });
});

describe('column lists', () => {
  it('media and RTCP rows have one field per column', async () => {
    const sample: CaptureEvent[] = [];
    await analyzeFile(fileURLToPath(new URL('../capture/sample/calls.pcap', import.meta.url)), {
      onEvent: (e) => sample.push(e),
    });
    const report = sample.find((e) => e.media?.kind === 'final')!;
    const withRtcp: CaptureEvent = {
      ...report,
      media: {
        ...report.media!,
        rtcp: {
          senderReports: 1,
          receiverReports: 0,
          fractionLost: null,
          cumulativeLost: null,
          jitterMs: null,
          roundTripMs: null,
          xrRFactor: null,
          xrMosLq: null,
          xrMosCq: null,
          cname: 'a\tb',
        },
      },
    };
    const { rows } = eventRows(withRtcp);
    const fields = (b: Buffer | undefined) => b!.toString('latin1').replace(/\n$/, '').split('\t').length;
    expect(fields(rows.media_reports)).toBe(columnNames(MEDIA_REPORTS).length);
    expect(fields(rows.rtcp_reports)).toBe(columnNames(RTCP_REPORTS).length);
    const hep5 = eventRows({ ...report, media: undefined, protoType: 5, payload: Buffer.from('{"a":"\t"}') });
    expect(fields(hep5.rows.rtcp_reports)).toBe(columnNames(RTCP_REPORTS).length);
  });
});
