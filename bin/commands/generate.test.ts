import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { UsageError } from '../config.js';
import { generateCommand } from './generate.js';

const dir = tmpDir('callscope-generate-cmd-');
afterAll(() => removeTmpDir(dir));

/** Runs the command with stdout captured (its JSON result is all it prints). */
async function generate(args: string[]): Promise<string> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  try {
    await generateCommand.run(args);
  } finally {
    spy.mockRestore();
  }
  return out;
}

describe('callscope generate --outcomes', () => {
  it('writes the mix it is given, weights and bare names alike', async () => {
    const truthFile = join(dir, 'mix.json');
    const args = [
      '--output',
      join(dir, 'mix.pcap'),
      '--truth',
      truthFile,
      '--calls',
      '6',
      '--no-rtp',
      '--json',
    ];
    const result = JSON.parse(await generate([...args, '--outcomes', 'b2bua=2,proxiedFailover']));
    const truth = JSON.parse(readFileSync(truthFile, 'utf8'));
    const outcomes = truth.calls.map((c: { outcome: string }) => c.outcome).sort();
    // Four b2bua calls (two legs each) and two failovers: 10 Call-IDs.
    expect(outcomes).toEqual([...Array(8).fill('b2bua'), 'proxiedFailover', 'proxiedFailover']);
    expect(result.calls).toBe(10);
  });

  it('"all" draws every outcome; without the flag the original mix is kept', async () => {
    const truthFile = join(dir, 'all.json');
    const base = ['--truth', truthFile, '--calls', '14', '--no-rtp', '--json'];
    await generate([...base, '--output', join(dir, 'all.pcap'), '--outcomes', 'all']);
    const every = JSON.parse(readFileSync(truthFile, 'utf8'));
    expect(new Set(every.calls.map((c: { outcome: string }) => c.outcome)).size).toBe(14);
    await generate([...base, '--output', join(dir, 'default.pcap')]);
    expect(JSON.parse(readFileSync(truthFile, 'utf8')).options.outcomes.answered).toBe(70);
  });

  it('refuses an unknown outcome as a usage error', async () => {
    await expect(generate(['--output', join(dir, 'x.pcap'), '--outcomes', 'answered,ghost'])).rejects.toThrow(
      UsageError,
    );
  });
});
