import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs, tmpDir } from './oracle/tools.js';

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

  it('a reader that goes away (`| head`) ends the output quietly: exit 0, no stack', () => {
    // bash's PIPESTATUS gives callscope's own status, not head's.
    const r = spawnSync(
      'bash',
      [
        '-c',
        `"${process.execPath}" "${cli}" analyze "${sample}" --json | head -c 10 >/dev/null; exit \${PIPESTATUS[0]}`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.stderr).not.toMatch(/EPIPE|Error/);
    expect(r.status).toBe(0);
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

describe('callscope calls and kpis', () => {
  const data = () => join(dir, 'calls-store');
  beforeAll(() => {
    const r = run(['run', '--pcap', sample, '--data-dir', data(), '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).calls).toMatchObject({
      attempts: 40,
      computed: 40,
      written: 40,
      error: null,
    });
  }, 120_000);

  const ISSUE_FIELDS = [
    'callId',
    'start',
    'answer',
    'end',
    'outcome',
    'finalStatus',
    'pddMs',
    'durationSec',
    'billsec',
    'from',
    'to',
    'callerIp',
    'calleeIp',
    'srcVm',
    'dstVm',
    'endedBy',
    'reason',
    'codecs',
    'hops',
    'branches',
    'linkedCallIds',
    'streams',
  ];

  it('calls --json: one object per call, with every field the NOC asked for, the same from the store and the file', () => {
    const stored = run(['calls', '--data-dir', data(), '--json', '--limit', '0']);
    expect(stored.status, stored.stderr).toBe(0);
    const calls = JSON.parse(stored.stdout) as Array<Record<string, unknown>>;
    expect(calls).toHaveLength(40);
    for (const c of calls) for (const k of ISSUE_FIELDS) expect(c, k).toHaveProperty(k);
    const direct = run(['calls', '--pcap', sample, '--json', '--limit', '0']);
    expect(direct.status, direct.stderr).toBe(0);
    const byId = (list: Array<Record<string, unknown>>) =>
      Object.fromEntries(list.map((c) => [String(c.callId), c]));
    expect(byId(JSON.parse(direct.stdout))).toEqual(byId(calls));
  });

  it('calls filters: --failed, --outcome, --call-id, --from, --csv', () => {
    const failed = JSON.parse(run(['calls', '--data-dir', data(), '--json', '--failed']).stdout);
    expect(failed.length).toBeGreaterThan(0);
    for (const c of failed) expect(['failed', 'noAnswer']).toContain(c.outcome);
    const busy = JSON.parse(run(['calls', '--data-dir', data(), '--json', '--outcome', 'busy']).stdout);
    expect(busy.map((c: { finalStatus: number }) => c.finalStatus)).toEqual(busy.map(() => 486));
    const one = JSON.parse(
      run(['calls', '--data-dir', data(), '--json', '--call-id', busy[0].callId]).stdout,
    );
    expect(one.map((c: { callId: string }) => c.callId)).toEqual([busy[0].callId]);
    const from = JSON.parse(run(['calls', '--data-dir', data(), '--json', '--from', busy[0].from]).stdout);
    expect(from.every((c: { from: string }) => c.from === busy[0].from)).toBe(true);
    const csv = run(['calls', '--data-dir', data(), '--csv', '--outcome', 'busy']);
    expect(csv.status, csv.stderr).toBe(0);
    const rows = csv.stdout.trim().split('\r\n');
    expect(rows[0]).toMatch(/^callId,start,answer,end,outcome,finalStatus/);
    expect(rows).toHaveLength(busy.length + 1);
    const table = run(['calls', '--data-dir', data(), '--failed']);
    expect(table.stdout).toMatch(/^START \(UTC\)/);
    const bad = run(['calls', '--data-dir', data(), '--outcome', 'lost']);
    expect(bad.status).toBe(64);
  });

  it('kpis: the summary equals analyze --json, and splits by peer, hour and destination', () => {
    const analyzed = JSON.parse(run(['analyze', sample, '--json']).stdout).calls;
    const kpis = run(['kpis', '--data-dir', data(), '--json']);
    expect(kpis.status, kpis.stderr).toBe(0);
    expect(JSON.parse(kpis.stdout)).toEqual(analyzed);
    const byPeer = JSON.parse(run(['kpis', '--data-dir', data(), '--json', '--by', 'peer']).stdout);
    const outs = byPeer.filter((g: { direction: string }) => g.direction === 'out');
    expect(outs.reduce((n: number, g: { attempts: number }) => n + g.attempts, 0)).toBe(analyzed.attempts);
    const byHour = JSON.parse(run(['kpis', '--data-dir', data(), '--json', '--by', 'hour']).stdout);
    expect(byHour.reduce((n: number, g: { attempts: number }) => n + g.attempts, 0)).toBe(analyzed.attempts);
    expect(run(['kpis', '--data-dir', data(), '--by', 'destination']).status).toBe(0);
    expect(run(['kpis', '--data-dir', data(), '--by', 'planet']).status).toBe(64);
  });

  it('calls --rebuild computes a run again, and changes nothing when nothing changed', () => {
    const id = JSON.parse(
      run(['run', '--pcap', sample, '--data-dir', join(dir, 'calls-store-2'), '--json']).stdout,
    ).runId;
    const r = run(['calls', '--data-dir', join(dir, 'calls-store-2'), '--rebuild', '--run', id, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/40 calls computed, 0 written, 40 unchanged/);
    expect(run(['calls', '--data-dir', data(), '--rebuild']).status).toBe(64);
  });

  it('the same capture run again into the same store: its calls belong to the latest run, as its messages', () => {
    const store = join(dir, 'calls-store-3');
    for (let i = 0; i < 2; i++) {
      const r = run(['run', '--pcap', sample, '--data-dir', store, '--json']);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).calls).toMatchObject({ attempts: 40, computed: 40, written: 40 });
    }
    const stats = run(['stats', '--data-dir', store, '--json']);
    expect(stats.status, stats.stderr).toBe(0);
    expect(JSON.parse(stats.stdout).calls).toMatchObject({ attempts: 40, answered: 24 });
  }, 120_000);

  it('ladder: the store draws the same ladder as the capture, in every format; an unknown Call-ID exits 1 in one line', () => {
    const calls = JSON.parse(run(['calls', '--pcap', sample, '--json', '--limit', '0']).stdout) as Array<{
      callId: string;
      outcome: string;
    }>;
    const answered = calls.find((c) => c.outcome === 'answered')!;
    const fromFile = run(['ladder', '--pcap', sample, '--call-id', answered.callId, '--json']);
    expect(fromFile.status, fromFile.stderr).toBe(0);
    const fromStore = run(['ladder', answered.callId, '--data-dir', data(), '--format', 'json']);
    expect(fromStore.status, fromStore.stderr).toBe(0);
    const shape = (text: string) => {
      const l = JSON.parse(text);
      return {
        endpoints: l.endpoints,
        legs: l.legs,
        streams: l.streams,
        messages: l.messages.map((m: Record<string, unknown>) => ({ ...m, raw: undefined })),
      };
    };
    expect(shape(fromStore.stdout)).toEqual(shape(fromFile.stdout));
    expect(JSON.parse(fromFile.stdout).messages.length).toBeGreaterThanOrEqual(6);
    for (const format of ['text', 'svg', 'html', 'mermaid']) {
      const out = join(dir, `ladder.${format}`);
      const r = run(['ladder', answered.callId, '--data-dir', data(), '--format', format, '-o', out]);
      expect(r.status, r.stderr).toBe(0);
      expect(readFileSync(out, 'utf8').length).toBeGreaterThan(200);
    }
    for (const args of [
      ['--data-dir', data()],
      ['--pcap', sample],
    ]) {
      const unknown = run(['ladder', 'no-such-call@nowhere', ...args]);
      expect(unknown.status).toBe(1);
      expect(unknown.stderr.trim().split('\n')).toEqual([
        'callscope: no call with Call-ID "no-such-call@nowhere"',
      ]);
    }
  }, 120_000);
});

describe('callscope CLI on a damaged capture', () => {
  it('keeps the packets before the damage, logs structured warnings with file and offset, exits 2 for the cut end', () => {
    const damaged = join(dir, 'damaged.pcap');
    const whole = readFileSync(sample);
    const cut = Buffer.concat([
      whole.subarray(0, 200_000),
      Buffer.alloc(37, 0xff),
      whole.subarray(200_000, 200_050),
    ]);
    writeFileSync(damaged, cut);
    const r = run(['analyze', damaged, '--json', '--log-format', 'json']);
    // The file ends inside a record: reported as tshark reports it, exit 2, the summary still printed.
    expect(r.status, r.stderr).toBe(2);
    const s = JSON.parse(r.stdout);
    expect(s.packets).toBeGreaterThan(500);
    expect(s.malformedPackets).toBeGreaterThanOrEqual(1);
    expect(s.decode.truncatedRecords).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines.at(-1)).toMatch(
      /^callscope: .*damaged\.pcap appears to have been cut short in the middle of a packet/,
    );
    const logs = lines.slice(0, -1).map((l) => JSON.parse(l));
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.every((l) => l.level === 'warn' && l.file === damaged && typeof l.msg === 'string')).toBe(
      true,
    );
    expect(logs.some((l) => /byte offset \d+/.test(l.msg))).toBe(true);
  });
});

