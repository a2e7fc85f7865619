import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir } from './oracle/tools.js';

const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'dist/bin/callscope.js');
const sample = join(root, 'capture/sample/calls.pcap');
let dir: string;

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
}

beforeAll(() => {
  if (!existsSync(cli)) spawnSync('npx', ['tsc', '-p', root], { cwd: root, stdio: 'inherit' });
  dir = tmpDir('callscope-cli-');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('callscope CLI', () => {
  it('analyze --json prints the documented summary object', () => {
    const r = run(['analyze', sample, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.file).toBe(sample);
    expect(typeof s.packets).toBe('number');
    expect(typeof s.malformedPackets).toBe('number');
    expect(s.sip.messages).toBeGreaterThan(0);
    expect(typeof s.sip.retransmissions).toBe('number');
    expect(s.sip.requests.INVITE).toBeGreaterThan(0);
    expect(s.sip.responses['200']).toBeGreaterThan(0);
    // The media issue's required per-stream keys, with their types.
    expect(s.rtp.streams.length).toBeGreaterThan(0);
    for (const stream of s.rtp.streams) {
      for (const k of ['src', 'dst', 'codec', 'callId']) expect(typeof stream[k]).toBe('string');
      for (const k of [
        'srcPort',
        'dstPort',
        'ssrc',
        'payloadType',
        'packets',
        'lost',
        'minDeltaMs',
        'meanDeltaMs',
        'maxDeltaMs',
        'minJitterMs',
        'meanJitterMs',
        'maxJitterMs',
        'mos',
      ]) {
        expect(typeof stream[k]).toBe('number');
      }
    }
  });

  it('analyze without --json prints a readable summary', () => {
    const r = run(['analyze', sample]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SIP\s+[\d,]+ messages/);
    expect(r.stdout).toMatch(/INVITE/);
    expect(r.stdout).toMatch(/RTP\s+48 streams \(48 from SDP, 0 by heuristic\)/);
    expect(r.stdout).toMatch(/worst streams/);
  });

  it('exits 2 naming the file and byte offset for a file that is not a capture', () => {
    const bad = join(dir, 'not-a-capture.pcap');
    writeFileSync(bad, 'this is not a capture file at all');
    const r = run(['analyze', bad]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(bad);
    expect(r.stderr).toMatch(/byte offset 0/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('exits 2 for a missing file', () => {
    const r = run(['analyze', join(dir, 'missing.pcap')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('missing.pcap');
  });

  it('exits 64 on usage errors and 0 for --help / --version', () => {
    expect(run(['analyze']).status).toBe(64);
    expect(run(['frobnicate']).status).toBe(64);
    expect(run(['analyze', sample, '--bogus']).status).toBe(64);
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('callscope analyze');
    expect(run(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('VM attribution: 69 when --ovs-db does not answer, 64 for a bad --vm-map, a map attributes run events', () => {
    const missing = run(['run', '--pcap', sample, '--ovs-db', `unix:${join(dir, 'no-db.sock')}`]);
    expect(missing.status, missing.stderr).toBe(69);
    expect(missing.stderr).toContain('--ovs-db');
    const badMap = join(dir, 'bad-map.json');
    writeFileSync(badMap, '[{"mac": "not a mac", "id": "1"}]');
    const bad = run(['run', '--pcap', sample, '--vm-map', badMap]);
    expect(bad.status).toBe(64);
    expect(bad.stderr).toContain('bad-map.json');
    expect(run(['run', '--pcap', sample, '--vm-map', badMap, '--ovs-db', 'unix:/x']).status).toBe(64);
    // The sample's generator VMs have MACs 02:00:00:00:00:0N: name two of them.
    const map = join(dir, 'vms.json');
    writeFileSync(
      map,
      JSON.stringify([
        { mac: '02:00:00:00:00:01', id: '101', name: 'pbx' },
        { mac: '02:00:00:00:00:02', id: '102' },
      ]),
    );
    const ok = run(['run', '--pcap', sample, '--vm-map', map, '--data-dir', join(dir, 'vm-store'), '--json']);
    expect(ok.status, ok.stderr).toBe(0);
    const out = JSON.parse(ok.stdout);
    expect(out.vms.source).toContain('vms.json');
    expect(out.vms.attributedByMac).toBeGreaterThan(0);
    // analyze with the same map: the per-VM load, in JSON and on the terminal.
    const analyzed = JSON.parse(run(['analyze', sample, '--vm-map', map, '--json']).stdout);
    expect(analyzed.vms.map((v: { vm: string }) => v.vm)).toEqual(['101', '102']);
    expect(run(['analyze', sample, '--vm-map', map]).stdout).toMatch(/VMs +SIP sent/);
  });

  it('generate writes a capture that analyze reads back with the generated counts', () => {
    const out = join(dir, 'gen.pcap');
    const truthPath = join(dir, 'gen.json');
    const g = run([
      'generate',
      '--output',
      out,
      '--calls',
      '12',
      '--rate',
      '6',
      '--duration',
      '1',
      '--truth',
      truthPath,
      '--json',
    ]);
    expect(g.status, g.stderr).toBe(0);
    const generated = JSON.parse(g.stdout);
    const a = JSON.parse(run(['analyze', out, '--json']).stdout);
    expect(a.packets).toBe(generated.packets);
    expect(a.sip.messages).toBe(generated.sip.messages);
    expect(a.sip.requests).toEqual(generated.sip.requests);
  });

  it('takes settings from the environment and a config file', () => {
    const cfg = join(dir, 'cfg.json');
    writeFileSync(cfg, JSON.stringify({ logLevel: 'nonsense' }));
    expect(run(['analyze', sample, '--config', cfg]).status).toBe(64);
    expect(run(['analyze', sample], { CALLSCOPE_LOG_LEVEL: 'nonsense' }).status).toBe(64);
    expect(run(['analyze', sample, '--log-level', 'error'], { CALLSCOPE_LOG_LEVEL: 'nonsense' }).status).toBe(
      0,
    );
  });
});

describe('callscope CLI on a damaged capture', () => {
  it('keeps the packets before the damage, exits 0 and logs a structured warning with file and offset', () => {
    const damaged = join(dir, 'damaged.pcap');
    const whole = readFileSync(sample);
    const cut = Buffer.concat([
      whole.subarray(0, 200_000),
      Buffer.alloc(37, 0xff),
      whole.subarray(200_000, 200_050),
    ]);
    writeFileSync(damaged, cut);
    const r = run(['analyze', damaged, '--json', '--log-format', 'json']);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.packets).toBeGreaterThan(500);
    expect(s.malformedPackets).toBeGreaterThanOrEqual(1);
    const logs = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.every((l) => l.level === 'warn' && l.file === damaged && typeof l.msg === 'string')).toBe(
      true,
    );
    expect(logs.some((l) => /byte offset \d+/.test(l.msg))).toBe(true);
  });
});
