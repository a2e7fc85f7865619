/**
 * What the call engine reads back from the store: SIP messages (parsed again from their stored bytes)
 * and final media reports, in capture order, as the events a capture delivered. Read with FINAL, so a
 * message stored twice is one message. Values reach the SQL only as query parameters.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { SipParser } from '../../capture/sip/parser.js';
import type { CallStream } from '../../core/call.js';
import type { CaptureEvent, TransportName } from '../../core/event.js';
import type { MediaEndReason } from '../../core/media-report.js';
import { qualifiedName } from '../../ingest/schema/ddl.js';
import { eventWholeMs } from '../tracking.js';

/** Rows of a table that a query selects: `where` over its columns, with its parameters. */
export interface StoredScope {
  where: string;
  params: Record<string, unknown>;
}

/** One stored SIP message as the capture delivered it, or a stream's final figures. */
export type StoredCallEvent =
  | { kind: 'sip'; timeMs: number; event: CaptureEvent }
  | {
      kind: 'stream';
      timeMs: number;
      callId: string;
      stream: CallStream;
      /** A final report (else an interval one), and why its stream ended. */
      final: boolean;
      endReason: MediaEndReason | null;
    };

type Row = Record<string, unknown>;

const num = (v: unknown): number => Number(v ?? 0);
const READ_SETTINGS = 'SETTINGS output_format_json_quote_denormals = 1';

/**
 * How to read: `final: false` skips FINAL and drops repeated event ids itself, which is much cheaper
 * for a handful of rows (a ladder) and the same result; the calls job reads whole chunks with FINAL.
 */
export interface ReadOptions {
  final?: boolean;
}

/** The stored SIP messages of a scope, in capture order (time, then event id). */
export async function* storedSipEvents(
  client: ClickHouseClient,
  database: string,
  scope: StoredScope,
  options: ReadOptions = {},
): AsyncGenerator<StoredCallEvent> {
  const parser = new SipParser();
  const final = options.final !== false;
  const seen = final ? null : new Set<string>();
  const result = await client.query({
    query: `SELECT toString(toUnixTimestamp64Nano(time)) AS ns, hex(raw) AS raw, transport, src_ip, src_port,
         dst_ip, dst_port, retransmission, src_vm, dst_vm, node, capture_id, vlan, toString(event_id) AS eid
       FROM ${qualifiedName(database, 'sip_messages')} ${final ? 'FINAL' : ''} WHERE ${scope.where}
       ORDER BY time, event_id
       ${READ_SETTINGS}`,
    query_params: scope.params,
    format: 'JSONEachRow',
  });
  for await (const rows of result.stream()) {
    for (const row of rows) {
      const r = row.json<Row>();
      if (seen !== null) {
        // Without FINAL a message stored twice comes twice: the first copy stands for it.
        const id = String(r.eid);
        if (seen.has(id)) continue;
        seen.add(id);
      }
      const payload = Buffer.from(String(r.raw), 'hex');
      const parsed = parser.parse(payload, 0, payload.length, {
        transportIsStream: r.transport === 'tcp' || r.transport === 'tls',
      });
      if (!parsed.ok) continue;
      const srcIp = String(r.src_ip);
      const timestampNs = BigInt(String(r.ns));
      yield {
        kind: 'sip',
        timeMs: eventWholeMs(timestampNs),
        event: {
          timestampNs,
          ipFamily: srcIp.includes(':') ? 6 : 4,
          ipProtocol: r.transport === 'udp' ? 17 : r.transport === 'sctp' ? 132 : 6,
          transport: r.transport as TransportName,
          srcIp,
          dstIp: String(r.dst_ip),
          srcPort: num(r.src_port),
          dstPort: num(r.dst_port),
          vlan: r.vlan === null || r.vlan === undefined ? null : num(r.vlan),
          protoType: 1,
          captureId: num(r.capture_id),
          nodeName: String(r.node),
          correlationId: parsed.message.callId ?? '',
          payload,
          sip: parsed.message,
          retransmission: r.retransmission === true,
          srcVm: r.src_vm === '' ? undefined : String(r.src_vm),
          dstVm: r.dst_vm === '' ? undefined : String(r.dst_vm),
        },
      };
    }
  }
}

/**
 * The final media reports of a scope (over media_reports' columns), in capture order. (No alias may
 * take a column's name: ClickHouse would read the scope's condition on the alias.)
 */
export async function* storedStreams(
  client: ClickHouseClient,
  database: string,
  scope: StoredScope,
  options: ReadOptions = {},
): AsyncGenerator<StoredCallEvent> {
  const final = options.final !== false;
  const seen = final ? null : new Set<string>();
  const result = await client.query({
    query: `SELECT toUnixTimestamp64Milli(time) AS t, hex(call_id) AS call_id_hex, src_ip, src_port, dst_ip, dst_port,
         ssrc, codec, packets, lost, loss_percent, max_jitter_ms, mean_jitter_ms, mos, kind = 'final' AS is_final,
         end_reason, toString(event_id) AS eid
       FROM ${qualifiedName(database, 'media_reports')} ${final ? 'FINAL' : ''}
       WHERE call_id != '' AND (${scope.where})
       ORDER BY time, event_id
       ${READ_SETTINGS}`,
    query_params: scope.params,
    format: 'JSONEachRow',
  });
  for await (const rows of result.stream()) {
    for (const row of rows) {
      const r = row.json<Row>();
      if (seen !== null) {
        const id = String(r.eid);
        if (seen.has(id)) continue;
        seen.add(id);
      }
      yield {
        kind: 'stream',
        timeMs: num(r.t),
        callId: Buffer.from(String(r.call_id_hex), 'hex').toString('latin1'),
        final: r.is_final === true || r.is_final === 1,
        endReason:
          r.end_reason === null || r.end_reason === undefined || r.end_reason === ''
            ? null
            : (String(r.end_reason) as MediaEndReason),
        stream: {
          src: String(r.src_ip),
          srcPort: num(r.src_port),
          dst: String(r.dst_ip),
          dstPort: num(r.dst_port),
          ssrc: num(r.ssrc),
          codec: r.codec === null || r.codec === undefined ? null : String(r.codec),
          packets: num(r.packets),
          lost: num(r.lost),
          lossPercent: num(r.loss_percent),
          maxJitterMs: num(r.max_jitter_ms),
          meanJitterMs: num(r.mean_jitter_ms),
          mos: r.mos === null || r.mos === undefined ? null : num(r.mos),
        },
      };
    }
  }
}

/** Two time-ordered streams as one (SIP first at equal times, as a capture delivers a call's setup first). */
export async function* mergeByTime(
  a: AsyncIterable<StoredCallEvent>,
  b: AsyncIterable<StoredCallEvent>,
): AsyncGenerator<StoredCallEvent> {
  const ia = a[Symbol.asyncIterator]();
  const ib = b[Symbol.asyncIterator]();
  let na = await ia.next();
  let nb = await ib.next();
  while (!na.done || !nb.done) {
    if (nb.done || (!na.done && na.value.timeMs <= nb.value.timeMs)) {
      yield na.value as StoredCallEvent;
      na = await ia.next();
    } else {
      yield nb.value;
      nb = await ib.next();
    }
  }
}
