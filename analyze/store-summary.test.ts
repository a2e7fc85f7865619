import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StaticVmMap, VmAttribution } from '../capture/attribution.js';
import type { CaptureEvent } from '../core/event.js';
import { captureRunFromSummary } from '../ingest/rows.js';
import { migrate } from '../ingest/schema/migrate.js';
import { openTestStore, type TestStore } from '../ingest/schema/test-store.js';
import { StoreWriter } from '../ingest/writer.js';
import { needs, SHARED_CAPTURES } from '../test/oracle/tools.js';
import { analyzeFile } from './analyze.js';
import { rebuildCalls } from './calls/job.js';
import { storeSummary } from './store-summary.js';
import type { AnalyzeSummary } from './summary.js';

const SAMPLE = fileURLToPath(new URL('../capture/sample/calls.pcap', import.meta.url));
const PCAPS = fileURLToPath(new URL('../../shared/pcaps/', import.meta.url));
/** Public captures with SIP over TCP, WebSocket, SCTP, IPv6, tunnels and fragments (../shared/pcaps). */
const PUBLIC = [
  'sip_ipv4_tcp.pcap',
  'sip_ipv4_tcp_retrans.pcap',
  'sip_ipv6_udp.pcap',
  'sip_tcp_websocket.pcap',
  'sip_sctp.pcap',
  'ipip.pcap',
  'ipv6frag.pcap',
  'g711a.pcap',
];
const DB = 'stats_test';

let store: TestStore;

/** What `run` stores at a run's end besides its events: the run's record and its calls. */
async function finishRun(
  writer: StoreWriter,
  database: string,
  runId: string,
  summary: AnalyzeSummary,
  context: { captureId?: number; nodeName?: string } = {},
): Promise<void> {
  await writer.writeCaptureRun(captureRunFromSummary(summary, { runId, ...context }));
  await writer.flush();
  await rebuildCalls({
    client: store.client,
    database,
    writer,
    scope: { where: 'run_id = {run:String}', params: { run: runId } },
    closeAtMs: summary.lastPacketTime === null ? undefined : Math.trunc(Date.parse(summary.lastPacketTime)),
  });
}
let analyzed: AnalyzeSummary;
let events: CaptureEvent[];

beforeAll(async () => {
  store = await openTestStore();
  await migrate(store.client, { database: DB, ttlDays: 0 });
  events = [];
  analyzed = await analyzeFile(SAMPLE, { onEvent: (e) => events.push(e), captureId: 7, nodeName: 'hv1' });
  const writer = new StoreWriter(store.client, { database: DB, runId: 'run-1', maxRows: 500 });
  await writer.write(events);
  await finishRun(writer, DB, 'run-1', analyzed, { captureId: 7, nodeName: 'hv1' });
  await writer.close();
});

afterAll(async () => {
  await store?.close();
});

