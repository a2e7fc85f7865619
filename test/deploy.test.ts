/**
 * The deployment files, checked without Docker or systemd running: docker-compose.yml against the
 * Compose specification's JSON Schema; every shell script (and the shell in docs/DEPLOY.md) through
 * shellcheck; every path the Dockerfile and compose file name, and every flag they, the systemd unit,
 * the Proxmox hookscript and docs/DEPLOY.md give callscope or ovs-mirror, against the repository and
 * the built CLI's --help; the systemd unit through `systemd-analyze verify` and `security`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  built,
  needs,
  REPO_ROOT,
  type Requirement,
  removeTmpDir,
  requirement,
  tmpDir,
} from './oracle/tools.js';

const CLI = join(REPO_ROOT, 'dist/bin/callscope.js');
const OVS_MIRROR = join(REPO_ROOT, 'dist/bin/ovs-mirror.js');
const UNIT = join(REPO_ROOT, 'capture/systemd/callscope-capture.service');
const UNIT_ENV = join(REPO_ROOT, 'capture/systemd/callscope-capture.env.example');
const HOOK = join(REPO_ROOT, 'capture/systemd/proxmox-mirror-hook.sh');
const DEPLOY_MD = join(REPO_ROOT, 'docs/DEPLOY.md');
const PANEL_ID = 'callscope-ladder-panel';

/** The Compose specification's schema, as the devDependency dclint ships it (or another copy). */
const COMPOSE_SCHEMA =
  process.env.CALLSCOPE_COMPOSE_SCHEMA || join(REPO_ROOT, 'node_modules/dclint/schemas/compose.schema.json');

const read = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8');

const SHELLCHECK = 'shellcheck';
const SYSTEMD_ANALYZE = 'systemd-analyze';

const COMPOSE_SCHEMA_PRESENT: Requirement = requirement(
  'compose-schema',
  'npm ci installs the devDependency dclint, which ships schemas/compose.schema.json',
  () => (existsSync(COMPOSE_SCHEMA) ? null : `${COMPOSE_SCHEMA} is absent`),
);

// ---------------------------------------------------------------------------------------------------
// Parsing the files

interface ComposeService {
  image?: string;
  build?: { context: string; target?: string };
  command?: string[];
  environment?: Record<string, string | number>;
  healthcheck?: { test: string[] };
  restart?: string;
  volumes?: string[];
  profiles?: string[];
  cap_add?: string[];
  cap_drop?: string[];
}
const composeText = read('docker-compose.yml');
const compose = parseYaml(composeText) as { services: Record<string, ComposeService> };
/** Services built from our Dockerfile: their entrypoint is the callscope CLI. */
const ours = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);

interface Instruction {
  line: number;
  op: string;
  args: string;
}
/** Dockerfile instructions, continuation lines joined, comments dropped. */
function dockerfile(): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  read('Dockerfile')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim();
      if (pending === '' && (line === '' || line.startsWith('#'))) return;
      if (pending !== '' && line.startsWith('#')) return;
      if (pending === '') start = i + 1;
      if (line.endsWith('\\')) {
        pending += `${line.slice(0, -1)} `;
        return;
      }
      const whole = pending + line;
      pending = '';
      const m = /^(\S+)\s+(.*)$/.exec(whole);
      if (m) out.push({ line: start, op: m[1].toUpperCase(), args: m[2] });
    });
  return out;
}
const instructions = dockerfile();
const stages = instructions
  .filter((i) => i.op === 'FROM')
  .map((i) => /\bAS\s+(\S+)$/i.exec(i.args)?.[1])
  .filter((s): s is string => s !== undefined);

/** `--flag` and `--flag=value` tokens of an argument list, as flag names. */
function flagsOf(args: readonly string[]): string[] {
  return args.filter((a) => /^--[a-z]/.test(a)).map((a) => a.slice(2).split('=')[0]);
}

