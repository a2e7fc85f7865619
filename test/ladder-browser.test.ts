/**
 * The HTML ladder in a real browser: headless Chromium (Debian `chromium`) driven by playwright-core.
 * A generated B2BUA call (2 legs, 20 messages with the PBX's session refresh on each leg, 4 media
 * streams) renders with no console error and no request
 * leaving the page, has one arrow per message, shows an arrow's raw message on a click, and its
 * screenshot is kept in test-artifacts/ (git-ignored) for a person to look at.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, expect } from 'vitest';
import { CallAnalysis } from '../analyze/calls/analysis.js';
import { buildLadder } from '../analyze/ladder/build.js';
import { ladderInputFromFile } from '../analyze/ladder/gather.js';
import { renderHtml } from '../analyze/ladder/html.js';
import { EVERY_OUTCOME, generateCapture } from '../capture/generator/generate.js';
import { FileSource } from '../capture/sources.js';
import { drive } from '../core/drive.js';
import { launchChromium, pageProblems } from './oracle/browser.js';
import { needs, REPO_ROOT, removeTmpDir, tmpDir } from './oracle/tools.js';

const gate = needs('chromium');
const dir = tmpDir('callscope-ladder-browser-');
afterAll(() => removeTmpDir(dir));

gate.it(
  'a B2BUA call with media renders with no console error; arrows equal messages; a click shows the raw message',
  async () => {
    const pcap = join(dir, 'b2bua.pcap');
    generateCapture({
      output: pcap,
      seed: 5,
      vms: 6,
      calls: 60,
      callsPerSecond: 20,
      callDurationSec: 2,
      outcomes: EVERY_OUTCOME,
      sessionRefresh: true,
    });
    const analysis = new CallAnalysis({ keepRecords: true });
    await drive(new FileSource(pcap), [analysis.sink]);
    await analysis.finish();
    const leg = analysis.records.find((r) => r.linkedBy !== null && r.outcome === 'answered');
    expect(leg).toBeDefined();
    const ladder = buildLadder(await ladderInputFromFile(pcap, leg!.edgeCallId));
    expect(ladder.legs).toHaveLength(2);
    expect(ladder.messages).toHaveLength(20);
    expect(ladder.streams).toHaveLength(4);
    const page = join(dir, 'ladder.html');
    writeFileSync(page, renderHtml(ladder));

    const browser = await launchChromium();
    try {
      const tab = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const problems = pageProblems(tab);
      await tab.goto(pathToFileURL(page).href);
      const arrows = tab.locator('g.msg');
      expect(await arrows.count()).toBe(ladder.messages.length);
      for (const i of [0, ladder.messages.length - 1]) {
        await arrows.nth(i).locator('rect.hit').click({ force: true });
        expect(await tab.locator('#raw').textContent()).toBe(ladder.messages[i]!.raw);
      }
      // The leg links filter the arrows: leg B's link fades every arrow of leg A.
      await tab.locator('li.leg[data-leg="1"] > a.leg-link').click();
      expect(await tab.locator('g.msg.faded').count()).toBe(
        ladder.messages.filter((m) => m.leg !== 1).length,
      );
      const artifacts = join(REPO_ROOT, 'test-artifacts');
      mkdirSync(artifacts, { recursive: true });
      await tab.locator('li.leg[data-leg="all"], a.leg-link[data-leg="all"]').first().click();
      await tab.screenshot({ path: join(artifacts, 'ladder-b2bua.png'), fullPage: true });
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  },
  120_000,
);