describe('storeSummary', () => {
  it('reproduces the per-VM load of a run with VM attribution', async () => {
    // The sample's generator VMs have MACs 02:00:00:00:00:0N; name three of the four.
    const map = new StaticVmMap([1, 2, 3].map((n) => ({ mac: `02:00:00:00:00:0${n}`, id: `vm${n}` })));
    const vmEvents: CaptureEvent[] = [];
    const withVms = await analyzeFile(SAMPLE, {
      onEvent: (e) => vmEvents.push(e),
      vms: new VmAttribution(map),
    });
    expect(withVms.vms?.map((v) => v.vm)).toEqual(['vm1', 'vm2', 'vm3']);
    const sent = withVms.vms!.reduce((n, v) => n + v.sipSent, 0);
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThanOrEqual(withVms.sip.messages);
    expect(withVms.vms!.some((v) => v.streamsSent > 0 && v.invitesReceived > 0)).toBe(true);
    // A database of its own: the other tests summarise the whole of theirs.
    const database = `${DB}_vms`;
    await migrate(store.client, { database, ttlDays: 0 });
    const writer = new StoreWriter(store.client, { database, runId: 'run-vms' });
    await writer.write(vmEvents);
    await finishRun(writer, database, 'run-vms', withVms);
    await writer.close();
    const summary = await storeSummary(store.client, { database, runId: 'run-vms' });
    expect(summary.vms).toEqual(withVms.vms);
    expect(analyzed.vms).toBeUndefined();
  });

  it('reproduces the analyze summary of the sample capture from the store', async () => {
    expect(analyzed.sip.messages).toBeGreaterThan(200);
    expect(analyzed.rtp.streams.length).toBeGreaterThan(10);
    const summary = await storeSummary(store.client, { database: DB, runId: 'run-1' });
    expect(summary.sip).toEqual(analyzed.sip);
    expect(summary.rtp).toEqual(analyzed.rtp);
    // Everything else comes from the run row: the whole object matches.
    expect(summary).toEqual(analyzed);
  });

  it('counts events written twice once', async () => {
    const again = new StoreWriter(store.client, { database: DB, runId: 'run-1', maxRows: 333 });
    await again.write(events);
    await again.close();
    const summary = await storeSummary(store.client, { database: DB, runId: 'run-1' });
    expect(summary.sip).toEqual(analyzed.sip);
    expect(summary.rtp.streams).toEqual(analyzed.rtp.streams);
  });

  it('summarises the whole store without a run id', async () => {
    const summary = await storeSummary(store.client, { database: DB });
    expect(summary.sip).toEqual(analyzed.sip);
    expect(summary.packets).toBe(analyzed.packets);
    expect(summary.file).toBe(analyzed.file);
  });

  const publicIt = needs(SHARED_CAPTURES).it;
  publicIt.each(PUBLIC)('reproduces the summary of %s (public capture) for its run', async (file) => {
    const seen: CaptureEvent[] = [];
    const expected = await analyzeFile(`${PCAPS}${file}`, { onEvent: (e) => seen.push(e) });
    const runId = `public-${basename(file)}`;
    const writer = new StoreWriter(store.client, { database: DB, runId });
    await writer.write(seen);
    await finishRun(writer, DB, runId, expected);
    await writer.close();
    expect(await storeSummary(store.client, { database: DB, runId })).toEqual(expected);
  });

  it('lists RTCP with final streams, and leaves interval reports and HEP RTCP out of them', async () => {
    const database = 'stats_rtcp';
    await migrate(store.client, { database, ttlDays: 0 });
    const rtcp = (n: number) => ({
      senderReports: n,
      receiverReports: n + 1,
      fractionLost: n / 256,
      cumulativeLost: -n,
      jitterMs: n === 2 ? null : n * 1.25,
      roundTripMs: 0.1 + 0.2,
      xrRFactor: null,
      xrMosLq: n === 1 ? 4.2 : null,
      xrMosCq: null,
      cname: n === 1 ? "caller'@hö\\" : null,
    });
    let finals = 0;
    const mixed: CaptureEvent[] = [];
    for (const e of events) {
      if (e.media?.kind !== 'final' || finals >= 3) {
        mixed.push(e);
        continue;
      }
      finals++;
      const media = { ...e.media, rtcp: rtcp(finals) };
      // An interval report of the same stream just before: listed nowhere in the summary.
      mixed.push({
        ...e,
        timestampNs: e.timestampNs - 1n,
        media: { ...media, kind: 'interval', endReason: null },
      });
      mixed.push({ ...e, media });
    }
    mixed.push({
      ...events[0]!,
      sip: undefined,
      protoType: 5,
      payload: Buffer.from('{"type":200,"ssrc":5}'),
    });
    const writer = new StoreWriter(store.client, { database, runId: 'rtcp' });
    await writer.write(mixed);
    await finishRun(writer, database, 'rtcp', analyzed);
    await writer.close();
    expect(writer.stats.rowsByTable.rtcp_reports).toBe(7);

    const summary = await storeSummary(store.client, { database, runId: 'rtcp' });
    const withRtcp = summary.rtp.streams.filter((s) => s.rtcp !== null);
    const figures = withRtcp.map((s) => s.rtcp!).sort((a, b) => a.senderReports - b.senderReports);
    expect(figures).toEqual([1, 2, 3].map(rtcp));
    expect(summary.rtp.streams.map((s) => ({ ...s, rtcp: null }))).toEqual(analyzed.rtp.streams);
  });

  it('names an unknown run', async () => {
    await expect(storeSummary(store.client, { database: DB, runId: 'nope' })).rejects.toThrow(
      /no capture run "nope" in stats_test.capture_runs/,
    );
  });

  it('summarises events that came without a capture run (Kafka, HEP) by time range and node', async () => {
    // As `callscope ingest` stores them: run id '', no capture_runs row; two nodes.
    const database = 'stats_live';
    await migrate(store.client, { database, ttlDays: 0 });
    const writer = new StoreWriter(store.client, { database, runId: '' });
    const shift = 3_600_000_000_000n; // the second node's copy an hour later, so it is another event
    await writer.write(events);
    await writer.write(events.map((e) => ({ ...e, nodeName: 'hv2', timestampNs: e.timestampNs + shift })));
    await writer.close();
    const first = Date.parse(analyzed.firstPacketTime!);
    const last = Date.parse(analyzed.lastPacketTime!);
    const hv1 = await storeSummary(store.client, {
      database,
      node: 'hv1',
      since: new Date(first - 1000),
      until: new Date(last + 1000),
    });
    expect(hv1.format).toBe('store');
    expect(hv1.file).toBe(
      `store ${database}, node hv1, since ${new Date(first - 1000).toISOString()}, until ${new Date(last + 1000).toISOString()}`,
    );
    expect(hv1.sip).toEqual({ ...analyzed.sip, malformed: 0 });
    expect(hv1.rtp.streams).toEqual(analyzed.rtp.streams);
    expect(hv1.packets).toBe(0);
    // The span of the events themselves (SIP times; the first packet may be RTP).
    expect(hv1.durationSec).toBeGreaterThan(0);
    expect(hv1.durationSec).toBeLessThanOrEqual(analyzed.durationSec);
    // Without the node: the same range holds only hv1's copy; a wider range both.
    const range = { database, since: new Date(first - 1000), until: new Date(last + 1000) };
    expect((await storeSummary(store.client, range)).sip.messages).toBe(analyzed.sip.messages);
    const both = await storeSummary(store.client, { database, since: new Date(first - 1000) });
    expect(both.sip.messages).toBe(2 * analyzed.sip.messages);
    expect((await storeSummary(store.client, { database, node: 'hv2' })).sip.messages).toBe(
      analyzed.sip.messages,
    );
    expect((await storeSummary(store.client, { database, node: 'nowhere' })).sip.messages).toBe(0);
  });
});
