/**
 * The gate (tools.ts `needs`): what it finds missing, what it registers outside CI (a visible skip) and
 * under CI (a failing test naming what .ci/run should have installed), and that the executables it
 * knows are the ones .ci/run installs. The registration is checked end to end: a child vitest runs
 * gate-fixture.ts with CI and CALLSCOPE_TEST_MISSING set.
 */
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  CI_PACKAGES,
  Gate,
  type Missing,
  REPO_ROOT,
  removeTmpDir,
  requirement,
  SHARED_CAPTURES,
  SHARED_PCAPS,
  tmpDir,
  tool,
  toolPath,
  underCi,
} from './tools.js';

const dir = tmpDir('callscope-gate-');
afterAll(() => removeTmpDir(dir));

const saved = { CI: process.env.CI, PATH: process.env.PATH, MISSING: process.env.CALLSCOPE_TEST_MISSING };
afterEach(() => {
  for (const [key, value] of [
    ['CI', saved.CI],
    ['PATH', saved.PATH],
    ['CALLSCOPE_TEST_MISSING', saved.MISSING],
  ] as const) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

const missing = (name: string, reason: string, skipInCi = false): Missing => ({
  requirement: requirement(name, `install ${name}`, () => reason, { skipInCi }),
  reason,
});

describe('requirements', () => {
  it('probe once, and count as missing when listed in CALLSCOPE_TEST_MISSING', () => {
    let probes = 0;
    const r = requirement('thing', 'apt-get install thing', () => {
      probes++;
      return null;
    });
    expect([r.missing(), r.missing(), probes]).toEqual([null, null, 1]);
    process.env.CALLSCOPE_TEST_MISSING = 'other, thing';
    expect(r.missing()).toBe('listed in CALLSCOPE_TEST_MISSING');
    expect(requirement('x', 'y', () => 'gone').missing()).toBe('gone');
  });

  it('tool(): an executable on PATH, and only one that .ci/run installs', () => {
    const bin = join(dir, 'bin');
    writeFileSync(join(dir, 'not-executable'), '');
    process.env.PATH = dir;
    expect(tool('tshark').missing()).toBe('not on PATH');
    expect(toolPath('not-executable')).toBeNull();
    writeFileSync(bin, '#!/bin/sh\n');
    chmodSync(bin, 0o755);
    expect(toolPath('bin')).toBe(bin);
    expect(() => tool('bin')).toThrow(/\.ci\/run installs nothing that provides it/);
    expect(tool('tshark').provider).toBe('apt-get install tshark');
    expect(tool('sipp').provider).toBe('apt-get install sip-tester');
  });

  it('every package the gate names is one .ci/run installs', () => {
    const script = readFileSync(join(REPO_ROOT, '.ci', 'run'), 'utf8');
    const install = script
      .replace(/\\\n/g, ' ')
      .split('\n')
      .filter((l) => /apt-get install/.test(l))
      .flatMap((l) => l.split(/\s+/));
    for (const [name, pkg] of Object.entries(CI_PACKAGES)) expect(install, name).toContain(pkg);
  });

  it('underCi: CI=true or CI=1', () => {
    for (const [value, ci] of [
      ['true', true],
      ['1', true],
      ['TRUE', true],
      ['false', false],
      ['0', false],
      ['', false],
    ] as const) {
      process.env.CI = value;
      expect(underCi(), value).toBe(ci);
    }
    delete process.env.CI;
    expect(underCi()).toBe(false);
  });
});

describe('Gate', () => {
  it('with nothing missing: runs, marks nothing', () => {
    const gate = new Gate([], true);
    expect([gate.skip, gate.fails, gate.reason]).toEqual([false, false, '']);
    expect(gate.markMissing()).toBe(false);
  });

  it('outside CI a missing tool is a skip, under CI a failure saying what .ci/run should install', () => {
    const local = new Gate([missing('tshark', 'not on PATH')], false);
    expect([local.skip, local.fails]).toEqual([true, false]);
    expect(local.title).toBe('needs tshark (not on PATH)');
    expect(local.reason).toBe('tshark: not on PATH');
    const ci = new Gate([missing('tshark', 'not on PATH'), missing('root', 'running as uid 1000')], true);
    expect([ci.skip, ci.fails]).toEqual([true, true]);
    expect(ci.title).toBe('needs tshark (not on PATH), root (running as uid 1000)');
    expect(ci.ciMessage).toBe(
      'CI is set and tshark is missing (not on PATH); root is missing (running as uid 1000). ' +
        '.ci/run should have provided it: tshark: install tshark; root: install root',
    );
  });

  it('the shared captures stay a skip under CI, unless something CI provides is missing too', () => {
    const shared = missing('shared-pcaps', 'absent', true);
    expect(new Gate([shared], true).fails).toBe(false);
    const both = new Gate([shared, missing('tshark', 'not on PATH')], true);
    expect(both.fails).toBe(true);
    expect(both.ciMessage).not.toContain('shared-pcaps');
    expect(SHARED_CAPTURES.skipInCi).toBe(true);
    expect(tool('tshark').skipInCi).toBe(false);
  });
});

interface Outcome {
  code: number | null;
  tests: { name: string; status: string; message: string }[];
}

/** gate-fixture.ts in a child vitest with `env` added, its results read from the JSON reporter. */
function runFixture(env: Record<string, string>, tag: string): Promise<Outcome> {
  const config = join(dir, 'vitest.config.mjs');
  writeFileSync(config, "export default { test: { include: ['test/oracle/gate-fixture.ts'] } };\n");
  const out = join(dir, `${tag}.json`);
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('VITEST') && k !== 'CI') childEnv[k] = v;
  const vitest = join(REPO_ROOT, 'node_modules', 'vitest', 'vitest.mjs');
  const args = [
    vitest,
    'run',
    '--root',
    REPO_ROOT,
    '--config',
    config,
    '--reporter=json',
    `--outputFile=${out}`,
  ];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: REPO_ROOT, env: { ...childEnv, ...env } }, (error) => {
      const report = JSON.parse(readFileSync(out, 'utf8')) as {
        testResults: {
          assertionResults: { fullName: string; status: string; failureMessages: string[] }[];
        }[];
      };
      resolve({
        code: error ? ((error as { code?: number }).code ?? null) : 0,
        tests: report.testResults
          .flatMap((f) => f.assertionResults)
          .map((a) => ({ name: a.fullName, status: a.status, message: a.failureMessages[0] ?? '' })),
      });
    });
  });
}