const helpCache = new Map<string, string>();
/** The flags `<script> <args> --help` lists. */
function helpFlags(script: string, args: string[]): Set<string> {
  const key = `${script} ${args.join(' ')}`;
  let text = helpCache.get(key);
  if (text === undefined) {
    const r = spawnSync(process.execPath, [script, ...args, '--help'], { encoding: 'utf8' });
    expect(r.status, `${key} --help: ${r.stderr}`).toBe(0);
    text = r.stdout;
    helpCache.set(key, text);
  }
  return new Set([...text.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => m[1]));
}

function expectFlagsKnown(where: string, script: string, command: string[], args: readonly string[]): void {
  const known = helpFlags(script, command);
  const unknown = flagsOf(args).filter((f) => !known.has(f));
  expect(
    unknown,
    `${where}: ${command.join(' ')} does not take ${unknown.map((f) => `--${f}`).join(', ')}`,
  ).toEqual([]);
}

/** The unit file as sections of key → values (a key may repeat), continuation lines joined. */
function unitFile(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | null = null;
  let logical = '';
  for (const raw of text.split('\n')) {
    if (logical === '' && (/^\s*[#;]/.test(raw) || raw.trim() === '')) continue;
    if (raw.endsWith('\\')) {
      logical += `${raw.slice(0, -1)} `;
      continue;
    }
    const line = (logical + raw).trim();
    logical = '';
    const section = /^\[([A-Za-z]+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1], current);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv || current === null) throw new Error(`not a unit file line: ${line}`);
    current.set(kv[1], [...(current.get(kv[1]) ?? []), kv[2]]);
  }
  return sections;
}

/** The ```sh blocks of a Markdown file. */
function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

/** Command lines of a shell text (continuations joined, trailing comments dropped), split on blanks. */
function commandLines(text: string): string[][] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) =>
      l
        .replace(/\s#.*$/, '')
        .replace(/&$/, '')
        .trim(),
    )
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(/\s+/));
}

