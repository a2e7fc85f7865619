/**
 * HEP into the STORE: HEP3 frames from an implementation we did not write (sngrep) and hostile frames
 * of our own arrive at our HepListener, whose batches go through a StoreWriter into the embedded store;
 * then the store is read back.
 *
 * 1. sngrep (Debian 1.6, EEP/HEP support) replays the bundled sample and every shared capture as HEP;
 *    `storeSummary` of the database must count the SIP messages per method and status exactly as
 *    `analyzeFile` counts the capture, and every stored message must be one of the capture's, byte for
 *    byte. sngrep's quirks (docs/HEP.md) are handled explicitly: no SIP over SCTP is sent; the SIP of a
 *    retransmitted TCP segment is sent again (a second, byte-identical row on the same connection);
 *    a message reassembled from IPv6 fragments arrives with 16 NUL bytes appended.
 * 2. SIP messages whose Call-ID, From user, User-Agent, X-Call-ID and body hold quotes, backslashes,
 *    TabSeparated escapes, NUL bytes, SQL fragments, query-parameter syntax, invalid UTF-8, every byte
 *    value and 64,000-byte values are sent as HEP over UDP and TCP; each column reads back byte-exact
 *    (`hex()`), and a query whose parameter holds the hostile value finds exactly its row.
 *
 * HEP carries no retransmission flag: the listener's events are marked again on the ingest side
 * (ingest/retransmissions.ts), as `callscope ingest` does, and the store must count analyze's.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import { storeSummary } from '../analyze/store-summary.js';
import { SipParser } from '../capture/sip/parser.js';
import { type CaptureEvent, HEP_PROTO_SIP } from '../core/event.js';
import { createLogger, type Logger, silentLogger } from '../core/log.js';
import { HepListener } from '../ingest/hep/listener.js';
import { HepSender } from '../ingest/hep/sender.js';
import { migrate } from '../ingest/schema/migrate.js';
import { IngestSip } from '../ingest/sip.js';
import { openStore, type Store } from '../ingest/store/client.js';
import { StoreWriter } from '../ingest/writer.js';
import { needs, removeTmpDir, SHARED_CAPTURES, SHARED_PCAPS, SNGREP_HEP, tmpDir } from './oracle/tools.js';
import { sngrepSendHep, udpDrops } from './pipeline/sngrep.js';

const parser = new SipParser();

function testLogger(): Logger {
  const level = process.env.CALLSCOPE_TEST_LOG;
  return level === 'debug' || level === 'info' || level === 'warn' || level === 'error'
    ? createLogger({ level, format: 'text' })
    : silentLogger;
}

const logger = testLogger();
const SAMPLE = new URL('../capture/sample/calls.pcap', import.meta.url).pathname;
const CAPTURES = [
  SAMPLE,
  ...(SHARED_PCAPS
    ? readdirSync(SHARED_PCAPS)
        .filter((f) => /\.pcap(ng)?$/.test(f))
        .sort()
        .map((f) => join(SHARED_PCAPS!, f))
    : []),
];

let dir: string;
let store: Store;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = tmpDir('callscope-hep-store-');
  store = await openStore({ dataDir: join(dir, 'store'), logger });
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await store?.close();
  if (dir) removeTmpDir(dir);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function query<T>(sql: string, params: Record<string, unknown>): Promise<T[]> {
  const result = await store.client.query({ query: sql, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

/**
 * A listener on 127.0.0.1 whose batches are written to `database` through a StoreWriter, with
 * retransmissions marked again on the way (HEP carries no flag), as `callscope ingest --hep-listen` does.
 */
async function listenerIntoStore(database: string, transports: { udp: boolean; tcp: boolean }) {
  await migrate(store.client, { database, ttlDays: 0, logger });
  const writer = new StoreWriter(store.client, { database, logger });
  const marker = new IngestSip();
  const listener = await HepListener.start({
    host: '127.0.0.1',
    port: 0,
    ...transports,
    logger,
    // Resolves once the events are in the writer's batch; the writer's backpressure pauses delivery.
    onEvents: (events) => writer.write(marker.prepare(events)),
  });
  return { listener, writer };
}