describe('callscope CLI: help and operational errors', () => {
  /** The exit codes the README documents, from its "Exit codes" list. */
  function readmeExitCodes(): string[] {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('Exit codes'));
    return [...section.slice(0, section.indexOf('\n\n')).matchAll(/^\s*[-|]?\s*`?(\d+)`?\s/gm)].map(
      (m) => m[1],
    );
  }

  it('each command has its own --help, and every help lists every exit code the README documents', () => {
    const codes = readmeExitCodes();
    expect(codes).toEqual(['0', '1', '2', '64', '65', '66', '69', '75']);
    for (const command of ['analyze', 'run', 'stats', 'store', 'capture', 'ingest', 'generate', 'alerts']) {
      const r = run([command, '--help']);
      expect(r.status, command).toBe(0);
      expect(r.stdout, command).toMatch(new RegExp(`^Usage: callscope ${command}\\b`));
      for (const code of codes)
        expect(r.stdout, `${command} --help, exit ${code}`).toMatch(new RegExp(`^  ${code} `, 'm'));
      expect(run(['help', command]).stdout).toBe(r.stdout);
    }
    const global = run(['--help']).stdout;
    for (const code of codes) expect(global).toMatch(new RegExp(`^  ${code} `, 'm'));
  });

  it('alerts --check: the shipped rules pass; a typo is one line naming the rule and the field, exit 65', () => {
    const ok = run(['alerts', '--check']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^11 rules OK/);
    const bad = join(dir, 'rules-typo.yaml');
    writeFileSync(
      bad,
      'rules:\n  - name: failed\n    kpi: failed-call-ratio\n    windw: 5m\n    above: 0.2\n',
    );
    const r = run(['alerts', '--check', bad]);
    expect(r.status).toBe(65);
    expect(r.stderr).toBe(
      `callscope: ${bad}: rule "failed": windw: unknown field (did you mean "window"?)\n`,
    );
    // The same file given to a service stops it before it starts.
    const service = run(['run', '--interface', 'lo', '--alert-rules', bad, '--data-dir', join(dir, 'never')]);
    expect(service.status).toBe(65);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('stats names a data directory without a store (66) and creates nothing', () => {
    const missing = join(dir, 'no-such-store');
    const r = run(['stats', '--data-dir', missing]);
    expect(r.status).toBe(66);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no callscope store at .*no-such-store.*--data-dir/);
    expect(existsSync(missing)).toBe(false);
  });

  it('stats names an unknown run (66) in one line, without a stack', () => {
    const data = join(dir, 'store-unknown-run');
    expect(run(['run', '--pcap', sample, '--data-dir', data]).status).toBe(0);
    const r = run(['stats', '--data-dir', data, '--run', 'nope']);
    expect(r.status).toBe(66);
    expect(r.stderr).toBe('callscope: no capture run "nope" in callscope.capture_runs\n');
  });

  it('a data directory in use by a running store (75) and a port in use (75) name their remedy', async () => {
    const data = join(dir, 'store-held');
    expect(run(['run', '--pcap', sample, '--data-dir', data]).status).toBe(0);
    const held = spawn(process.execPath, [cli, 'store', '--data-dir', data, '--port', '0', '--json']);
    try {
      const url = await new Promise<string>((resolve, reject) => {
        held.stdout.on('data', (chunk: Buffer) => resolve(JSON.parse(chunk.toString()).url));
        held.on('exit', (code) => reject(new Error(`store exited ${code}`)));
      });
      const locked = run(['stats', '--data-dir', data]);
      expect(locked.status).toBe(75);
      expect(locked.stderr).toContain(`--clickhouse ${url}`);
      expect(locked.stderr.trim().split('\n')).toHaveLength(1);
      // The running store serves callscope's database by default: stats through it works.
      const through = run(['stats', '--clickhouse', url, '--json']);
      expect(through.status, through.stderr).toBe(0);
      expect(JSON.parse(through.stdout).sip.messages).toBe(268);
      const port = new URL(url).port;
      const busy = run(['store', '--data-dir', join(dir, 'other-store'), '--port', port]);
      expect(busy.status).toBe(75);
      expect(busy.stderr).toMatch(new RegExp(`port ${port} .*already in use.*--port`));
    } finally {
      held.kill('SIGTERM');
      await new Promise((resolve) => held.once('exit', resolve));
    }
  });

  it('a file cut short is summarised and exits 2, as tshark does', () => {
    const cut = join(dir, 'cut.pcap');
    writeFileSync(cut, readFileSync(sample).subarray(0, 100_000));
    const r = run(['analyze', cut]);
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('FILE CUT SHORT');
    expect(r.stderr).toMatch(/cut\.pcap appears to have been cut short in the middle of a packet/);
  });

  needs('tshark').it('tshark also exits 2 on that file', () => {
    const cut = join(dir, 'cut-tshark.pcap');
    writeFileSync(cut, readFileSync(sample).subarray(0, 100_000));
    const tshark = spawnSync('tshark', ['-r', cut, '-q'], { encoding: 'utf8' });
    expect(tshark.status).toBe(2);
    expect(tshark.stderr).toMatch(/cut short in the middle of a packet/);
  });
});

