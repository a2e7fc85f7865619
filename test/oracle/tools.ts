/**
 * Small helpers for tests that take their truth from outside tools (tshark, SIPp, tcpdump), and the one
 * gate every test that needs something from the machine goes through ({@link needs}).
 * Nothing here imports product code: an oracle must not share the code it checks.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, TestRunner } from 'vitest';

/**
 * The repository root: the nearest ancestor of this module's directory that holds `package.json`.
 * Works both from the TypeScript sources (`test/oracle/`) and from the compiled copy (`dist/test/oracle/`).
 */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return resolve(dirname(fileURLToPath(import.meta.url)), '../..');
    dir = parent;
  }
}

export const REPO_ROOT: string = findRepoRoot();

/** `../shared` next to the repository: public captures, schemas, CONTEXT.md (may be absent). */
export const SHARED_DIR: string = resolve(REPO_ROOT, '../shared');

/** `${SHARED_DIR}/pcaps` if that directory exists, else null (tests that need it skip: {@link SHARED_CAPTURES}). */
export const SHARED_PCAPS: string | null = isDirectory(join(SHARED_DIR, 'pcaps'))
  ? join(SHARED_DIR, 'pcaps')
  : null;

/** Our own SIPp scenario files (`test/sipp/*.xml`). */
export const SIPP_SCENARIO_DIR: string = join(REPO_ROOT, 'test', 'sipp');

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const toolCache = new Map<string, string | null>();

/** Absolute path of an executable found on PATH (like `which`), or null; cached per process and PATH. */
export function toolPath(name: string): string | null {
  const path = process.env.PATH ?? '';
  const key = `${path}\0${name}`;
  const cached = toolCache.get(key);
  if (cached !== undefined) return cached;
  let found: string | null = null;
  const candidates = name.includes('/') ? [name] : path.split(delimiter).map((d) => join(d || '.', name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) {
        found = candidate;
        break;
      }
    } catch {
      // not here
    }
  }
  toolCache.set(key, found);
  return found;
}

/** True when `name` is an executable on PATH (cached). Tests gate on {@link needs}, not on this. */
export function haveTool(name: string): boolean {
  return toolPath(name) !== null;
}

/**
 * A fresh private directory under the OS temp dir (`mkdtemp`). The caller removes it, typically in
 * `afterAll` with {@link removeTmpDir}.
 */
export function tmpDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Removes a directory made by {@link tmpDir}. Set `CALLSCOPE_KEEP_TMP=1` to keep it (captures and SIPp
 * logs for debugging); the path is then printed instead.
 */