describe('what the gate registers, seen from a child vitest', () => {
  /** The fixture's shared-captures test: run where ../shared/pcaps is, a visible skip where it is not. */
  const shared: [string, string][] =
    SHARED_PCAPS === null
      ? [
          [expect.stringMatching(/^needs shared-pcaps/) as unknown as string, 'skipped'],
          ['runs with the shared captures', 'skipped'],
        ]
      : [['runs with the shared captures', 'passed']];

  it('CI=true and tshark missing: the run fails, naming tshark and its package', async () => {
    const r = await runFixture({ CI: 'true', CALLSCOPE_TEST_MISSING: 'tshark' }, 'ci-tshark');
    expect(r.code).toBe(1);
    expect(r.tests.map((t) => [t.name, t.status])).toEqual([
      ['needs tshark (listed in CALLSCOPE_TEST_MISSING)', 'failed'],
      ['gated on tshark runs with tshark', 'skipped'],
      ...shared,
    ]);
    expect(r.tests[0].message).toMatch(/^Error: CI is set and tshark is missing .*apt-get install tshark/);
  });

  it('no CI and tshark missing: a visible skip, the run passes', async () => {
    const r = await runFixture({ CALLSCOPE_TEST_MISSING: 'tshark' }, 'local-tshark');
    expect(r.code).toBe(0);
    expect(r.tests.map((t) => [t.name, t.status])).toEqual([
      ['needs tshark (listed in CALLSCOPE_TEST_MISSING)', 'skipped'],
      ['gated on tshark runs with tshark', 'skipped'],
      ...shared,
    ]);
  });

  it('CI=1 and ../shared/pcaps missing: still a visible skip, the run passes', async () => {
    const r = await runFixture({ CI: '1', CALLSCOPE_TEST_MISSING: 'shared-pcaps' }, 'ci-shared');
    expect(r.code).toBe(0);
    expect(r.tests.map((t) => t.status)).toEqual(['passed', 'skipped', 'skipped']);
    expect(r.tests[1].name).toMatch(/^needs shared-pcaps/);
  });
});