describe('the commands as the README writes them', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  /** Command lines of the README's sh blocks (continuation lines, indented, left out). */
  const lines = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => m[1].split('\n'))
    .filter((l) => l !== '' && !l.startsWith(' '));

  it('starts every command with npx (or npm), so that it runs from a fresh clone without a global install', () => {
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) expect(line, line).toMatch(/^(sudo )?(npx (callscope|ovs-mirror)\b|npm )/);
  });

  it('names only commands that exist, each with its own help', () => {
    for (const line of lines) {
      const m = /npx (callscope|ovs-mirror) ([a-z-]+)/.exec(line);
      if (m === null || m[2].startsWith('-')) continue;
      const bin = join(root, 'dist/bin', `${m[1]}.js`);
      const r = spawnSync(process.execPath, [bin, m[2], '--help'], { encoding: 'utf8' });
      expect(r.status, `${line}\n${r.stderr}`).toBe(0);
      expect(r.stdout, line).toMatch(new RegExp(`${m[1]} ${m[2]}\\b`));
    }
  });

  it("npx runs both of the project's commands from its directory", () => {
    const version = spawnSync('npx', ['callscope', '--version'], { cwd: root, encoding: 'utf8' });
    expect(version.stdout.trim(), version.stderr).toMatch(/^\d+\.\d+\.\d+$/);
    const mirror = spawnSync('npx', ['ovs-mirror', 'help'], { cwd: root, encoding: 'utf8' });
    expect(mirror.status, mirror.stderr).toBe(0);
    expect(mirror.stdout).toMatch(/^ovs-mirror/);
  }, 120_000);

  it('killing the npx of a background `callscope store` stops the server it started', async () => {
    const data = join(dir, 'npx-store');
    const npx = spawn('npx', ['callscope', 'store', '--data-dir', data, '--port', '0', '--json'], {
      cwd: root,
    });
    const started = await new Promise<{ url: string; pid: number }>((resolve, reject) => {
      let out = '';
      npx.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolve(JSON.parse(out));
      });
      npx.on('exit', (code) => reject(new Error(`npx exited ${code}`)));
    });
    expect((await fetch(`${started.url}/ping`)).ok).toBe(true);
    // The PID a shell's `&` reports is npx's (npm exec); the server is its grandchild.
    expect(started.pid).not.toBe(npx.pid);
    npx.kill('SIGTERM');
    const deadline = Date.now() + 10_000;
    let serving = true;
    while (serving && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      serving = await fetch(`${started.url}/ping`).then(
        () => true,
        () => false,
      );
    }
    expect(serving).toBe(false);
    const gone = () => {
      try {
        process.kill(started.pid, 0);
        return false;
      } catch {
        return true;
      }
    };
    while (!gone() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect(gone()).toBe(true);
  }, 120_000);
});

