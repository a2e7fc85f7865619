/**
 * The Grafana ladder panel (dashboards/ladder-panel/) in headless Chromium, without a Grafana server:
 * a real SIPp call (with a refused re-INVITE) captured by tcpdump and stored the normal way in the
 * embedded store; the panel's own queries (dashboards/ladder-queries.ts, `${call_id:percentencode}`
 * expanded by dashboards/macros.ts) run against it; their rows become real @grafana/data DataFrames in
 * the page; the built AMD `module.js` is loaded through a `define` shim that hands it the real react
 * and @grafana/data, as Grafana's loader does; `plugin.panel` renders with PanelProps.
 *
 * Checked: no console error or warning, no page error, no request leaving file:; one arrow per stored
 * message (= tshark's count of the capture); a click on the first and the last arrow shows that
 * message's raw text; hostile values (markup, quotes, control characters, a Call-ID with ' and \) are
 * drawn as text; the hostile Call-ID, percent-encoded, selects its own call in chDB and nothing else.
 * The screenshot is kept in test-artifacts/ (git-ignored).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, expect } from 'vitest';
import { buildLadder } from '../analyze/ladder/build.js';
import { ladderInputFromStore } from '../analyze/ladder/gather.js';
import { renderSvg } from '../analyze/ladder/svg.js';
import { generateCapture } from '../capture/generator/generate.js';
import { SipParser } from '../capture/sip/parser.js';
import type { CaptureEvent } from '../core/event.js';
import { ladderPanelTargets } from '../dashboards/ladder-queries.js';
import { expandMacros, percentEncode } from '../dashboards/macros.js';
import { ingestFile } from '../ingest/run.js';
import { openStore, type Store } from '../ingest/store/client.js';
import { StoreWriter } from '../ingest/writer.js';
import { launchChromium, pageProblems } from './oracle/browser.js';
import { runSippCalls } from './oracle/sipp.js';
import { needs, REPO_ROOT, ROOT, removeTmpDir, tmpDir } from './oracle/tools.js';
import { tsharkSipStat } from './oracle/tshark.js';

const gate = needs('chromium', 'sipp', 'tcpdump', 'tshark', ROOT);
const dir = tmpDir('callscope-ladder-panel-');
afterAll(() => removeTmpDir(dir));

const PORT = 5098;
const DATABASE = 'callscope';
/** Legal in a Call-ID (RFC 3261 `word`): quotes, backslashes and angle brackets included. */
const HOSTILE_CALL_ID = `ev'il\\"<script>window.pwned=1</script>@x`;
/** Near misses of it: what a wrong unescaping would select instead. */
const DECOYS = [
  `ev'il\\\\"<script>window.pwned=1</script>@x`,
  `ev'il`,
  `ev\\'il\\"<script>window.pwned=1</script>@x`,
];

const DATASOURCE = { type: 'grafana-clickhouse-datasource', uid: 'callscope' };

/** The SQL Grafana sends for the dashboard's `call_id` (dashboards/macros.ts stands for its expansion). */
function expand(sql: string, callId: string): string {
  return expandMacros(sql, { from: new Date(0), to: new Date(), intervalSec: 60, vars: { call_id: callId } });
}

