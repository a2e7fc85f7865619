/**
 * Client for ovs-vswitchd's unixctl control socket (what `ovs-appctl` talks to): JSON-RPC 1.0 where
 * the method is the command, params are strings, and result and error are both strings.
 *
 * Each call opens its own short connection and, unless a socket path was given, locates the socket
 * again from the pidfile: a restarted vswitchd has a new pid and therefore a new socket name.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JsonRpcConnection, JsonRpcRemoteError } from './ovsdb/jsonrpc.js';

export const DEFAULT_OVS_RUNDIR = '/var/run/openvswitch';

export interface UnixctlOptions {
  /** Explicit control socket path; otherwise located through the pidfile in `rundir`. */
  socketPath?: string;
  /** Default `$OVS_RUNDIR`, else `/var/run/openvswitch`. */
  rundir?: string;
  /** Daemon whose socket to locate. Default `ovs-vswitchd`. */
  program?: string;
  /** Reply timeout per call. Default 10 s. */
  timeoutMs?: number;
}

export interface FdbEntry {
  /** As printed: an OpenFlow port number (`"1"`) or a name such as `"LOCAL"`. */
  port: string;
  vlan: number;
  /** Lower-case `aa:bb:cc:dd:ee:ff`. */
  mac: string;
  /** Seconds since last seen; null for static entries. */
  ageSec: number | null;
}

export interface OvsVersion {
  /** The reply as printed, trimmed: `ovs-vswitchd (Open vSwitch) 3.1.0`. */
  text: string;
  /** `3.1.0`, or null if the text has no version number. */
  number: string | null;
}

/** The daemon answered with an error, or the socket could not be reached. */
export class UnixctlError extends Error {
  constructor(
    readonly socketPath: string,
    readonly command: string,
    readonly args: string[],
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${socketPath}: ${[command, ...args].join(' ')}: ${message}`, options);
    this.name = 'UnixctlError';
  }
}

/** `<rundir>/<program>.<pid>.ctl`, the pid read from `<rundir>/<program>.pid`. */
export function locateUnixctlSocket(options: { rundir?: string; program?: string } = {}): string {
  const rundir = options.rundir ?? process.env.OVS_RUNDIR ?? DEFAULT_OVS_RUNDIR;
  const program = options.program ?? 'ovs-vswitchd';
  const pidfile = join(rundir, `${program}.pid`);
  let text: string;
  try {
    text = readFileSync(pidfile, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot locate ${program}'s control socket: cannot read ${pidfile}: ${(err as Error).message}`,
    );
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) {
    throw new Error(
      `cannot locate ${program}'s control socket: ${pidfile} holds no pid (${JSON.stringify(text.slice(0, 40))})`,
    );
  }
  return join(rundir, `${program}.${pid}.ctl`);
}

export class UnixctlClient {
  private readonly options: UnixctlOptions;
  /** `fdb/show` lines skipped because they did not parse, over every call. */
  fdbBadLines = 0;

  /** `new UnixctlClient('/path/to.ctl')` or with options (locates the socket per call). */
  constructor(options: UnixctlOptions | string = {}) {
    this.options = typeof options === 'string' ? { socketPath: options } : options;
  }

  /** The socket the next call will use. */
  get socketPath(): string {
    return this.options.socketPath ?? locateUnixctlSocket(this.options);
  }

  /** Runs `command args...`; resolves with the reply text, rejects with {@link UnixctlError}. */
  async call(command: string, args: string[] = []): Promise<string> {
    let path: string;
    try {
      path = this.socketPath;
    } catch (err) {
      throw new UnixctlError(
        this.options.rundir ?? process.env.OVS_RUNDIR ?? DEFAULT_OVS_RUNDIR,
        command,
        args,
        (err as Error).message,
        { cause: err },
      );
    }
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    let conn: JsonRpcConnection;
    try {
      conn = await JsonRpcConnection.connect(
        { kind: 'unix', path },
        { connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs },
      );
    } catch (err) {
      throw new UnixctlError(
        path,
        command,
        args,
        `cannot connect: ${stripPrefix((err as Error).message, path)}`,
        { cause: err },
      );
    }
    // Protocol errors also reject the request (or it times out); the event only needs a listener.
    conn.on('protocolError', () => undefined);
    try {
      const result = await conn.request(command, args);
      if (typeof result !== 'string') {
        throw new UnixctlError(
          path,
          command,
          args,
          `unexpected non-string result ${JSON.stringify(result).slice(0, 100)}`,
        );
      }
      return result;
    } catch (err) {
      if (err instanceof UnixctlError) throw err;
      if (err instanceof JsonRpcRemoteError) {
        const text = typeof err.remote === 'string' ? err.remote.trim() : JSON.stringify(err.remote);
        throw new UnixctlError(path, command, args, `server returned an error: ${text}`, { cause: err });
      }
      throw new UnixctlError(path, command, args, stripPrefix((err as Error).message, path), { cause: err });
    } finally {
      conn.close();
    }
  }

