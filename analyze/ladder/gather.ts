/**
 * What a ladder is drawn from, gathered from a capture file or from the store: the call's legs (the
 * Call-ID asked for and every B2BUA leg linked to it), their records, SIP messages in capture order,
 * final media reports and HEP logs.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { SipParser } from '../../capture/sip/parser.js';
import { FileSource, type FileSourceOptions } from '../../capture/sources.js';
import type { CallRecord, CallStream } from '../../core/call.js';
import { drive } from '../../core/drive.js';
import type { CaptureEvent } from '../../core/event.js';
import type { Logger } from '../../core/log.js';
import { CallbackSink } from '../../core/sink.js';
import { callFromRow, callSelectList } from '../../ingest/call-rows.js';
import { qualifiedName } from '../../ingest/schema/ddl.js';
import { CallAnalysis } from '../calls/analysis.js';
import type { LinkOptions } from '../calls/linker.js';
import { callStreamOf } from '../calls/sink.js';
import { type StoredCallEvent, storedSipEvents, storedStreams } from '../calls/stored-events.js';
import type { LadderInput } from './build.js';

/** No message of this Call-ID: the command's one-line error. */
export class UnknownCallError extends Error {
  /** The command's exit code (an operational error: one line, no stack). */
  readonly exitCode = 1;
  constructor(readonly callId: string) {
    super(`no call with Call-ID ${JSON.stringify(callId)}`);
    this.name = 'UnknownCallError';
  }
}

/** The legs of the call `callId` belongs to, among `records`: its edge and every leg linked to it. */
export function legsOf(records: readonly CallRecord[], callId: string): CallRecord[] {
  const own = records.find((r) => r.callId === callId || r.linkedCallIds.includes(callId));
  if (own === undefined) return [];
  const edge = own.edgeCallId;
  const ids = new Set([own.callId, edge, ...own.linkedCallIds]);
  return records.filter((r) => ids.has(r.callId) || r.edgeCallId === edge);
}

/**
 * From a capture file. The leg alone (`legs: false`) takes one read: the call engine and the keeping
 * of its messages and media side by side. With its legs, two: the engine finds which Call-IDs are
 * linked, then their messages and media are kept. Kept messages are copies: the reader reuses its
 * buffers.
 */
export async function ladderInputFromFile(
  file: string,
  callId: string,
  options: { capture?: FileSourceOptions; link?: LinkOptions; logger?: Logger; legs?: boolean } = {},
): Promise<LadderInput> {
  const analysis = new CallAnalysis({ keepRecords: true, link: options.link, logger: options.logger });
  const ids = new Set([callId]);
  const parser = new SipParser();
  let events: CaptureEvent[] = [];
  let streams: Array<{ callId: string; stream: CallStream }> = [];
  const keep = new CallbackSink((event) => {
    const sip = event.sip;
    if (sip !== undefined) {
      if (sip.callId === null || !ids.has(sip.callId)) return;
      const payload = Buffer.from(event.payload);
      const parsed = parser.parse(payload, 0, payload.length, {
        transportIsStream: event.transport === 'tcp' || event.transport === 'tls',
      });
      if (parsed.ok) events.push({ ...event, payload, sip: parsed.message });
      return;
    }
    const media = event.media;
    if (media !== undefined && media.kind === 'final' && media.callId !== null && ids.has(media.callId))
      streams.push({ callId: media.callId, stream: callStreamOf(media) });
  }, 'ladder');
  const alone = options.legs === false;
  const first = await drive(
    new FileSource(file, options.capture),
    alone ? [analysis.sink, keep] : [analysis.sink],
    {
      logger: options.logger,
    },
  );
  const last = first.source.lastTimestamp;
  await analysis.finish(last === null ? undefined : Math.trunc(last * 1000));
  const legs = alone ? analysis.records.filter((r) => r.callId === callId) : legsOf(analysis.records, callId);
  if (!alone) {
    for (const r of legs) ids.add(r.callId);
    events = [];
    streams = [];
    await drive(new FileSource(file, options.capture), [keep], { logger: options.logger });
  }
  if (events.length === 0) throw new UnknownCallError(callId);
  return { callId, records: legs, events, streams, logs: [] };
}