/** The text of an SVG string, as the DOM's textContent reads it. */
function svgText(svg: string): string {
  const entities: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', '#39': "'" };
  return svg.replace(/<[^>]*>/g, '').replace(/&(lt|gt|amp|quot|#39);/g, (_m, e: string) => entities[e]!);
}

type FieldKind = 'string' | 'number' | 'boolean' | 'time';
interface WireFrame {
  refId: string;
  fields: Array<{ name: string; type: FieldKind; values: unknown[] }>;
}

/** The field type the ClickHouse datasource gives a column type. */
function kindOf(type: string): FieldKind {
  const t = type.replace(/^(Nullable|LowCardinality)\(/, '').replace(/^(Nullable|LowCardinality)\(/, '');
  if (t.startsWith('DateTime')) return 'time';
  if (t.startsWith('Bool')) return 'boolean';
  if (/^(U?Int\d+|Float\d+|Decimal)/.test(t)) return 'number';
  return 'string';
}

function fieldValue(kind: FieldKind, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (kind === 'number') return Number(v);
  if (kind === 'time') return Date.parse(`${String(v).replace(' ', 'T').slice(0, 23)}Z`);
  return v;
}

/** The panel's queries for one Call-ID, as Grafana would send them, run in the store: table frames. */
async function panelFrames(store: Store, callId: string, database = DATABASE): Promise<WireFrame[]> {
  const frames: WireFrame[] = [];
  for (const target of ladderPanelTargets(DATASOURCE, database)) {
    const sql = expand(target.rawSql, callId);
    // The Call-ID is in the SQL only percent-encoded, inside the one literal meant for it.
    expect(sql).toContain(`decodeURLComponent('${percentEncode(callId)}')`);
    expect(sql).not.toContain('${');
    const result = await store.client.query({ query: sql, format: 'JSON' });
    const json = await result.json<Record<string, unknown>>();
    const meta = (json as unknown as { meta: Array<{ name: string; type: string }> }).meta;
    const rows = (json as unknown as { data: Array<Record<string, unknown>> }).data;
    frames.push({
      refId: target.refId,
      fields: meta.map((m) => {
        const type = kindOf(m.type);
        return { name: m.name, type, values: rows.map((r) => fieldValue(type, r[m.name])) };
      }),
    });
  }
  return frames;
}

function column(frame: WireFrame | undefined, name: string): unknown[] {
  return frame?.fields.find((f) => f.name === name)?.values ?? [];
}

/** A SIP message as a capture event (parsed by the project's parser), for the hostile call. */
function sipEvent(parser: SipParser, text: string, ms: number, src: string, dst: string): CaptureEvent {
  const payload = Buffer.from(text, 'latin1');
  const parsed = parser.parse(payload, 0, payload.length);
  if (!parsed.ok) throw new Error(`test message does not parse: ${text.slice(0, 40)}`);
  return {
    timestampNs: BigInt(ms) * 1_000_000n,
    ipFamily: 4,
    ipProtocol: 17,
    transport: 'udp',
    srcIp: src,
    dstIp: dst,
    srcPort: 5060,
    dstPort: 5060,
    vlan: null,
    protoType: 1,
    captureId: 7,
    nodeName: 'test',
    correlationId: parsed.message.callId ?? '',
    payload,
    sip: parsed.message,
    retransmission: false,
  };
}

/** An INVITE refused 486, with markup and quotes in its headers and reason phrase. */
function hostileCall(callId: string, ms: number): CaptureEvent[] {
  const parser = new SipParser();
  const head = (first: string) =>
    `${first}\r\nVia: SIP/2.0/UDP 10.9.9.1:5060;branch=z9hG4bK-${ms}\r\n` +
    `From: "<b>eve</b>" <sip:eve@10.9.9.1>;tag=a'b\r\nTo: <sip:bob@10.9.9.2>\r\n` +
    `Call-ID: ${callId}\r\nCSeq: 1 INVITE\r\nUser-Agent: <img src=x onerror="window.pwned=2">\r\n` +
    'Content-Length: 0\r\n\r\n';
  return [
    sipEvent(parser, head('INVITE sip:bob@10.9.9.2 SIP/2.0'), ms, '10.9.9.1', '10.9.9.2'),
    sipEvent(
      parser,
      head('SIP/2.0 486 Busy <script>window.pwned=3</script>'),
      ms + 5,
      '10.9.9.2',
      '10.9.9.1',
    ),
  ];
}

/** The page's side: real react, react-dom and @grafana/data, and the AMD `define` Grafana's loader stands for. */
const HARNESS = `
import * as React from 'react';
import * as ReactDOM from 'react-dom';
import * as JsxRuntime from 'react/jsx-runtime';
import { createRoot } from 'react-dom/client';
import * as GrafanaData from '@grafana/data';

const provided = { react: React, 'react-dom': ReactDOM, 'react/jsx-runtime': JsxRuntime, '@grafana/data': GrafanaData };
const modules = [];
window.define = function define(deps, factory) {
  modules.push(factory(...deps.map((name) => {
    if (!(name in provided)) throw new Error('the test does not provide ' + name);
    return provided[name];
  })));
};
window.define.amd = {};

window.harness = {
  modules: () => modules.length,
  render(id, frames, callId, options) {
    const { createDataFrame, FieldType, LoadingState, getDefaultTimeRange, EventBusSrv } = GrafanaData;
    const series = frames.map((f) =>
      createDataFrame({ refId: f.refId, fields: f.fields.map((x) => ({ name: x.name, type: FieldType[x.type], values: x.values })) }),
    );
    const timeRange = getDefaultTimeRange();
    const props = {
      id: 1,
      data: { state: LoadingState.Done, series, timeRange },
      timeRange,
      timeZone: 'utc',
      options: { showSdp: true, showMedia: true, showLogs: true, maxMessages: 1000, ...options },
      transparent: false,
      width: 1300,
      height: 640,
      fieldConfig: { defaults: {}, overrides: [] },
      renderCounter: 0,
      title: 'Call ladder',
      eventBus: new EventBusSrv(),
      onOptionsChange() {},
      onFieldConfigChange() {},
      replaceVariables: (text) => text.split('\${call_id}').join(callId),
      onChangeTimeRange() {},
    };
    createRoot(document.getElementById(id)).render(React.createElement(modules[0].plugin.panel, props));
  },
};
`;

gate.it(
  'a stored SIPp call renders in Chromium from real DataFrames: arrows equal messages, raw text on click, hostile values escaped',
  async () => {
    const t0 = Date.now();
    // The plugin, built as Grafana loads it (twice: the output must not change between builds).
    const outs = [join(dir, 'plugin-a'), join(dir, 'plugin-b')];
    for (const out of outs) {
      const r = spawnSync(
        process.execPath,
        [join(REPO_ROOT, 'dashboards/ladder-panel/build.mjs'), '--out', out, '--no-typecheck'],
        { encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
    }
    const moduleJs = readFileSync(join(outs[0]!, 'module.js'), 'utf8');
    expect(readFileSync(join(outs[1]!, 'module.js'), 'utf8')).toBe(moduleJs);
    expect(moduleJs).toMatch(
      /^\/\*[^\n]*\*\/\ndefine\(\["@grafana\/data","react","react\/jsx-runtime"\], function/,
    );
    expect(JSON.parse(readFileSync(join(outs[0]!, 'plugin.json'), 'utf8')).id).toBe('callscope-ladder-panel');

    const harness = join(dir, 'harness.js');
    writeFileSync(join(dir, 'harness-entry.js'), HARNESS);
    await build({
      entryPoints: [join(dir, 'harness-entry.js')],
      nodePaths: [join(REPO_ROOT, 'node_modules')],
      bundle: true,
      format: 'iife',
      platform: 'browser',
      outfile: harness,
      define: { 'process.env.NODE_ENV': '"development"' },
      logLevel: 'error',
    });

    // Chromium starts while the call runs (a few seconds saved); closed whatever happens.
    const launching = launchChromium();
    launching.catch(() => {});
    try {
      // A real call, captured and stored as `callscope run` stores it.
      const run = await runSippCalls({
        dir,
        calls: 1,
        rate: 1,
        port: PORT,
        uacIp: '127.0.14.2',
        uasIp: '127.0.14.3',
        uacScenario: 'reinvite',
        uasScenario: 'reinvite-488',
      });
      expect(run.droppedByKernel).toBe(0);
      const store = await openStore({ dataDir: join(dir, 'store') });
      try {
        await ingestFile(run.pcap, { store, database: DATABASE, ttlDays: 0 });
        // A B2BUA call (two legs, each with its own Call-ID, media and a session refresh), generated:
        // SIPp has no B2BUA.
        const b2buaPcap = join(dir, 'b2bua.pcap');
        generateCapture({
          output: b2buaPcap,
          seed: 13,
          vms: 3,
          calls: 1,
          callDurationSec: 1,
          outcomes: { b2bua: 1 },
          sessionRefresh: true,
        });
        await ingestFile(b2buaPcap, { store, database: 'b2bua', ttlDays: 0 });
        const legIds = await (
          await store.client.query({
            query: 'SELECT call_id, edge_call_id FROM b2bua.calls FINAL ORDER BY start',
            format: 'JSONEachRow',
          })
        ).json<{ call_id: string; edge_call_id: string }>();
        expect(legIds).toHaveLength(2);
        const bLeg = legIds.find((l) => l.call_id !== l.edge_call_id)!;
        // Asked for by its second leg, as a person coming from the PBX's side would.
        const b2buaFrames = await panelFrames(store, bLeg.call_id, 'b2bua');
        const b2buaLadder = buildLadder(await ladderInputFromStore(store.client, 'b2bua', bLeg.call_id));
        expect(b2buaLadder.legs).toHaveLength(2);
        expect(b2buaLadder.streams.length).toBeGreaterThanOrEqual(4);
        const ids = await (
          await store.client.query({
            query: `SELECT DISTINCT call_id FROM ${DATABASE}.sip_messages`,
            format: 'JSONEachRow',
          })
        ).json<{ call_id: string }>();
        expect(ids).toHaveLength(1);
        const callId = ids[0]!.call_id;
        const stored = await (
          await store.client.query({
            query: `SELECT count() AS n FROM (SELECT event_id FROM ${DATABASE}.sip_messages
                  WHERE call_id = {cid:String} LIMIT 1 BY event_id)`,
            query_params: { cid: callId },
            format: 'JSONEachRow',
          })
        ).json<{ n: string | number }>();
        const storedCount = Number(stored[0]!.n);
        const tshark = await tsharkSipStat(run.pcap, { decodeAs: [`udp.port==${PORT},sip`] });
        expect(storedCount).toBe(tshark.messages);
        expect(storedCount).toBeGreaterThanOrEqual(9);

        // The hostile call and its near misses, written as the capture path writes events.
        const writer = new StoreWriter(store.client, { database: DATABASE });
        const base = Date.now() - 60_000;
        await writer.write(hostileCall(HOSTILE_CALL_ID, base));
        for (const [i, decoy] of DECOYS.entries())
          await writer.write(hostileCall(decoy, base + 100 * (i + 1)));
        await writer.close();

        const frames = await panelFrames(store, callId);
        // The calls and messages queries read the call's granules through their table's key.
        for (const target of ladderPanelTargets(DATASOURCE, DATABASE).filter(
          (t) => t.refId === 'messages' || t.refId === 'legs',
        )) {
          const plan = await (
            await store.client.query({
              query: `EXPLAIN indexes = 1 ${expand(target.rawSql, callId)}`,
              format: 'TabSeparatedRaw',
            })
          ).text();
          expect(plan, target.refId).toMatch(
            /PrimaryKey\s+Keys:\s+call_id\s+Condition: \(call_id in 1-element set\)/,
          );
        }
        // What the command line draws for the call (`callscope ladder --format svg`), as text.
        const cliSvg = renderSvg(buildLadder(await ladderInputFromStore(store.client, DATABASE, callId)), {
          standalone: false,
        });
        const messages = frames.find((f) => f.refId === 'messages');
        expect(column(messages, 'raw_b64')).toHaveLength(storedCount);
        expect(new Set(column(messages, 'call_id'))).toEqual(new Set([callId]));
        expect(
          column(
            frames.find((f) => f.refId === 'legs'),
            'call_id',
          ),
        ).toEqual([callId]);
        const raws = column(messages, 'raw_b64').map((b) =>
          Buffer.from(String(b), 'base64').toString('latin1'),
        );
        expect(raws[0]).toMatch(/^INVITE sip:/);
        expect(raws.at(-1)).toMatch(/^SIP\/2\.0 200 OK[\s\S]*CSeq: 3 BYE/);

        // The hostile Call-ID, percent-encoded into the SQL: its own two messages, no decoy's.
        const hostileFrames = await panelFrames(store, HOSTILE_CALL_ID);
        const hostile = hostileFrames.find((f) => f.refId === 'messages');
        expect(column(hostile, 'call_id')).toEqual([HOSTILE_CALL_ID, HOSTILE_CALL_ID]);
        for (const decoy of DECOYS)
          expect(
            column(
              (await panelFrames(store, decoy)).find((f) => f.refId === 'messages'),
              'call_id',
            ),
          ).toEqual([decoy, decoy]);
        const unknownFrames = await panelFrames(store, 'nobody@nowhere');
        expect(column(unknownFrames[0], 'call_id')).toEqual([]);
        // Hostile values the store would not hold as such (control characters, markup in every column).
        const nasty = `<img src=x onerror="window.pwned=4">\u0001\u001b[31m'"\\`;
        const hostileCopy: WireFrame[] = hostileFrames
          .filter((f) => f.refId === 'messages')
          .map((f) => ({
            refId: f.refId,
            fields: f.fields.map((x) => ({
              ...x,
              values: ['reason_phrase', 'src_vm', 'method'].includes(x.name)
                ? x.values.map(() => nasty)
                : x.values,
            })),
          }));
        // A media stream and a HEP log line as their queries' columns give them (the SIPp call has neither).
        const one = (name: string, type: FieldKind, value: unknown) => ({ name, type, values: [value] });
        hostileCopy.push(
          {
            refId: 'streams',
            fields: [
              one('call_id', 'string', HOSTILE_CALL_ID),
              one('src_ip', 'string', '10.9.9.1'),
              one('src_port', 'number', 4000),
              one('dst_ip', 'string', '10.9.9.2'),
              one('dst_port', 'number', 5000),
              one('ssrc', 'number', 0xdeadbeef),
              one('codec', 'string', nasty),
              one('packets', 'number', 500),
              one('lost', 'number', 5),
              one('loss_percent', 'number', 1),
              one('max_jitter_ms', 'number', 3.5),
              one('mean_jitter_ms', 'number', 1.25),
              one('mos', 'number', null),
            ],
          },
          {
            refId: 'logs',
            fields: [
              one('time_ms', 'number', base + 2),
              one('correlation_id', 'string', HOSTILE_CALL_ID),
              one('text', 'string', `routing ${nasty}`),
            ],
          },
        );

        const page = join(dir, 'panel.html');
        const moduleFile = join(outs[0]!, 'module.js');
        writeFileSync(
          page,
          '<!DOCTYPE html><html><head><meta charset="utf-8"><title>ladder panel</title></head>' +
            '<body style="margin:0;font-family:sans-serif">' +
            '<div id="call" style="width:1300px;height:640px"></div>' +
            '<div id="hostile" style="width:1300px;height:640px"></div>' +
            '<div id="b2bua" style="width:1300px;height:640px"></div>' +
            '<div id="empty" style="width:1300px;height:40px"></div>' +
            '<div id="unknown" style="width:1300px;height:40px"></div>' +
            `<script src="${pathToFileURL(harness).href}"></script>` +
            `<script src="${pathToFileURL(moduleFile).href}"></script></body></html>`,
        );

        const browser = await launching;
        const tab = await browser.newPage({ viewport: { width: 1300, height: 700 } });
        const problems = pageProblems(tab);
        await tab.goto(pathToFileURL(page).href);
        expect(
          await tab.evaluate(() =>
            (globalThis as unknown as { harness: { modules(): number } }).harness.modules(),
          ),
        ).toBe(1);
        type Harness = { harness: { render(id: string, f: unknown, c: string, o: unknown): void } };
        await tab.evaluate(
          ([f, c]) => (globalThis as unknown as Harness).harness.render('call', f, c as string, {}),
          [frames, callId] as const,
        );
        const arrows = tab.locator('#call g.msg');
        await arrows.first().waitFor();
        expect(await arrows.count()).toBe(storedCount);
        for (const i of [0, storedCount - 1]) {
          await arrows.nth(i).locator('rect.hit').click({ force: true });
          expect(await tab.locator('#call pre.callscope-ladder-raw').textContent()).toBe(raws[i]);
        }
        // The same ladder as the command line's: every header, column, arrow, time and SDP line.
        expect(await tab.locator('#call svg').textContent()).toBe(svgText(cliSvg));
        const artifacts = join(REPO_ROOT, 'test-artifacts');
        mkdirSync(artifacts, { recursive: true });
        await tab.locator('#call').screenshot({ path: join(artifacts, 'ladder-panel.png') });

        // Hostile values: drawn as text, nothing of them runs or becomes an element.
        await tab.evaluate(
          ([f, c]) => (globalThis as unknown as Harness).harness.render('hostile', f, c as string, {}),
          [hostileCopy, HOSTILE_CALL_ID] as const,
        );
        const hostileArrows = tab.locator('#hostile g.msg');
        await hostileArrows.first().waitFor();
        expect(await hostileArrows.count()).toBe(2);
        await hostileArrows.nth(1).locator('rect.hit').click({ force: true });
        const shown = await tab.locator('#hostile pre.callscope-ladder-raw').textContent();
        expect(shown).toContain('486 Busy <script>window.pwned=3</script>');
        expect(shown).toContain(`Call-ID: ${HOSTILE_CALL_ID}`);
        const title = await tab.locator('#hostile svg > title').textContent();
        expect(title).toContain(`Call ${HOSTILE_CALL_ID}`);
        // A leg without a call record is named after its messages' From and To users.
        expect(await tab.locator('#hostile svg > text.leg').textContent()).toMatch(/, eve → bob$/);
        const hostileText = await tab.locator('#hostile svg').textContent();
        expect(hostileText).toContain('<img src=x onerror=');
        expect(hostileText).toContain('A log: routing <img src=x');
        expect(hostileText).toMatch(
          /10\.9\.9\.1:4000 → 10\.9\.9\.2:5000 <img src=x[^\n]* 500 pkts lost 5 \(1\.0%\) jitter 1\.3\/3\.5ms/,
        );
        expect(await tab.locator('#hostile g.stream').count()).toBe(1);
        await tab.locator('#hostile').screenshot({ path: join(artifacts, 'ladder-panel-hostile.png') });
        expect(await tab.locator('#hostile script, #hostile img, #hostile [onerror]').count()).toBe(0);
        expect(await tab.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned)).toBeUndefined();

        // Both legs: the same drawing as the command line's, and a leg's button fades the other leg.
        await tab.evaluate(
          ([f, c]) => (globalThis as unknown as Harness).harness.render('b2bua', f, c as string, {}),
          [b2buaFrames, bLeg.call_id] as const,
        );
        await tab.locator('#b2bua g.msg').first().waitFor();
        expect(await tab.locator('#b2bua g.msg').count()).toBe(b2buaLadder.messages.length);
        expect(await tab.locator('#b2bua g.stream').count()).toBe(b2buaLadder.streams.length);
        expect(await tab.locator('#b2bua svg').textContent()).toBe(
          svgText(renderSvg(b2buaLadder, { standalone: false })),
        );
        await tab.locator('#b2bua .callscope-ladder-legs button[data-leg="1"]').click();
        expect(await tab.locator('#b2bua g.msg.faded').count()).toBe(
          b2buaLadder.messages.filter((m) => m.leg !== 1).length,
        );
        expect(await tab.locator('#b2bua .callscope-ladder-legs a').count()).toBe(1);
        await tab.locator('#b2bua').screenshot({ path: join(artifacts, 'ladder-panel-b2bua.png') });

        // No frames, or an unknown call: one line, no throw.
        await tab.evaluate(() => (globalThis as unknown as Harness).harness.render('empty', [], '', {}));
        await tab.locator('#empty .callscope-ladder-message').waitFor();
        expect(await tab.locator('#empty').textContent()).toMatch(/^No data/);
        await tab.evaluate(
          ([f, c]) => (globalThis as unknown as Harness).harness.render('unknown', f, c as string, {}),
          [unknownFrames, 'nobody@nowhere'] as const,
        );
        await tab.locator('#unknown .callscope-ladder-message').waitFor();
        expect(await tab.locator('#unknown').textContent()).toBe(
          'No SIP message with Call-ID "nobody@nowhere"',
        );
        expect(problems).toEqual([]);
      } finally {
        await store.close();
      }
    } finally {
      await (await launching.catch(() => null))?.close();
    }
    // The repo's suite is near its time budget: this test must stay cheap.
    expect(Date.now() - t0).toBeLessThan(60_000);
  },
  120_000,
);