  async version(): Promise<OvsVersion> {
    const text = (await this.call('version')).trim();
    return { text, number: /\b(\d+\.\d+\.\d+)\b/.exec(text)?.[1] ?? null };
  }

  /** Drops cached datapath flows so new or deleted mirrors take effect at once. */
  async revalidatorPurge(): Promise<void> {
    await this.call('revalidator/purge');
  }

  /**
   * The bridge's MAC learning table. Lines that do not parse are skipped and counted
   * ({@link fdbBadLines}); {@link fdbTable} returns them with the entries.
   */
  async fdbShow(bridge: string): Promise<FdbEntry[]> {
    return (await this.fdbTable(bridge)).entries;
  }

  /** `fdb/show` with the count (and first example) of the lines that did not parse. */
  async fdbTable(bridge: string): Promise<FdbTable> {
    const table = parseFdbTable(await this.call('fdb/show', [bridge]));
    this.fdbBadLines += table.badLines;
    return table;
  }
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

export interface FdbTable {
  entries: FdbEntry[];
  /** Lines skipped because they did not parse. */
  badLines: number;
  /** Why the first skipped line was skipped (line number and text), or null. */
  firstBadLine: string | null;
}

/**
 * Parses `fdb/show` output: a header ` port  VLAN  MAC                Age`, then one row per entry
 * (`%5s  %4d  MAC  %3d`, the age printed as `static` for static entries). A line that does not fit
 * is skipped and counted: one odd line does not lose the rest of the table.
 */
export function parseFdbTable(text: string): FdbTable {
  const entries: FdbEntry[] = [];
  let badLines = 0;
  let firstBadLine: string | null = null;
  const lines = text.split('\n');
  const bad = (i: number, raw: string, why: string) => {
    badLines++;
    firstBadLine ??= `fdb/show line ${i + 1} ${JSON.stringify(raw.slice(0, 200))}: ${why}`;
  };
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const line = raw.trim();
    if (!line || /^port\s+VLAN\s+MAC\s+Age$/i.test(line)) continue;
    const f = line.split(/\s+/);
    if (f.length !== 4) {
      bad(i, raw, `expected 4 columns (port VLAN MAC Age), got ${f.length}`);
      continue;
    }
    const [port, vlanText, mac, ageText] = f;
    let why: string | null = null;
    if (!/^\d{1,4}$/.test(vlanText)) why = `VLAN ${JSON.stringify(vlanText)} is not a number`;
    else if (!MAC_RE.test(mac)) why = `MAC ${JSON.stringify(mac)} is not a MAC address`;
    else if (ageText !== 'static' && !/^\d{1,15}$/.test(ageText))
      why = `Age ${JSON.stringify(ageText)} is neither a number nor "static"`;
    if (why !== null) {
      bad(i, raw, why);
      continue;
    }
    const ageSec = ageText === 'static' ? null : Number(ageText);
    entries.push({ port, vlan: Number(vlanText), mac: mac.toLowerCase(), ageSec });
  }
  return { entries, badLines, firstBadLine };
}

/** The entries of {@link parseFdbTable} (lines that do not parse are skipped). */
export function parseFdbShow(text: string): FdbEntry[] {
  return parseFdbTable(text).entries;
}

function stripPrefix(message: string, path: string): string {
  for (const p of [`unix:${path}: `, `${path}: `]) if (message.startsWith(p)) return message.slice(p.length);
  return message;
}