export function removeTmpDir(dir: string): void {
  if (process.env.CALLSCOPE_KEEP_TMP === '1') {
    console.log(`[oracle] keeping ${dir} (CALLSCOPE_KEEP_TMP=1)`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
}

/** True when running as root (uid 0): tcpdump and SIPp's pcap replay need it. */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

// ---------------------------------------------------------------------------------------------------
// The gate: what a test needs from the machine, and what happens when it is missing.
//
// Outside CI a missing requirement is a visible skip: the gated tests are reported as skipped, next to
// one skipped test named after what is missing. Under CI (CI=true or CI=1, as .ci/run runs the suite)
// that one test fails instead, saying what .ci/run should have installed: a suite cannot go green by
// skipping its oracles. The one exception is ../shared/pcaps, which stays a visible skip everywhere
// (the suite must pass where ../shared is absent).

/** Something a test needs from the machine, probed once per process. */
export interface Requirement {
  /** Short id, used in test names and in CALLSCOPE_TEST_MISSING: `tshark`, `root`, `kafka-mock`. */
  readonly name: string;
  /** What provides it in CI (`.ci/run`, `npm test`): the hint of the CI failure. */
  readonly provider: string;
  /** A visible skip under CI too (only ../shared/pcaps). */
  readonly skipInCi: boolean;
  /** Null when present, else why not. */
  missing(): string | null;
}

/**
 * Names listed in `CALLSCOPE_TEST_MISSING` (comma-separated) count as missing whatever the machine
 * has: to see a gate skip (or, with CI=true, fail) on a machine that has everything.
 */
function hiddenByEnv(name: string): boolean {
  const list = process.env.CALLSCOPE_TEST_MISSING;
  return list?.split(',').some((n) => n.trim() === name) ?? false;
}

/** A requirement from a probe (run on first use, then cached) that returns null or why it is missing. */
export function requirement(
  name: string,
  provider: string,
  probe: () => string | null,
  options: { skipInCi?: boolean } = {},
): Requirement {
  let probed: string | null | undefined;
  return {
    name,
    provider,
    skipInCi: options.skipInCi ?? false,
    missing() {
      if (hiddenByEnv(name)) return 'listed in CALLSCOPE_TEST_MISSING';
      probed ??= probe() ?? '';
      return probed === '' ? null : probed;
    },
  };
}

/**
 * Every executable a test may need, with the Debian package `.ci/run` installs it from (checked
 * against `.ci/run` by tools.test.ts). {@link tool} refuses any other name.
 */
export const CI_PACKAGES: Readonly<Record<string, string>> = {
  tshark: 'tshark',
  editcap: 'tshark', // wireshark-common, a dependency of tshark
  sipp: 'sip-tester',
  tcpdump: 'tcpdump',
  sngrep: 'sngrep',
  gcc: 'gcc',
  'ovsdb-tool': 'openvswitch-switch',
  'ovsdb-server': 'openvswitch-switch',
  'ovs-vswitchd': 'openvswitch-switch',
  'ovs-vsctl': 'openvswitch-switch',
  'ovs-appctl': 'openvswitch-switch',
  ip: 'iproute2',
  ethtool: 'ethtool',
  tcpreplay: 'tcpreplay',
  kamailio: 'kamailio',
  chromium: 'chromium',
  shellcheck: 'shellcheck',
  'systemd-analyze': 'systemd',
  prometheus: 'prometheus',
  promtool: 'prometheus',
  'prometheus-alertmanager': 'prometheus-alertmanager',
  arping: 'iputils-arping',
};

const tools = new Map<string, Requirement>();

/** An executable on PATH, one of {@link CI_PACKAGES}. */
export function tool(name: string): Requirement {
  const pkg = CI_PACKAGES[name];
  if (pkg === undefined) {
    throw new Error(`tool(${JSON.stringify(name)}): .ci/run installs nothing that provides it (CI_PACKAGES)`);
  }
  let r = tools.get(name);
  if (r === undefined) {
    // Not cached by `requirement`: PATH may change between calls (tools.test.ts does).
    r = {
      name,
      provider: `apt-get install ${pkg}`,
      skipInCi: false,
      missing: () =>
        hiddenByEnv(name) ? 'listed in CALLSCOPE_TEST_MISSING' : toolPath(name) ? null : 'not on PATH',
    };
    tools.set(name, r);
  }
  return r;
}

/** Running as root (CI runs .ci/run as root): tcpdump, veth pairs, network namespaces. */
export const ROOT: Requirement = requirement('root', 'CI runs .ci/run as root', () =>
  isRoot() ? null : `running as uid ${process.getuid?.() ?? '?'}`,
);

/** Network namespaces can be made here (`ip netns add`, then deleted again). */
export const NETNS: Requirement = requirement(
  'netns',
  'root, apt-get install iproute2, and a kernel that allows network namespaces',
  () => {
    if (!isRoot()) return 'not root';
    if (!toolPath('ip')) return 'ip (iproute2) not on PATH';
    const name = `cs-probe-${process.pid}`;
    const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
    if (add.status !== 0) return `ip netns add: ${add.stderr.trim() || `exit ${add.status}`}`;
    spawnSync('ip', ['netns', 'del', name]);
    return null;
  },
);

/** The `pcap` npm package (optional dependency, built against libpcap-dev) loads. */
export const PCAP_PACKAGE: Requirement = requirement(
  'pcap',
  'apt-get install libpcap-dev python3 make g++, then npm install builds the optional pcap package',
  () => {
    const require = createRequire(import.meta.url);
    try {
      const main = require.resolve('pcap');
      const binding = require(join(dirname(main), 'build', 'Release', 'pcap_binding.node')) as {
        PcapSession?: unknown;
      };
      return typeof binding.PcapSession === 'function' ? null : 'pcap_binding has no PcapSession';
    } catch (e) {
      return `the pcap package does not load: ${(e as Error).message.split('\n')[0]}`;
    }
  },
);

/** sngrep built with EEP/HEP support (Debian's is): an independent HEP sender and listener. */
export const SNGREP_HEP: Requirement = requirement(
  'sngrep-hep',
  'apt-get install sngrep (Debian builds it with EEP/HEP support)',
  () => {
    if (tool('sngrep').missing()) return 'sngrep not on PATH';
    let version = '';
    try {
      version = execFileSync('sngrep', ['-V'], { encoding: 'utf8' });
    } catch (e) {
      return `sngrep -V failed: ${(e as Error).message.split('\n')[0]}`;
    }
    return version.includes('EEP/HEP support') ? null : 'sngrep is built without EEP/HEP support';
  },
);

/** ../shared/pcaps: public captures. Absent, the tests that use them skip visibly, under CI too. */
export const SHARED_CAPTURES: Requirement = requirement(
  'shared-pcaps',
  '../shared/pcaps beside the repository',
  () => (SHARED_PCAPS ? null : `${join(SHARED_DIR, 'pcaps')} is absent`),
  { skipInCi: true },
);

/** ../shared/grafana-schemas: the foundation SDK's JSON Schemas. Absent, the tests that use them skip visibly. */
export const SHARED_GRAFANA_SCHEMAS: Requirement = requirement(
  'shared-grafana-schemas',
  '../shared/grafana-schemas beside the repository',
  () =>
    isDirectory(join(SHARED_DIR, 'grafana-schemas'))
      ? null
      : `${join(SHARED_DIR, 'grafana-schemas')} is absent`,
  { skipInCi: true },
);

/** A file `npm test` builds before vitest runs (the compiled CLI in dist/). */
export function built(path: string): Requirement {
  return requirement('dist', 'npm test runs tsc -p tsconfig.json (npm run build) before vitest', () =>
    existsSync(path) ? null : `${path} is not built`,
  );
}

const MOCK_KAFKA_SOURCE = join(REPO_ROOT, 'test', 'kafka', 'mock-cluster.c');
const RDKAFKA_MOCK_HEADER = '/usr/include/librdkafka/rdkafka_mock.h';
let mockKafka: { binary: string | null; reason: string | null } | undefined;

/**
 * librdkafka's mock cluster, compiled from test/kafka/mock-cluster.c once per process (and once per
 * source version on disk, into a cache directory keyed by its hash), or why it cannot be.
 */
export function mockKafkaBuild(): { binary: string | null; reason: string | null } {
  mockKafka ??= compileMockKafka();
  return mockKafka;
}

function compileMockKafka(): { binary: string | null; reason: string | null } {
  const gcc = toolPath('gcc') ?? toolPath('cc');
  if (!gcc) return { binary: null, reason: 'gcc is not installed (apt-get install gcc)' };
  if (!existsSync(RDKAFKA_MOCK_HEADER)) {
    return { binary: null, reason: `${RDKAFKA_MOCK_HEADER} is missing (apt-get install librdkafka-dev)` };
  }
  const source = readFileSync(MOCK_KAFKA_SOURCE);
  const tag = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `callscope-mock-kafka-${process.getuid?.() ?? 'u'}`);
  const binary = join(dir, `mock-cluster-${tag}`);
  if (existsSync(binary)) return { binary, reason: null };
  mkdirSync(dir, { recursive: true });
  // Compile under a private name and rename: rename is atomic, so a concurrent run sees either
  // no binary or a complete one.
  const partial = `${binary}.${process.pid}.tmp`;
  try {
    execFileSync(gcc, ['-O2', '-o', partial, MOCK_KAFKA_SOURCE, '-lrdkafka'], { stdio: 'pipe' });
    renameSync(partial, binary);
    return { binary, reason: null };
  } catch (e) {
    rmSync(partial, { force: true });
    const err = e as { stderr?: Buffer; message: string };
    const detail = err.stderr?.toString().trim() || err.message;
    return { binary: null, reason: `cannot build ${MOCK_KAFKA_SOURCE}: ${detail}` };
  }
}

/** librdkafka's Kafka-protocol mock cluster builds and runs here (broker outages need it). */
export const KAFKA_MOCK: Requirement = requirement(
  'kafka-mock',
  'apt-get install gcc libc6-dev librdkafka-dev (test/kafka/mock-cluster.c is compiled against librdkafka)',
  () => mockKafkaBuild().reason,
);

/** A Kafka broker: KAFKA_BROKERS, else the mock cluster. */
export const KAFKA: Requirement = requirement(
  'kafka',
  'KAFKA_BROKERS, or the mock cluster: apt-get install gcc libc6-dev librdkafka-dev',
  () => {
    if (process.env.KAFKA_BROKERS?.trim()) return null;
    const why = KAFKA_MOCK.missing();
    return why === null ? null : `no KAFKA_BROKERS, and no mock cluster: ${why}`;
  },
);

/** True when the suite runs as CI runs it (`CI=true`, or `CI=1`). */
export function underCi(): boolean {
  const ci = process.env.CI?.toLowerCase();
  return ci === 'true' || ci === '1';
}

export interface Missing {
  readonly requirement: Requirement;
  readonly reason: string;
}

type SuiteApi = ReturnType<typeof describe.skipIf>;
type TestApi = ReturnType<typeof it.skipIf>;

/**
 * What {@link needs} found. Use `gate.describe` / `gate.it` where vitest's `describe` / `it` would be
 * (chains such as `.each`, `.concurrent` work): with everything present they are vitest's own; with
 * something missing the block is registered skipped, and beside it one test named after what is
 * missing — skipped, or under CI failing with what .ci/run should have installed. An access
 * registers that test in the suite being collected (once per suite), so read them only while
 * collecting. Do not nest a gate inside a block skipped by another: the inner CI failure would be
 * skipped with it; give the block one gate with every requirement instead.
 */
export class Gate {
  /** True when something is missing: the gated tests do not run. */
  readonly skip: boolean;
  /** True when the marker test fails: under CI, and something CI provides is missing. */
  readonly fails: boolean;
  /** `tshark: not on PATH; root: running as uid 1000`, or '' when nothing is missing. */
  readonly reason: string;
  /** Suites where the marker test is registered already. */
  private readonly markedIn = new WeakSet<object>();

  constructor(
    readonly missing: readonly Missing[],
    ci: boolean = underCi(),
  ) {
    this.skip = missing.length > 0;
    this.fails = ci && missing.some((m) => !m.requirement.skipInCi);
    this.reason = missing.map((m) => `${m.requirement.name}: ${m.reason}`).join('; ');
  }

  /** Name of the test that stands for the skipped block: `needs tshark (not on PATH)`. */
  get title(): string {
    return `needs ${this.missing.map((m) => `${m.requirement.name} (${m.reason})`).join(', ')}`;
  }

  /** The error of the CI marker test. */
  get ciMessage(): string {
    const due = this.missing.filter((m) => !m.requirement.skipInCi);
    return (
      `CI is set and ${due.map((m) => `${m.requirement.name} is missing (${m.reason})`).join('; ')}. ` +
      `.ci/run should have provided it: ${due.map((m) => `${m.requirement.name}: ${m.requirement.provider}`).join('; ')}`
    );
  }

  /** `describe`, or a skipped `describe` beside the marker test. */
  get describe(): SuiteApi {
    return describe.skipIf(this.markMissing());
  }

  /** `it`, or a skipped `it` beside the marker test. */
  get it(): TestApi {
    return it.skipIf(this.markMissing());
  }

  /**
   * Registers the marker test in the suite being collected (nothing when all is present, or when it is
   * there already) and returns {@link skip}: `describe.skipIf(gate.markMissing())` is `gate.describe`.
   * Alone, for tests that exist only when the requirement does (one test per shared capture).
   */
  markMissing(): boolean {
    if (!this.skip) return false;
    const suite = TestRunner.getCurrentSuite();
    if (this.markedIn.has(suite)) return true;
    this.markedIn.add(suite);
    if (this.fails) {
      const message = this.ciMessage;
      it(this.title, () => {
        throw new Error(message);
      });
    } else {
      it.skip(this.title, () => {});
    }
    return true;
  }
}

/**
 * The gate for tests that need `requirements` (a string is an executable: {@link tool}). Probes each
 * now (collection time), so use it at the top of a test file or inside a `describe`.
 */
export function needs(...requirements: (Requirement | string)[]): Gate {
  const missing: Missing[] = [];
  for (const r of requirements) {
    const req = typeof r === 'string' ? tool(r) : r;
    const reason = req.missing();
    if (reason !== null) missing.push({ requirement: req, reason });
  }
  return new Gate(missing);
}