/** Waits until the listener's frame count stops moving (the last datagrams through the event loop). */
async function settle(listener: HepListener, atLeast = 0, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = -1;
  while (Date.now() < end && (listener.stats.frames !== last || listener.stats.frames < atLeast)) {
    last = listener.stats.frames;
    await sleep(200);
  }
}

function stripNuls(b: Buffer): Buffer {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}

const tuple = (r: { src_ip: string; src_port: number; dst_ip: string; dst_port: number }) =>
  `${r.src_ip} ${r.src_port} ${r.dst_ip} ${r.dst_port}`;

function countBy(keys: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = (out[k] ?? 0) + 1;
  return out;
}

describe.skipIf(needs(SNGREP_HEP).markMissing())('sngrep -H → HepListener → StoreWriter → store', () => {
  CAPTURES.forEach((file, index) => {
    it(`${basename(file)}: storeSummary counts the SIP analyzeFile counts, each message byte for byte`, async () => {
      const local: CaptureEvent[] = [];
      const summary = await analyzeFile(file, {
        onEvent: (e) => e.protoType === HEP_PROTO_SIP && local.push(e),
      });
      const database = `hep_replay_${index}`;
      const { listener, writer } = await listenerIntoStore(database, { udp: true, tcp: false });
      try {
        expect(await sngrepSendHep(file, listener.udpPort, children)).toBe(0);
        await settle(listener);
        expect(udpDrops(listener.udpPort), 'datagrams the kernel dropped at our listener').toBe(0);
      } finally {
        await listener.close();
        await writer.close();
      }
      expect(listener.stats).toMatchObject({ malformed: 0, dropped: 0, sipUnparsed: 0, deliveryErrors: 0 });
      // Every frame sngrep sent became exactly one row.
      expect(writer.stats).toMatchObject({ events: listener.stats.events, skipped: 0, failures: 0 });
      expect(writer.stats.rowsByTable.sip_messages).toBe(listener.stats.events);

      // Quirk: sngrep 1.6 sends nothing for SIP over SCTP.
      const expected = local.filter((e) => e.transport !== 'sctp');

      type Row = {
        src_ip: string;
        src_port: number;
        dst_ip: string;
        dst_port: number;
        transport: string;
        request: string;
        raw: string;
        ns: string;
      };
      const rows = await query<Row>(
        `SELECT src_ip, src_port, dst_ip, dst_port, transport,
                if(is_request, hex(method), toString(status)) AS request, hex(raw) AS raw,
                toString(toUnixTimestamp64Nano(time)) AS ns
         FROM {db:Identifier}.sip_messages FINAL ORDER BY time, event_id`,
        { db: database },
      );
      expect(rows.length).toBe(listener.stats.events);
      expect(rows.filter((r) => r.transport === 'sctp')).toEqual([]);

      // Quirk: the SIP of a retransmitted TCP segment comes again, stamped with the retransmission's
      // time: a second row, byte-identical, on the same connection (SIP over TCP never repeats a
      // message itself). Only captures with TCP retransmissions may have them.
      const seen = new Set<string>();
      const copies: Row[] = [];
      const unique = rows.filter((r) => {
        if (r.transport !== 'tcp') return true;
        const key = `${tuple(r)} ${r.raw}`;
        if (!seen.has(key)) {
          seen.add(key);
          return true;
        }
        copies.push(r);
        return false;
      });
      if (copies.length > 0) expect(summary.decode.tcpStreams.retransmissions).toBeGreaterThan(0);
      const keyOf = (request: string, isRequest: boolean) =>
        isRequest ? Buffer.from(request, 'hex').toString('latin1') : request;

      // The check of the brief: storeSummary's messages per method and status are analyze's, plus
      // sngrep's TCP copies, minus SCTP.
      const fromStore = await storeSummary(store.client, { database });
      const want = {
        messages: expected.length + copies.length,
        retransmissions: expected.filter((e) => e.retransmission).length,
        requests: countBy([
          ...expected.filter((e) => e.sip!.isRequest).map((e) => e.sip!.method!),
          ...copies.filter((r) => !/^\d+$/.test(r.request)).map((r) => keyOf(r.request, true)),
        ]),
        responses: countBy([
          ...expected.filter((e) => !e.sip!.isRequest).map((e) => String(e.sip!.statusCode)),
          ...copies.filter((r) => /^\d+$/.test(r.request)).map((r) => r.request),
        ]),
        callIds: new Set(expected.map((e) => e.sip!.callId!.slice(0, 256))).size,
      };
      expect({
        messages: fromStore.sip.messages,
        retransmissions: fromStore.sip.retransmissions,
        requests: { ...fromStore.sip.requests },
        responses: { ...fromStore.sip.responses },
        callIds: fromStore.sip.callIds,
      }).toEqual(want);
      if (SHARED_PCAPS === null || expected.length === local.length) {
        // Nothing over SCTP: analyze's own per-method and per-status counts, unchanged, plus copies.
        expect(fromStore.sip.messages).toBe(summary.sip.messages + copies.length);
      }

      // One to one: same addresses and ports, the captured bytes (NUL padding aside), time within
      // 1 ms (for a message in several fragments or segments sngrep stamps the first, we the last).
      const pool = [...expected];
      let padded = 0;
      for (const r of unique) {
        const raw = Buffer.from(r.raw, 'hex');
        const stripped = stripNuls(raw);
        // Quirk: sngrep appends 16 NUL bytes to a message it reassembled from IPv6 fragments.
        if (stripped.length !== raw.length) padded++;
        const i = pool.findIndex((e) => {
          const dt = e.timestampNs - BigInt(r.ns);
          return (
            `${e.srcIp} ${e.srcPort} ${e.dstIp} ${e.dstPort}` === tuple(r) &&
            (dt < 0n ? -dt : dt) <= 1_000_000n &&
            stripNuls(e.payload).equals(stripped)
          );
        });
        expect(
          i,
          `stored ${tuple(r)} at ${r.ns}: ${stripped.subarray(0, 60).toString('latin1')}`,
        ).toBeGreaterThanOrEqual(0);
        pool.splice(i, 1);
      }
      expect(pool.length, 'messages of the capture not in the store').toBe(0);
      if (padded > 0) expect(summary.decode.fragments.reassembled).toBeGreaterThan(0);
      console.log(
        `[hep-store] ${basename(file)}: ${listener.stats.frames} HEP frames from sngrep → ${rows.length} rows; ` +
          `${expected.length} SIP messages matched byte for byte, ${fromStore.sip.retransmissions} retransmissions` +
          (local.length > expected.length ? `, ${local.length - expected.length} over SCTP not sent` : '') +
          (copies.length ? `, ${copies.length} TCP retransmission copies` : '') +
          (padded ? `, ${padded} NUL-padded IPv6 reassemblies` : ''),
      );
    });
  });
  needs(SHARED_CAPTURES).markMissing();
});