// ---------------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  needs(COMPOSE_SCHEMA_PRESENT).it('validates against the Compose specification schema', () => {
    const schema = JSON.parse(readFileSync(COMPOSE_SCHEMA, 'utf8')) as Record<string, unknown>;
    // Its $schema is draft-07 spelled https://json-schema.org/draft-07/schema, which Ajv does not
    // know by that name; Ajv's default draft is draft-07.
    delete schema.$schema;
    const ajv = new Ajv({ allErrors: true, strict: false });
    (addFormatsModule as unknown as (a: Ajv) => Ajv)(ajv);
    const validate = ajv.compile(schema);
    expect(validate(parseYaml(composeText)), ajv.errorsText(validate.errors, { separator: '\n' })).toBe(true);
    // The schema is not a rubber stamp: a misspelt key and a wrong type are refused.
    const broken = parseYaml(composeText) as { services: Record<string, Record<string, unknown>> };
    broken.services.ingest.helthcheck = broken.services.ingest.healthcheck;
    broken.services.grafana.restart = 5;
    expect(validate(broken)).toBe(false);
    expect(validate.errors?.map((e) => e.instancePath)).toEqual(
      expect.arrayContaining(['/services/ingest', '/services/grafana/restart']),
    );
  });

  it('builds every image of ours from a Dockerfile target and installs nothing at start', () => {
    expect(ours.map(([name]) => name).sort()).toEqual(['capture', 'capture-live', 'grafana', 'ingest']);
    for (const [name, service] of ours) {
      expect(service.build?.context, name).toBe('.');
      expect(stages, `${name}: target ${service.build?.target}`).toContain(service.build?.target);
    }
    expect(composeText).not.toMatch(/npm (install|ci)|apt-get|GF_INSTALL_PLUGINS/);
  });

  it('takes secrets from the environment, with no default password', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (!/PASSWORD|SECRET|AUTH_KEY/.test(key)) continue;
        expect(String(value), `${name}.${key}`).toMatch(/^\$\{[A-Z_]+:\?[^}]+\}$/);
      }
    }
    expect(composeText).not.toMatch(/PASSWORD[A-Z_]*:-/);
  });

  it('gives every long-running service a health check and a restart policy', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (service.restart === 'no') continue; // one-shot (the sample replay)
      expect(service.restart, name).toBe('unless-stopped');
      expect(service.healthcheck?.test?.length, `${name} has no healthcheck`).toBeGreaterThan(0);
    }
  });

  it('gives Grafana every variable its provisioned datasource reads', () => {
    const env = compose.services.grafana.environment ?? {};
    for (const v of ['CLICKHOUSE_HOST', 'CLICKHOUSE_PORT', 'CLICKHOUSE_USER', 'CLICKHOUSE_PASSWORD'])
      expect(env, v).toHaveProperty(v);
    // The volume holds Grafana's state only, not the image's plugins and dashboards.
    expect(compose.services.grafana.volumes).toEqual(['grafana-state:/var/lib/grafana/state']);
  });

  needs(built(CLI)).it('runs only callscope commands and flags that exist', () => {
    const commands = helpFlags(CLI, []);
    expect(commands.size).toBeGreaterThan(0);
    const top = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }).stdout;
    for (const [name, service] of ours) {
      if (service.build?.target === 'grafana') continue;
      const command = service.command ?? [];
      expect(top, `${name}: callscope ${command[0]}`).toMatch(new RegExp(`^  callscope ${command[0]} `, 'm'));
      expectFlagsKnown(`docker-compose.yml ${name}`, CLI, [command[0]], command.slice(1));
      // Paths it names inside the image come from the repository.
      for (const arg of command)
        if (arg.startsWith('capture/')) expect(existsSync(join(REPO_ROOT, arg)), arg).toBe(true);
    }
    // `ingest` migrates the schema before it consumes: that is what the compose file relies on.
    expect(read('bin/commands/ingest.ts')).toMatch(/await migrate\(store\.client/);
  });

  describe('health checks of our services', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer((s) => s.end());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    /** Runs a `node -e` health check with its port replaced; resolves with the exit code. */
    function runCheck(code: string, env: NodeJS.ProcessEnv): Promise<number | null> {
      return new Promise((resolve) => {
        const child = spawn(process.execPath, ['-e', code], {
          env: { ...process.env, ...env },
          stdio: 'ignore',
        });
        child.on('exit', (status) => resolve(status));
      });
    }

    it('ingest: healthy when its HEP port accepts TCP, unhealthy when nothing listens', async () => {
      const test = compose.services.ingest.healthcheck?.test ?? [];
      expect(test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
      expect(() => new Script(test[3])).not.toThrow();
      expect(test[3]).toContain('9060');
      expect(await runCheck(test[3].replace('9060', String(port)), {})).toBe(0);
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const free = (closed.address() as { port: number }).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      expect(await runCheck(test[3].replace('9060', String(free)), {})).toBe(1);
    });

    it('capture-live: healthy while its first Kafka broker answers', async () => {
      const test = compose.services['capture-live'].healthcheck?.test ?? [];
      expect(test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
      expect(await runCheck(test[3], { CALLSCOPE_KAFKA: `127.0.0.1:${port},elsewhere:9092` })).toBe(0);
      expect(await runCheck(test[3], { CALLSCOPE_KAFKA: '127.0.0.1:1' })).toBe(1);
    });
  });
});