/**
 * From the store: the leg's record (its Call-ID's granules, by the calls table's bloom index), the
 * records of its edge's legs, then every stored message, final media report and HEP log of their
 * Call-IDs, each query over its table's (hour, Call-ID) key.
 */
export async function ladderInputFromStore(
  client: ClickHouseClient,
  database: string,
  callId: string,
  options: { legs?: boolean } = {},
): Promise<LadderInput> {
  const calls = qualifiedName(database, 'calls');
  // Without FINAL (far cheaper for a few rows): the newest version of each row is kept here, and
  // deleted ones dropped, as FINAL would.
  const recordsWhere = async (where: string, params: Record<string, unknown>) => {
    const result = await client.query({
      query: `SELECT ${callSelectList()}, is_deleted AS ladder_deleted FROM ${calls} WHERE ${where}`,
      query_params: params,
      format: 'JSONEachRow',
    });
    const newest = new Map<string, { version: bigint; deleted: boolean; record: CallRecord }>();
    for (const row of await result.json<Record<string, unknown>>()) {
      const v = callFromRow(row);
      const key = `${v.record.callId}|${v.record.start}`;
      const current = newest.get(key);
      if (current === undefined || v.version > current.version)
        newest.set(key, {
          version: v.version,
          deleted: row.ladder_deleted === true || row.ladder_deleted === 1,
          record: v.record,
        });
    }
    return [...newest.values()].filter((v) => !v.deleted).map((v) => v.record);
  };
  // The leg and, in the same query, every leg of its edge (the subquery's set goes through the
  // bloom indexes too).
  const found =
    options.legs === false
      ? await recordsWhere('call_id = {cid:String}', { cid: callId })
      : await recordsWhere(
          `call_id = {cid:String}
           OR edge_call_id IN (SELECT edge_call_id FROM ${calls} WHERE call_id = {cid:String})
           OR call_id IN (SELECT edge_call_id FROM ${calls} WHERE call_id = {cid:String})`,
          { cid: callId },
        );
  const records = options.legs === false ? found : legsOf(found, callId);
  const ids = [...new Set([callId, ...records.map((r) => r.callId)])];
  // Every stored message of these Call-IDs, whatever its time: a capture with a broken clock
  // still exports whole. The tables' (hour, Call-ID) keys let the engine skip other Call-IDs'
  // granules hour by hour. The three tables are read at once.
  const params: Record<string, unknown> = { ids };
  const collect = async <T>(
    source: AsyncIterable<StoredCallEvent>,
    pick: (e: StoredCallEvent) => T | null,
  ) => {
    const out: T[] = [];
    for await (const e of source) {
      const v = pick(e);
      if (v !== null) out.push(v);
    }
    return out;
  };
  const [events, streams, logs] = await Promise.all([
    collect(
      storedSipEvents(
        client,
        database,
        { where: 'call_id IN {ids:Array(String)}', params },
        { final: false },
      ),
      (e) => (e.kind === 'sip' ? e.event : null),
    ),
    collect(
      storedStreams(
        client,
        database,
        { where: `kind = 'final' AND call_id IN {ids:Array(String)}`, params },
        { final: false },
      ),
      (e) => (e.kind === 'stream' ? { callId: e.callId, stream: e.stream } : null),
    ),
    client
      .query({
        query: `SELECT toUnixTimestamp64Micro(time) AS us, correlation_id, text FROM ${qualifiedName(database, 'hep_logs')} FINAL
                WHERE correlation_id IN {ids:Array(String)} ORDER BY time, event_id`,
        query_params: params,
        format: 'JSONEachRow',
      })
      .then((r) => r.json<{ us: string | number; correlation_id: string; text: string }>()),
  ]);
  if (events.length === 0) throw new UnknownCallError(callId);
  return {
    callId,
    records,
    events,
    streams,
    logs: logs.map((r) => ({
      time: Number(r.us) / 1000,
      callId: r.correlation_id,
      text: r.text,
    })),
  };
}