// -------------------------------------------------------------------------------------------------
// Hostile values

const latin1 = (s: string) => Buffer.from(s, 'latin1');
/** Every byte value but CR and LF (which end a header line). */
const HEADER_BYTES = Buffer.from([...Array(256).keys()].filter((b) => b !== 0x0a && b !== 0x0d));
const BIG = 64_000;

/** `length` bytes: `first`, the pattern repeated, `last` (a header value's edge whitespace is not part of it). */
function repeatTo(pattern: Buffer, length: number, first = 0x3c, last = 0x3e): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += pattern.length)
    pattern.copy(out, i, 0, Math.min(pattern.length, length - i));
  out[0] = first;
  out[length - 1] = last;
  return out;
}

function isUtf8(b: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

interface Hostile {
  name: string;
  /** The whole Call-ID header value. */
  callId: Buffer;
  /** User part of the From URI (URI-legal bytes only, or the parser finds no URI). */
  fromUser: Buffer;
  userAgent: Buffer;
  /** X-Call-ID header (correlation_call_id), if any. */
  xCallId: Buffer | null;
  body: Buffer;
  /** Request method (and CSeq method). */
  method: string;
  carrier: 'udp' | 'tcp';
}

/** Small hostile values: each goes into the Call-ID, User-Agent and X-Call-ID of one message. */
const VALUES: Array<[string, Buffer, { fromUser?: boolean }]> = [
  ['quotes', latin1(`it's "quoted" \`back\` ''' "" '`), {}],
  ['quotes-user', latin1(`o'brien"x\`y`), { fromUser: true }],
  ['backslashes', latin1("a\\b\\\\c\\x41\\n\\t\\0\\'\\"), { fromUser: true }],
  ['tsv-null', latin1('\\N'), { fromUser: true }],
  ['nul', Buffer.from([0x61, 0x00, 0x62, 0x00, 0x00, 0x63, 0x00]), {}],
  ['sql', latin1("'; DROP TABLE sip_messages; --"), {}],
  ['sql-or', latin1("x' OR '1'='1"), {}],
  ['placeholders', latin1('{id:String} {db:Identifier} $1 %s ? :id @id'), {}],
  [
    'invalid-utf8',
    Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xc0, 0xaf, 0x80, 0xe2, 0x82, 0xed, 0xa0, 0x80, 0xf8, 0x88, 0x80]),
    { fromUser: true },
  ],
  ['utf8', Buffer.from('Grüße – 电话 📞', 'utf8'), {}],
  [
    'controls',
    Buffer.from([...Array(32).keys(), 0x7f].filter((b) => b !== 0x0a && b !== 0x0d && b !== 0x09)),
    {},
  ],
  ['tabs', latin1('a\tb\t\tc'), {}],
  ['every-byte', HEADER_BYTES, {}],
];