describe('Dockerfile', () => {
  it('has the build, runtime, capture and grafana targets, runtime last (the default)', () => {
    expect(stages).toEqual(expect.arrayContaining(['build', 'runtime', 'capture', 'grafana']));
    expect(stages.at(-1)).toBe('runtime');
    const froms = instructions.filter((i) => i.op === 'FROM').map((i) => i.args);
    expect(froms).toContain('grafana/grafana:12.1.1 AS grafana');
    expect(froms.some((f) => /^node:\$\{NODE_VERSION\}-bookworm-slim AS /.test(f))).toBe(true);
  });

  it('copies from the context only what exists and .dockerignore lets through', () => {
    const ignore = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const must of ['.git', 'node_modules', 'dist', '.callscope', 'test-artifacts', '.env'])
      expect(ignore, must).toContain(must);
    const copies = instructions.filter((i) => i.op === 'COPY' && !i.args.includes('--from='));
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      const parts = copy.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(join(REPO_ROOT, source)), `Dockerfile:${copy.line} COPY ${source}`).toBe(true);
        if (source !== '.') expect(ignore, source).not.toContain(source.replace(/\/$/, ''));
      }
    }
    // Scripts the build runs from the context exist.
    for (const run of instructions.filter((i) => i.op === 'RUN'))
      for (const [, script] of run.args.matchAll(/\bnode ((?:dashboards|bin|test)\/\S+\.m?js)\b/g))
        expect(existsSync(join(REPO_ROOT, script)), `Dockerfile:${run.line} node ${script}`).toBe(true);
    // What the build stage needs from the context is not ignored.
    for (const needed of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'capture',
      'dashboards',
      'bin',
    ])
      expect(ignore, needed).not.toContain(needed);
  });

  needs(built(join(REPO_ROOT, 'dist/ladder-panel/plugin.json'))).it(
    "copies from the build stage what the build makes, the panel's id allowed unsigned",
    () => {
      const fromBuild = instructions.filter((i) => i.op === 'COPY' && i.args.includes('--from=build'));
      for (const copy of fromBuild) {
        const parts = copy.args.split(/\s+/).filter((p) => !p.startsWith('--'));
        for (const source of parts.slice(0, -1)) {
          expect(source, `Dockerfile:${copy.line}`).toMatch(/^\/app\//);
          const path = source.slice('/app/'.length);
          // node_modules is the image's own (npm ci there), not this checkout's.
          if (path.startsWith('node_modules')) continue;
          expect(
            existsSync(join(REPO_ROOT, path)),
            `Dockerfile:${copy.line} COPY --from=build ${source}`,
          ).toBe(true);
        }
      }
      const plugin = JSON.parse(read('dist/ladder-panel/plugin.json')) as { id: string; type: string };
      expect(plugin).toMatchObject({ id: PANEL_ID, type: 'panel' });
      expect(existsSync(join(REPO_ROOT, 'dist/ladder-panel/module.js'))).toBe(true);
      const text = read('Dockerfile');
      expect(text).toContain(`GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS=${PANEL_ID}`);
      expect(text).toContain(`/var/lib/grafana/plugins/${PANEL_ID}/`);
      // The dashboard provider reads where the image puts the dashboards.
      const provider = parseYaml(read('dashboards/grafana/provisioning/dashboards/callscope.yaml')) as {
        providers: { options: { path: string; foldersFromFilesStructure: boolean } }[];
      };
      expect(provider.providers[0].options.path).toBe('/var/lib/grafana/dashboards');
      expect(text).toMatch(/\/app\/dashboards\/grafana\/dashboards\/ \/var\/lib\/grafana\/dashboards\//);
      // Every $VAR of the datasource is set by docker-compose.yml.
      const datasource = read('dashboards/grafana/provisioning/datasources/callscope.yaml');
      const env = compose.services.grafana.environment ?? {};
      for (const [, v] of datasource.matchAll(/\$\{?([A-Z_]+)\}?/g)) expect(env, `$${v}`).toHaveProperty(v);
    },
  );

  needs(built(CLI)).it('starts the CLI the build makes, with ovs-mirror on the PATH', () => {
    const entry = instructions.find((i) => i.op === 'ENTRYPOINT');
    expect(JSON.parse(entry?.args ?? '[]')).toEqual([
      'node',
      '--max-semi-space-size=64',
      '/app/dist/bin/callscope.js',
    ]);
    expect(statSync(CLI).mode & 0o111).not.toBe(0);
    expect(statSync(OVS_MIRROR).mode & 0o111).not.toBe(0);
    expect(readFileSync(OVS_MIRROR, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    expect(read('Dockerfile')).toContain('ln -s /app/dist/bin/ovs-mirror.js /usr/local/bin/ovs-mirror');
  });
});

describe('systemd unit', () => {
  const text = readFileSync(UNIT, 'utf8');
  const unit = unitFile(text);
  const service = unit.get('Service') ?? new Map<string, string[]>();
  const one = (key: string): string => {
    const values = service.get(key) ?? [];
    expect(values, key).toHaveLength(1);
    return values[0];
  };
  const execStart = (): string[] => one('ExecStart').split(/\s+/);

  it('has the sections and the hardening the agent needs', () => {
    expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
    expect(one('User')).toBe('callscope');
    expect(one('Restart')).toBe('on-failure');
    expect(one('RestartPreventExitStatus')).toBe('64');
    expect(one('AmbientCapabilities').split(/\s+/).sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    expect(one('CapabilityBoundingSet').split(/\s+/).sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    // V8's JIT needs writable executable memory.
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
    // The capture stops cleanly on SIGTERM (and SIGINT): both abort it, flush, exit 0.
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(read('bin/live.ts')).toMatch(/process\.on\('SIGTERM', onTerm\)/);
  });

  it('takes its settings from the env file, and may write only where the spool is', () => {
    const env = new Map(
      readFileSync(UNIT_ENV, 'utf8')
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
    );
    expect(one('EnvironmentFile')).toBe('/etc/callscope/capture.env');
    const used = [...one('ExecStart').matchAll(/\$\{([A-Z_]+)\}/g)].map((m) => m[1]);
    expect(used.sort()).toEqual([
      'CALLSCOPE_INTERFACE',
      'CALLSCOPE_KAFKA',
      'CALLSCOPE_NODE_NAME',
      'CALLSCOPE_SPOOL_DIR',
    ]);
    for (const v of used) expect([...env.keys()], v).toContain(v);
    const spool = env.get('CALLSCOPE_SPOOL_DIR') ?? '';
    const writable = [
      ...one('ReadWritePaths').split(/\s+/),
      ...one('StateDirectory')
        .split(/\s+/)
        .map((d) => `/var/lib/${d}`),
    ];
    expect(
      writable.some((w) => spool === w || spool.startsWith(`${w}/`)),
      spool,
    ).toBe(true);
    const exec = execStart();
    expect(exec.slice(0, 4)).toEqual([
      '/usr/bin/node',
      '--max-semi-space-size=64',
      '/opt/callscope/dist/bin/callscope.js',
      'capture',
    ]);
  });

  needs(built(CLI)).it('ExecStart uses only flags `callscope capture` takes', () => {
    expectFlagsKnown('callscope-capture.service', CLI, ['capture'], execStart().slice(4));
  });

  needs(SYSTEMD_ANALYZE).describe('systemd-analyze', () => {
    let dir: string;
    let copy: string;
    beforeAll(() => {
      dir = tmpDir('callscope-unit-');
      copy = join(dir, 'callscope-capture.service');
      // The unit names /usr/bin/node; verify checks that it exists, so point it at this Node.js.
      writeFileSync(copy, text.replace('/usr/bin/node ', `${process.execPath} `));
    });
    afterAll(() => removeTmpDir(dir));

    it('verify: the unit parses, every key known, the command executable', () => {
      const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
      const complaints = r.stderr.split('\n').filter((l) => l.includes('callscope-capture'));
      expect({ status: r.status, complaints }).toEqual({ status: 0, complaints: [] });
    });

    it('security: exposure at most 3.0 of 10', () => {
      const r = spawnSync(
        'systemd-analyze',
        ['security', '--offline=yes', '--threshold=30', '--no-pager', copy],
        {
          encoding: 'utf8',
        },
      );
      expect(r.status, `${r.stdout.split('\n').slice(-3).join('\n')}${r.stderr}`).toBe(0);
    });
  });
});

describe('shell', () => {
  /** Tracked and new (not ignored) files that are shell scripts: *.sh, or a sh/bash shebang. */
  function shellScripts(): string[] {
    const r = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    const files =
      r.status === 0
        ? r.stdout.split('\n').filter(Boolean)
        : ['.ci/run', 'capture/systemd/proxmox-mirror-hook.sh'];
    return files.filter((f) => {
      if (!existsSync(join(REPO_ROOT, f))) return false;
      if (f.endsWith('.sh')) return true;
      if (/\.(ts|js|json|md|ya?ml|pcap|svg|xml|c)$/.test(f)) return false;
      const head = readFileSync(join(REPO_ROOT, f), 'latin1').slice(0, 64);
      return /^#!\s*\/(usr\/)?bin\/(env\s+)?(ba|da)?sh\b/.test(head);
    });
  }

  needs(SHELLCHECK).it('every shell script passes shellcheck', () => {
    const scripts = shellScripts();
    expect(scripts).toEqual(expect.arrayContaining(['.ci/run', 'capture/systemd/proxmox-mirror-hook.sh']));
    const r = spawnSync('shellcheck', ['--format=gcc', '-x', ...scripts], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  needs(SHELLCHECK).it('the shell in docs/DEPLOY.md and the compose health check pass shellcheck', () => {
    const blocks = shellBlocks(readFileSync(DEPLOY_MD, 'utf8'));
    expect(blocks.length).toBeGreaterThan(5);
    const kafka = compose.services.kafka.healthcheck?.test ?? [];
    expect(kafka[0]).toBe('CMD-SHELL');
    const checks: [string, string, string][] = [
      ...blocks.map((b, i) => [`docs/DEPLOY.md block ${i + 1}`, 'bash', b] as [string, string, string]),
      ['docker-compose.yml kafka healthcheck', 'sh', `${kafka[1]}\n`],
    ];
    for (const [where, shell, script] of checks) {
      // Snippets typed at a prompt: variables set for a later step (mirror.conf) are not "unused",
      // and a failed `cd` shows (no `|| exit`, which would close the terminal).
      const r = spawnSync(
        'shellcheck',
        ['--format=gcc', `--shell=${shell}`, '--exclude=SC2034,SC2164', '-'],
        {
          input: script,
          encoding: 'utf8',
        },
      );
      expect(r.stdout + r.stderr, `${where}:\n${script}`).toBe('');
    }
  });

  needs(built(CLI)).it(
    'every callscope and ovs-mirror command in docs/DEPLOY.md and the hook takes its flags',
    () => {
      const lines = [
        ...shellBlocks(readFileSync(DEPLOY_MD, 'utf8')).flatMap(commandLines),
        ...commandLines(readFileSync(HOOK, 'utf8')).filter((l) => l.join(' ').includes('"$OVS_MIRROR" add')),
      ];
      let checked = 0;
      for (const words of lines) {
        const at = words.findIndex((w) => /^("\$OVS_MIRROR"|ovs-mirror|callscope)$/.test(w));
        if (at < 0) continue;
        // The command word, after `sudo`, `if`... and VAR=value assignments, not an argument.
        const before = words.slice(0, at).filter((w) => !/^[A-Z_][A-Z0-9_]*=/.test(w));
        if (before.length > 0 && !['sudo', 'if', 'then', 'do'].includes(before[before.length - 1])) continue;
        const script = words[at] === 'callscope' ? CLI : OVS_MIRROR;
        const sub = words[at + 1];
        if (sub === undefined || sub.startsWith('-')) continue;
        expectFlagsKnown(`${words.join(' ')}`, script, [sub], words.slice(at + 2));
        checked++;
      }
      expect(checked).toBeGreaterThanOrEqual(8);
    },
  );
});
