/**
 * A real Prometheus (Debian's, a plain process on loopback, scraping every second) reads callscope's
 * /metrics (--metrics-listen, ingest/metrics/), and what it stores equals what callscope stored:
 *
 * (a) `callscope run --interface` capturing real SIPp calls on a veth between two network namespaces
 *     made here (UAC in one, UAS, the capture and Prometheus in the other): SIPp's answers (200, 486 at
 *     random, 503) give several outcomes, SIPp's own counts give the expected calls;
 * (b) `callscope ingest --hep-listen` fed by `callscope capture --pcap --hep-to tcp:...` on loopback.
 *
 * Each time `sum by (outcome) (callscope_calls_total)` from Prometheus' HTTP API equals the store's
 * settled edge calls (`SELECT outcome, count() FROM calls FINAL WHERE is_edge AND NOT open`), taken
 * once both are stable and Prometheus has scraped since; SIP events counted equal SIP messages stored.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  built,
  NETNS,
  needs,
  PCAP_PACKAGE,
  REPO_ROOT,
  ROOT,
  removeTmpDir,
  SIPP_SCENARIO_DIR,
  tmpDir,
} from './oracle/tools.js';

const cli = join(REPO_ROOT, 'dist', 'bin', 'callscope.js');
const SAMPLE = join(REPO_ROOT, 'capture', 'sample', 'calls.pcap');
const run = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A process of ours: its output kept, stopped by its PID. */
interface Proc {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
  exited: boolean;
}

/** Runs `command` (inside namespace `ns` when given: `ip netns exec` execs it, so the PID is its). */
function start(ns: string | null, command: string, args: string[]): Proc {
  const argv = ns === null ? [command, ...args] : ['ip', 'netns', 'exec', ns, command, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc: Proc = { child, stdout: '', stderr: '', exited: false, exit: Promise.resolve(null) };
  child.stdout?.on('data', (d: Buffer) => {
    proc.stdout += d.toString('latin1');
  });
  child.stderr?.on('data', (d: Buffer) => {
    proc.stderr += d.toString('latin1');
  });
  proc.exit = new Promise((resolve) => {
    child.once('error', () => resolve(null));
    child.once('exit', (code) => {
      proc.exited = true;
      resolve(code);
    });
  });
  return proc;
}

/** Signals the process, then SIGKILL after `ms`. */
async function stop(proc: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM', ms = 15_000): Promise<void> {
  if (proc === undefined || proc.exited) return;
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), ms);
  await proc.exit;
  clearTimeout(timer);
}