function hostileMessages(): Hostile[] {
  const out: Hostile[] = VALUES.map(([name, value, o], i) => ({
    name,
    callId: Buffer.concat([latin1(`${name}:`), value, latin1(':end')]),
    fromUser: o.fromUser ? value : latin1(`user-${name}`),
    userAgent: Buffer.concat([latin1('ua:'), value, latin1(':end')]),
    xCallId: Buffer.concat([latin1('x:'), value, latin1(':end')]),
    body: Buffer.alloc(0),
    method: 'INVITE',
    carrier: i % 2 === 0 ? 'udp' : 'tcp',
  }));
  const plain = (name: string, carrier: 'udp' | 'tcp'): Hostile => ({
    name,
    callId: latin1(`${name}@example.com`),
    fromUser: latin1(`user-${name}`),
    userAgent: latin1('plain'),
    xCallId: null,
    body: Buffer.alloc(0),
    method: 'INVITE',
    carrier,
  });
  // Every punctuation character RFC 3261 allows in a method token, quote and backtick included.
  out.push({ ...plain('hostile-method', 'udp'), method: "X-O'B`~%!*+._" });
  // 64,000-byte values, one per message (a HEP frame holds at most 65,535 bytes), over both carriers.
  const sqlish = Buffer.from(`'"\\\u0000;DROP TABLE x;--{id:String}\\N é€\t`, 'utf8');
  out.push({ ...plain('big-call-id', 'udp'), callId: repeatTo(HEADER_BYTES, BIG) });
  out.push({ ...plain('big-utf8-call-id', 'tcp'), callId: repeatTo(sqlish, BIG) });
  out.push({ ...plain('big-user-agent', 'tcp'), userAgent: repeatTo(HEADER_BYTES, BIG) });
  out.push({
    ...plain('big-from-user', 'udp'),
    fromUser: repeatTo(latin1(`o'b"r\\i\`e%n`), BIG, 0x41, 0x5a),
  });
  out.push({
    ...plain('big-body', 'tcp'),
    body: repeatTo(Buffer.from([...Array(256).keys()]), BIG),
  });
  return out;
}

function sipBytes(h: Hostile): Buffer {
  const line = (...parts: Array<string | Buffer>) =>
    Buffer.concat([...parts.map((p) => (typeof p === 'string' ? latin1(p) : p)), latin1('\r\n')]);
  return Buffer.concat([
    line(`${h.method} sip:bob@example.com SIP/2.0`),
    line(`Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-${h.name}`),
    line('From: "Hostile" <sip:', h.fromUser, `@example.com>;tag=tag-${h.name}`),
    line('To: <sip:bob@example.com>'),
    line('Call-ID: ', h.callId),
    line(`CSeq: 1 ${h.method}`),
    line('User-Agent: ', h.userAgent),
    ...(h.xCallId ? [line('X-Call-ID: ', h.xCallId)] : []),
    line('Max-Forwards: 70'),
    ...(h.body.length > 0 ? [line('Content-Type: application/octet-stream')] : []),
    line(`Content-Length: ${h.body.length}`),
    line(),
    h.body,
  ]);
}