describe('long-running commands', () => {
  /** Starts a command, collects its stderr lines, and stops it with SIGTERM once `done` sees enough. */
  async function watch(args: string[], done: (lines: Array<Record<string, unknown>>) => boolean) {
    const child = spawn(process.execPath, [cli, ...args], { cwd: dir });
    const lines: Array<Record<string, unknown>> = [];
    let rest = '';
    child.stderr.on('data', (chunk: Buffer) => {
      rest += chunk.toString();
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      for (const p of parts) if (p.startsWith('{')) lines.push(JSON.parse(p));
    });
    const deadline = Date.now() + 20_000;
    while (!done(lines) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { lines, code };
  }

  it('ingest and store log a statistics line every --stats-interval at their default level', async () => {
    const statistics = (lines: Array<Record<string, unknown>>) => lines.filter((l) => l.msg === 'statistics');
    const ingest = await watch(
      [
        'ingest',
        '--hep-listen',
        '127.0.0.1:0',
        '--data-dir',
        join(dir, 'stats-ingest'),
        '--stats-interval',
        '1',
        '--log-format',
        'json',
      ],
      (lines) => statistics(lines).length >= 2,
    );
    expect(ingest.code).toBe(0);
    const line = statistics(ingest.lines)[0]!;
    expect(line.level).toBe('info');
    expect(line).toMatchObject({ frames: 0, 'store.accepted': 0, tcpOpen: 0 });
    const store = await watch(
      [
        'store',
        '--data-dir',
        join(dir, 'stats-store'),
        '--port',
        '0',
        '--stats-interval',
        '1',
        '--log-format',
        'json',
      ],
      (lines) => statistics(lines).length >= 1,
    );
    expect(store.code).toBe(0);
    expect(statistics(store.lines)[0]).toMatchObject({ level: 'info', requests: expect.any(Number) });
  }, 60_000);
});