async function until<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | undefined>,
  why = () => '',
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not after ${ms} ms\n${why()}`);
    await sleep(200);
  }
}

/**
 * An HTTP request from inside namespace `ns` (the test runs outside it): a node child there does the
 * fetch. Outside any namespace, fetch itself.
 */
async function fetchIn(
  ns: string | null,
  url: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  if (ns === null) {
    const r = await fetch(url, body === undefined ? {} : { method: 'POST', body });
    return { status: r.status, text: await r.text() };
  }
  const script =
    'const [u, b] = process.argv.slice(1);' +
    'fetch(u, b === undefined ? {} : { method: "POST", body: b })' +
    '.then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, text: await r.text() })))' +
    '.catch((e) => { process.stderr.write(String(e)); process.exit(1); });';
  const args = ['netns', 'exec', ns, process.execPath, '-e', script, url];
  if (body !== undefined) args.push(body);
  const { stdout } = await run('ip', args, { maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as { status: number; text: string };
}

/** A Prometheus of our own: config, data directory, loopback address; in `ns` when given. */
class Prometheus {
  private constructor(
    readonly proc: Proc,
    readonly base: string,
    readonly ns: string | null,
  ) {}

  static async start(dir: string, target: string, ns: string | null, port: number): Promise<Prometheus> {
    mkdirSync(dir, { recursive: true });
    const config = join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n` +
        `scrape_configs:\n  - job_name: callscope\n    static_configs:\n      - targets: ['${target}']\n`,
    );
    const proc = start(ns, 'prometheus', [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ]);
    const p = new Prometheus(proc, `http://127.0.0.1:${port}`, ns);
    await until(
      'prometheus ready',
      30_000,
      async () => {
        if (proc.exited) throw new Error('exited');
        return (await fetchIn(ns, `${p.base}/-/ready`)).status === 200 ? true : undefined;
      },
      () => proc.stderr.slice(-2000),
    );
    return p;
  }

  /** An instant query now: each series' labels and value. */
  async query(expr: string): Promise<Array<{ metric: Record<string, string>; value: number }>> {
    const r = await fetchIn(this.ns, `${this.base}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const json = JSON.parse(r.text) as {
      status: string;
      error?: string;
      data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
    };
    if (json.status !== 'success') throw new Error(`prometheus: ${expr}: ${json.error}`);
    return json.data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  }

  /** Series by one label's value. */
  async byLabel(expr: string, label: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const s of await this.query(expr)) out[s.metric[label] ?? ''] = s.value;
    return out;
  }

  /** Waits until Prometheus holds a scrape taken after `sinceMs` (this host's clock). */
  async scrapedAfter(sinceMs: number): Promise<void> {
    await until('a scrape after the store was read', 15_000, async () => {
      const [s] = await this.query('timestamp(callscope_info)');
      return s !== undefined && s.value * 1000 > sinceMs ? true : undefined;
    });
  }

  stop(): Promise<void> {
    return stop(this.proc);
  }
}

/** A port free on loopback now (Prometheus takes it right after). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as import('node:net').AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Runs SQL against a store's ClickHouse HTTP interface (from inside `ns` when given). */
async function sql(ns: string | null, url: string, query: string): Promise<Array<Record<string, string>>> {
  const r = await fetchIn(ns, `${url}/?database=callscope&default_format=JSONEachRow`, query);
  if (r.status !== 200) throw new Error(`store: ${r.status} ${r.text}`);
  return r.text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, string>);
}

const SETTLED_BY_OUTCOME =
  'SELECT outcome, toUInt32(count()) AS n FROM calls FINAL WHERE is_edge AND NOT open GROUP BY outcome';

async function storedByOutcome(ns: string | null, url: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const r of await sql(ns, url, SETTLED_BY_OUTCOME)) out[r.outcome!] = Number(r.n);
  return out;
}

/** The SIPp statistics file's last row: successful and failed calls. */
function sippCounts(file: string): { successful: number; failed: number } {
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  const header = lines[0]!.split(';');
  const last = lines[lines.length - 1]!.split(';');
  const col = (name: string) => Number(last[header.indexOf(name)]);
  return { successful: col('SuccessfulCall(C)'), failed: col('FailedCall(C)') };
}

// Made when a test runs, so that a run where every test is skipped leaves nothing behind.
let dir = '';

beforeAll(() => {
  dir = tmpDir('callscope-prometheus-');
});

afterAll(() => {
  if (dir !== '') removeTmpDir(dir);
});

needs(ROOT, NETNS, 'ip', 'sipp', 'prometheus', PCAP_PACKAGE, built(cli)).describe(
  'Prometheus scrapes run --interface capturing SIPp calls',
  () => {
    const tag = `${process.pid % 100000}`;
    const uacNs = `cs-pu${tag}`;
    const uasNs = `cs-ps${tag}`;
    const uacIf = `pu${tag}`;
    const uasIf = `ps${tag}`;
    const uacIp = '10.231.0.1';
    const uasIp = '10.231.0.2';
    const procs: Proc[] = [];
    let prometheus: Prometheus | undefined;

    const ip = (...args: string[]) => {
      const r = spawnSync('ip', args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
    };
    const teardown = () => {
      spawnSync('ip', ['netns', 'del', uacNs], { stdio: 'ignore' });
      spawnSync('ip', ['netns', 'del', uasNs], { stdio: 'ignore' });
    };

    beforeAll(() => {
      teardown();
      ip('netns', 'add', uacNs);
      ip('netns', 'add', uasNs);
      ip('link', 'add', uacIf, 'netns', uacNs, 'type', 'veth', 'peer', 'name', uasIf, 'netns', uasNs);
      for (const [ns, dev, addr] of [
        [uacNs, uacIf, uacIp],
        [uasNs, uasIf, uasIp],
      ] as const) {
        // No IPv6: nothing of the kernel's own (router solicitations) on the wire.
        spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`]);
        ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev);
        ip('-n', ns, 'link', 'set', dev, 'up');
        ip('-n', ns, 'link', 'set', 'lo', 'up');
      }
    });

    afterAll(async () => {
      await prometheus?.stop();
      for (const p of procs.reverse()) await stop(p, 'SIGKILL', 2000);
      teardown();
    });

    it('sum by (outcome) (callscope_calls_total) equals the store, and SIPp', async () => {
      const started = Date.now();
      const dataDir = join(dir, 'live-store');
      const capture = start(uasNs, process.execPath, [
        cli,
        'run',
        '--interface',
        uasIf,
        '--data-dir',
        dataDir,
        '--metrics-listen',
        '127.0.0.1:0',
        '--health-interval',
        '1',
        '--json',
        '--log-format',
        'json',
        '--log-level',
        'info',
      ]);
      procs.push(capture);
      const logs = () => capture.stderr.slice(-3000);
      const listening = await until(
        'run --interface: metrics listening and capture started',
        30_000,
        async () => {
          if (capture.exited) throw new Error('exited');
          const line = capture.stderr.split('\n').find((l) => l.includes('"msg":"metrics listening"'));
          return line !== undefined && capture.stderr.includes('"live capture started"')
            ? (JSON.parse(line) as { address: string })
            : undefined;
        },
        logs,
      );
      expect(listening.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(listening.address).not.toBe('127.0.0.1:0');
      prometheus = await Prometheus.start(join(dir, 'prom-live'), listening.address, uasNs, 9090);
      const served = JSON.parse(readFileSync(join(dataDir, 'callscope-serving.json'), 'utf8')) as {
        url: string;
      };

      // SIPp: 24 calls answered 200 or (about 3 in 10) 486 on :5060, 24 answered 503 on :5070.
      const sipp = (ns: string, name: string, args: string[]) => {
        const p = start(ns, 'sipp', [
          ...args,
          '-nostdin',
          '-trace_stat',
          '-stf',
          join(dir, `${name}.csv`),
          '-trace_err',
          '-error_file',
          join(dir, `${name}.err`),
        ]);
        procs.push(p);
        return p;
      };
      const uas = (port: number, scenario: string, calls: number) =>
        sipp(uasNs, `uas-${port}`, [
          '-sf',
          join(SIPP_SCENARIO_DIR, `uas-${scenario}.xml`),
          '-i',
          uasIp,
          '-p',
          String(port),
          '-mi',
          uasIp,
          '-mp',
          String(port + 10000),
          '-m',
          String(calls),
        ]);
      const uac = (port: number, scenario: string, calls: number, rate: number) =>
        sipp(uacNs, `uac-${port}`, [
          '-sf',
          join(SIPP_SCENARIO_DIR, `uac-${scenario}.xml`),
          '-i',
          uacIp,
          '-p',
          String(port),
          '-mi',
          uacIp,
          '-mp',
          String(port + 10000),
          '-m',
          String(calls),
          '-r',
          String(rate),
          '-d',
          '200',
          `${uasIp}:${port}`,
        ]);
      const CALLS = 24;
      const uasProcs = [
        uas(5060, 'random-fail', CALLS),
        uas(5070, 'unavailable', CALLS),
        uas(5080, 'options', 1000),
      ];
      await until('SIPp UASs listening', 10_000, async () => {
        const { stdout } = await run('ip', ['netns', 'exec', uasNs, 'ss', '-Hlun']);
        return [5060, 5070, 5080].every((p) => stdout.includes(`${uasIp}:${p} `)) ? true : undefined;
      });
      const callers = [uac(5060, 'basic', CALLS, 10), uac(5070, 'basic', CALLS, 10)];
      // OPTIONS keep-alives twice a second: the store's clock (capture time of the newest message) runs
      // on, and the calls job settles each call once its linger (10 s) is over.
      const prober = uac(5080, 'options', 1000, 2);
      for (const c of callers) await c.exit;
      const answered = sippCounts(join(dir, 'uac-5060.csv'));
      const unavailable = sippCounts(join(dir, 'uac-5070.csv'));
      expect(answered.successful + answered.failed).toBe(CALLS);
      expect(unavailable).toEqual({ successful: 0, failed: CALLS });
      expect(answered.successful).toBeGreaterThan(0);

      // Every call settled, as Prometheus sees it.
      await until(
        'Prometheus: every SIPp call counted',
        45_000,
        async () => {
          const [s] = await prometheus!.query('sum(callscope_calls_total)');
          return s?.value === 2 * CALLS ? true : undefined;
        },
        logs,
      );
      await stop(prober, 'SIGUSR1', 3000);
      for (const p of uasProcs) await stop(p, 'SIGUSR1', 3000);

      // The store, still served by the running capture, and then Prometheus with a scrape taken after.
      let sipStored = -1;
      await until('the store quiet', 15_000, async () => {
        const [r] = await sql(uasNs, served.url, 'SELECT toUInt32(count()) AS n FROM sip_messages');
        const n = Number(r!.n);
        const quiet = n === sipStored;
        sipStored = n;
        if (quiet) return true;
        await sleep(1500);
        return undefined;
      });
      const stored = await storedByOutcome(uasNs, served.url);
      const readAt = Date.now();
      await prometheus.scrapedAfter(readAt);
      const scraped = await prometheus.byLabel('sum by (outcome) (callscope_calls_total)', 'outcome');
      console.log(
        `[prometheus] run --interface: store ${JSON.stringify(stored)}, Prometheus ${JSON.stringify(scraped)}`,
      );
      expect(scraped).toEqual(stored);
      // And SIPp's own outcome of each call.
      expect(stored).toEqual({
        answered: answered.successful,
        ...(answered.failed > 0 ? { busy: answered.failed } : {}),
        failed: CALLS,
      });
      const statuses = await prometheus.byLabel(
        'sum by (final_status) (callscope_calls_total)',
        'final_status',
      );
      expect(statuses).toEqual({
        '200': answered.successful,
        ...(answered.failed > 0 ? { '486': answered.failed } : {}),
        '503': CALLS,
      });
      const pdd = await prometheus.query('sum(callscope_call_pdd_seconds_count)');
      expect(pdd[0]?.value).toBe(2 * CALLS);
      const sip = await prometheus.query('callscope_events_total{type="sip"}');
      expect(sip[0]?.value).toBe(sipStored);
      const packets = await prometheus.query(`callscope_packets_total{source="${uasIf}"}`);
      expect(packets[0]?.value).toBeGreaterThan(sipStored);
      const drops = await prometheus.byLabel(`callscope_capture_drops_total{source="${uasIf}"}`, 'reason');
      expect(Object.keys(drops).sort()).toEqual(['interface', 'kernel', 'overload']);
      expect((await prometheus.query('up{job="callscope"}'))[0]?.value).toBe(1);

      // SIGTERM: the run ends, flushes, reports where its metrics were.
      await stop(capture, 'SIGTERM', 30_000);
      expect(await capture.exit, logs()).toBe(0);
      const out = JSON.parse(capture.stdout) as { metrics: string; calls: { error: string | null } };
      expect(out.metrics).toBe(listening.address);
      expect(out.calls.error).toBeNull();
      console.log(`[prometheus] run --interface test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });
  },
);

needs('prometheus', built(cli)).describe('Prometheus scrapes ingest fed HEP by capture', () => {
  let ingest: Proc | undefined;
  let prometheus: Prometheus | undefined;

  afterAll(async () => {
    await prometheus?.stop();
    await stop(ingest, 'SIGKILL', 2000);
  });

  it('sum by (outcome) (callscope_calls_total) equals the store', async () => {
    const started = Date.now();
    ingest = start(null, process.execPath, [
      cli,
      'ingest',
      '--hep-listen',
      '127.0.0.1:0',
      '--metrics-listen',
      '127.0.0.1:0',
      '--data-dir',
      join(dir, 'ingest-store'),
      '--json',
      '--log-format',
      'json',
      '--stats-interval',
      '0',
    ]);
    const proc = ingest;
    const ready = await until(
      'ingest ready',
      30_000,
      async () => {
        if (proc.exited) throw new Error('exited');
        const line = proc.stdout.split('\n')[0];
        return line
          ? (JSON.parse(line) as { store: string; hep: { tcp: number }; metrics: string })
          : undefined;
      },
      () => proc.stderr.slice(-3000),
    );
    expect(ready.metrics).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
    prometheus = await Prometheus.start(join(dir, 'prom-ingest'), ready.metrics, null, await freePort());
    const sent = await run(process.execPath, [
      cli,
      'capture',
      '--pcap',
      SAMPLE,
      '--hep-to',
      `tcp:127.0.0.1:${ready.hep.tcp}`,
      '--json',
    ]);
    const capture = JSON.parse(sent.stdout) as {
      sipMessages: number;
      hep: { sent: number; dropped: number };
    };
    expect(capture.hep.dropped).toBe(0);

    // Stable: every message stored, and the calls job's settled calls unchanged over two of its cycles.
    let last = '';
    await until(
      'the store stable',
      30_000,
      async () => {
        const [m] = await sql(null, ready.store, 'SELECT toUInt32(count()) AS n FROM sip_messages');
        const now = JSON.stringify([m!.n, await storedByOutcome(null, ready.store)]);
        const stable = now === last && Number(m!.n) === capture.sipMessages;
        last = now;
        if (stable) return true;
        await sleep(4500);
        return undefined;
      },
      () => proc.stderr.slice(-3000),
    );
    const stored = await storedByOutcome(null, ready.store);
    const readAt = Date.now();
    await prometheus.scrapedAfter(readAt);
    const scraped = await prometheus.byLabel('sum by (outcome) (callscope_calls_total)', 'outcome');
    console.log(
      `[prometheus] ingest: store ${JSON.stringify(stored)}, Prometheus ${JSON.stringify(scraped)}`,
    );
    expect(Object.keys(stored).length).toBeGreaterThanOrEqual(4);
    expect(scraped).toEqual(stored);
    const sip = await prometheus.query('callscope_events_total{type="sip"}');
    expect(sip[0]?.value).toBe(capture.sipMessages);
    const rows = await prometheus.byLabel('callscope_store_rows_total', 'table');
    expect(rows.sip_messages).toBe(capture.sipMessages);
    const frames = await prometheus.query('callscope_hep_frames_total');
    expect(frames[0]?.value).toBe(capture.hep.sent);
    // The sample is old: the lag is its age (a capture time, not when it arrived).
    const [lag] = await prometheus.query('callscope_ingest_lag_seconds');
    expect(lag?.value).toBeGreaterThan(86_400);

    await stop(ingest, 'SIGTERM', 30_000);
    expect(await proc.exit, proc.stderr.slice(-2000)).toBe(0);
    console.log(`[prometheus] ingest test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});