/** Result alias → stored column, read as hex. */
const HEX_COLUMNS = {
  h_call_id: 'call_id',
  h_from_user: 'from_user',
  h_from_tag: 'from_tag',
  h_to_user: 'to_user',
  h_via_branch: 'via_branch',
  h_user_agent: 'user_agent',
  h_correlation_call_id: 'correlation_call_id',
  h_method: 'method',
  h_cseq_method: 'cseq_method',
  h_raw: 'raw',
} as const;

/**
 * Hex text as compared: short values whole; long ones (64,000 bytes are 128,000 hex digits) as their
 * length, digest and ends, so that a failure prints something readable.
 */
function shown(hexText: string): string {
  if (hexText.length <= 512) return hexText;
  const digest = createHash('sha256').update(hexText).digest('hex').slice(0, 16);
  return `${hexText.length / 2} bytes sha256:${digest} ${hexText.slice(0, 48)}…${hexText.slice(-48)}`;
}

const bytesHex = (b: Buffer) => shown(b.toString('hex').toUpperCase());

const hex = (s: string | null | undefined) => bytesHex(Buffer.from(s ?? '', 'latin1'));

describe('hostile SIP values through HEP into the store', () => {
  it('read back byte-exact, and a parameter holding the value finds exactly its row', async () => {
    const database = 'hep_hostile';
    const { listener, writer } = await listenerIntoStore(database, { udp: true, tcp: true });
    const messages = hostileMessages();
    const payloads = messages.map(sipBytes);
    const udp = new HepSender({ target: `udp:127.0.0.1:${listener.udpPort}`, logger });
    const tcp = new HepSender({ target: `tcp:127.0.0.1:${listener.tcpPort}`, logger });
    const base = 1_767_225_600_000_000_000n; // 2026-01-01T00:00:00Z
    try {
      messages.forEach((h, i) => {
        const event: CaptureEvent = {
          timestampNs: base + BigInt(i) * 1_000_000n,
          ipFamily: 4,
          ipProtocol: 17,
          transport: 'udp',
          srcIp: '192.0.2.1',
          dstIp: '192.0.2.2',
          srcPort: 5060,
          dstPort: 5060,
          vlan: null,
          protoType: HEP_PROTO_SIP,
          captureId: 7,
          nodeName: 'hostile',
          // The correlation chunk would double a 64,000-byte Call-ID past the 65,535-byte frame.
          correlationId: h.callId.length > 1000 ? '' : h.callId.toString('latin1'),
          payload: payloads[i],
          retransmission: false,
        };
        expect(h.carrier === 'udp' ? udp.send(event) : tcp.send(event), h.name).toBe(true);
      });
      await Promise.all([udp.close(), tcp.close()]);
      expect(udp.stats).toMatchObject({ dropped: 0, errors: 0 });
      expect(tcp.stats).toMatchObject({ dropped: 0, errors: 0 });
      await settle(listener, messages.length);
      expect(udpDrops(listener.udpPort)).toBe(0);
    } finally {
      await listener.close();
      await writer.close();
    }
    expect(listener.stats).toMatchObject({
      frames: messages.length,
      events: messages.length,
      malformed: 0,
      sipUnparsed: 0,
      deliveryErrors: 0,
    });
    expect(writer.stats).toMatchObject({ rows: messages.length, skipped: 0, failures: 0 });

    // Nothing more, nothing less: the SQL fragments did nothing but be stored.
    const [total] = await query<{ n: string }>(
      'SELECT toString(count()) AS n FROM {db:Identifier}.sip_messages FINAL',
      { db: database },
    );
    expect(Number(total.n)).toBe(messages.length);

    type Row = Record<keyof typeof HEX_COLUMNS, string> & { n: string };
    // Aliases must not be column names: ClickHouse would resolve `call_id` in WHERE to the alias.
    const columns = (Object.keys(HEX_COLUMNS) as Array<keyof typeof HEX_COLUMNS>)
      .map((k) => `any(hex(${HEX_COLUMNS[k]})) AS ${k}`)
      .concat('toString(count()) AS n')
      .join(', ');
    const shownRow = (row: Row | undefined) =>
      row && (Object.fromEntries(Object.entries(row).map(([k, v]) => [k, shown(v)])) as Row);
    let byParameter = 0;
    for (const [i, h] of messages.entries()) {
      // What the SIP parser makes of the message is what the store must hold, byte for byte...
      const parsed = parser.parse(payloads[i], 0, payloads[i].length);
      expect(parsed.ok, h.name).toBe(true);
      const sip = parsed.ok ? parsed.message : null;
      // ...and the parser does carry the hostile bytes into those fields (else this proves little).
      expect(hex(sip?.callId), `${h.name}: parsed Call-ID`).toBe(bytesHex(h.callId));
      expect(sip?.method, `${h.name}: parsed method`).toBe(h.method);
      expect(hex(sip?.userAgent), `${h.name}: parsed User-Agent`).toBe(bytesHex(h.userAgent));
      expect(hex(sip?.from?.uri?.user), `${h.name}: parsed From user`).toBe(bytesHex(h.fromUser));
      const want: Row = {
        n: '1',
        h_call_id: hex(sip?.callId),
        h_from_user: hex(sip?.from?.uri?.user),
        h_from_tag: hex(sip?.from?.tag),
        h_to_user: hex(sip?.to?.uri?.user),
        h_via_branch: hex(sip?.via[0]?.branch),
        h_user_agent: hex(sip?.userAgent),
        h_correlation_call_id: hex(sip?.correlationCallId),
        h_method: hex(sip?.method),
        h_cseq_method: hex(sip?.cseq?.method),
        h_raw: bytesHex(payloads[i]),
      };
      if (h.xCallId)
        expect(want.h_correlation_call_id, `${h.name}: parsed X-Call-ID`).toBe(bytesHex(h.xCallId));

      // Looked up by the exact bytes (any Call-ID: unhex of a hex parameter)...
      const [byHex] = await query<Row>(
        `SELECT ${columns} FROM {db:Identifier}.sip_messages FINAL WHERE call_id = unhex({hex:String})`,
        { db: database, hex: h.callId.toString('hex') },
      );
      expect(shownRow(byHex), h.name).toEqual(want);
      // ...and by a String parameter holding the value itself (parameters travel as UTF-8, so a
      // Call-ID that is not UTF-8 cannot be written as one: docs/STORE.md).
      if (isUtf8(h.callId)) {
        byParameter++;
        const [byValue] = await query<Row>(
          `SELECT ${columns} FROM {db:Identifier}.sip_messages FINAL WHERE call_id = {id:String}`,
          { db: database, id: h.callId.toString('utf8') },
        );
        expect(shownRow(byValue), `${h.name}: WHERE call_id = {id:String}`).toEqual(want);
      }
      if (isUtf8(h.fromUser)) {
        const [byUser] = await query<{ n: string; h_call_id: string }>(
          `SELECT toString(count()) AS n, any(hex(call_id)) AS h_call_id
           FROM {db:Identifier}.sip_messages FINAL WHERE from_user = {user:String}`,
          { db: database, user: h.fromUser.toString('utf8') },
        );
        expect(
          { ...byUser, h_call_id: shown(byUser?.h_call_id ?? '') },
          `${h.name}: WHERE from_user = {user:String}`,
        ).toEqual({
          n: '1',
          h_call_id: want.h_call_id,
        });
      }
    }
    // The summary from the store counts them as analyze would: the hostile method under its own name.
    const summary = await storeSummary(store.client, { database });
    expect({
      messages: summary.sip.messages,
      requests: { ...summary.sip.requests },
      responses: { ...summary.sip.responses },
      callIds: summary.sip.callIds,
    }).toEqual({
      messages: messages.length,
      requests: countBy(messages.map((m) => m.method)),
      responses: {},
      callIds: new Set(messages.map((m) => m.callId.subarray(0, 256).toString('latin1'))).size,
    });
    console.log(
      `[hep-store] ${messages.length} hostile messages (${messages.filter((m) => m.carrier === 'udp').length} over UDP, ` +
        `${messages.filter((m) => m.carrier === 'tcp').length} over TCP, largest ${Math.max(...payloads.map((p) => p.length))} bytes) ` +
        `stored and read back byte-exact; ${byParameter} found by a String parameter holding the Call-ID itself`,
    );
  });
});
