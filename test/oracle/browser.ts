/**
 * Headless Chromium for the tests that draw (Debian `chromium`, driven by playwright-core; CONTEXT §4):
 * launched with the flags that keep it off the network, and a page's problems collected the one way
 * every such test asserts them: console errors and warnings, page errors, requests leaving file:.
 */
import { type Browser, chromium, type Page } from 'playwright-core';
import { toolPath } from './tools.js';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: toolPath('chromium')!,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
}

/** The list the page's problems are pushed to, from now on (empty when the page behaved). */
export function pageProblems(tab: Page): string[] {
  const problems: string[] = [];
  tab.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  tab.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  tab.on('request', (r) => {
    if (!r.url().startsWith('file:')) problems.push(`request: ${r.url()}`);
  });
  return problems;
}
