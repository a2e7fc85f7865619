/**
 * Errors of the store, in two families:
 * - `StoreError`: something the caller of this module must act on (a locked data directory, an
 *   unreachable server), with the context needed to act on it, a stable `code` and the exit status
 *   a command should end with;
 * - `ClickHouseException`: a failure reported to an HTTP client exactly as a ClickHouse server
 *   reports it, so `@clickhouse/client` raises a `ClickHouseError` with the same `.code`/`.type`
 *   in both modes.
 */

export type ErrorContext = Record<string, string | number | boolean | undefined>;

/**
 * sysexits(3) statuses for store failures, as the commands already use them (64 usage, 69
 * unavailable): a command ending on a StoreError exits with its `exitCode`.
 */
export const StoreExit = {
  FAILURE: 1,
  /** EX_USAGE: a store setting that cannot work (a --clickhouse URL the client refuses). */
  USAGE: 64,
  /** EX_NOINPUT: the data directory a read-only command was given holds no store. */
  NO_INPUT: 66,
  /** EX_UNAVAILABLE: the ClickHouse server does not answer. */
  UNAVAILABLE: 69,
  /** EX_TEMPFAIL: another process holds the data directory or the port; retrying after it ends succeeds. */
  TEMP_FAIL: 75,
} as const;

export type StoreErrorCode =
  | 'STORE_FAILED'
  | 'STORE_NOT_FOUND'
  | 'STORE_LOCKED'
  | 'STORE_PORT_IN_USE'
  | 'STORE_UNREACHABLE'
  | 'STORE_CONFIG';

/**
 * A store failure the caller must act on. Its message is one line naming the cause and, for the
 * operational ones (subclasses), the remedy: a command prints it as is, without a stack trace.
 */
export class StoreError extends Error {
  /** Stable identifier, for programs and tests. */
  readonly code: StoreErrorCode = 'STORE_FAILED';
  /** The exit status a command should end with. */
  readonly exitCode: number = StoreExit.FAILURE;

  constructor(
    message: string,
    readonly context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/** A read-only command was pointed at a directory that holds no embedded store; nothing was created. */
export class StoreNotFoundError extends StoreError {
  override readonly code = 'STORE_NOT_FOUND';
  override readonly exitCode = StoreExit.NO_INPUT;

  constructor(
    readonly dataDir: string,
    /** What is there instead: nothing, something that is not a directory, a directory without a store. */
    readonly found: 'nothing' | 'not a directory' | 'no store',
  ) {
    const what =
      found === 'nothing'
        ? 'no such directory'
        : found === 'not a directory'
          ? 'not a directory'
          : 'no store in it';
    super(
      `no callscope store at ${dataDir} (${what}): run \`callscope run --pcap FILE --data-dir ${dataDir}\` first, or check --data-dir`,
      { dataDir, found },
    );
    this.name = 'StoreNotFoundError';
  }
}

/** Who holds a data directory: another process (its pid and URL when known), or this one. */
export interface LockHolder {
  pid?: number;
  /** The URL the holder serves the store on, when it published one. */
  url?: string;
}

/** The data directory is held by another process (chDB locks it), or already open in this one. */
export class StoreLockedError extends StoreError {
  override readonly code = 'STORE_LOCKED';
  override readonly exitCode = StoreExit.TEMP_FAIL;

  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder,
    options?: { cause?: unknown },
  ) {
    super(lockedMessage(dataDir, holder), { dataDir, pid: holder.pid, url: holder.url }, options);
    this.name = 'StoreLockedError';
  }
}

function lockedMessage(dataDir: string, holder: LockHolder): string {
  if (holder.pid === process.pid) {
    return `data directory ${dataDir} is already open in this process: close that store first`;
  }
  const who = holder.pid ? `another callscope process (pid ${holder.pid})` : 'another callscope process';
  const where = holder.url ? `: --clickhouse ${holder.url}` : ' (`callscope store` prints its URL)';
  return `data directory ${dataDir} is in use by ${who}; stop it, or point --clickhouse at the store it serves${where}`;
}

/** The port to serve the embedded store on is taken. */
export class StorePortInUseError extends StoreError {
  override readonly code = 'STORE_PORT_IN_USE';
  override readonly exitCode = StoreExit.TEMP_FAIL;

  constructor(
    readonly port: number,
    options?: { cause?: unknown },
  ) {
    super(
      `port ${port} on 127.0.0.1 is already in use (another callscope store or a ClickHouse server?); choose another with --port, or --port 0 for any free one`,
      { port },
      options,
    );
    this.name = 'StorePortInUseError';
  }
}

/** A ClickHouse server that does not answer. `url` must already be redacted. */
export class StoreUnreachableError extends StoreError {
  override readonly code = 'STORE_UNREACHABLE';
  override readonly exitCode = StoreExit.UNAVAILABLE;

  constructor(
    readonly url: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `ClickHouse at ${url} does not answer (${detail}); check --clickhouse and that the server is running`,
      { url },
      options,
    );
    this.name = 'StoreUnreachableError';
  }
}

/** A ClickHouse URL (or option) the client refuses before connecting. `url` must be redacted. */
export class StoreConfigError extends StoreError {
  override readonly code = 'STORE_CONFIG';
  override readonly exitCode = StoreExit.USAGE;

  constructor(
    readonly url: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot use --clickhouse ${url}: ${detail}`, { url }, options);
    this.name = 'StoreConfigError';
  }
}

/** ClickHouse error codes this module raises itself (names as in ClickHouse's ErrorCodes.cpp). */
export const ErrorCode = {
  BAD_ARGUMENTS: 36,
  NOT_IMPLEMENTED: 48,
  LOGICAL_ERROR: 49,
  SYNTAX_ERROR: 62,
  READONLY: 164,
  TOO_MANY_SIMULTANEOUS_QUERIES: 202,
  ABORTED: 236,
  CANNOT_DECOMPRESS: 271,
  LIMIT_EXCEEDED: 290,
  BAD_QUERY_PARAMETER: 457,
  ACCESS_DENIED: 497,
  UNKNOWN_EXCEPTION: 1002,
} as const;

export type ErrorCodeName = keyof typeof ErrorCode;

/** A failure to be answered the ClickHouse way: `Code: N. DB::Exception: message. (NAME)`. */
export class ClickHouseException extends Error {
  constructor(
    readonly codeName: ErrorCodeName,
    message: string,
    /** HTTP status: 500 for engine failures, 4xx for requests this server refuses to run. */
    readonly httpStatus = 500,
  ) {
    super(message);
    this.name = 'ClickHouseException';
  }

  get code(): number {
    return ErrorCode[this.codeName];
  }

  /** The body text, without the version suffix. */
  toClickHouseText(): string {
    const message = this.message.replace(/\.$/, '');
    return `Code: ${this.code}. DB::Exception: ${message}. (${this.codeName})`;
  }
}

export interface ExceptionReply {
  status: number;
  code: number;
  /** Body, newline-terminated, ending in `(version X)` like a server's. */
  body: string;
}

const CODE_PREFIX = /^Code: (\d+)\. /;

/**
 * Turns anything thrown while serving a request into the reply a ClickHouse server would send.
 * chDB's own errors already read `Code: N. DB::Exception: ... (NAME)` (sometimes nested twice);
 * they pass through unchanged apart from the version suffix the client's parser tolerates.
 */
export function exceptionReply(error: unknown, version: string): ExceptionReply {
  let status = 500;
  let code: number;
  let text: string;
  if (error instanceof ClickHouseException) {
    status = error.httpStatus;
    code = error.code;
    text = error.toClickHouseText();
  } else {
    const message = error instanceof Error ? error.message : String(error);
    const chdbCode = (error as { clickhouseCode?: unknown } | null)?.clickhouseCode;
    const parsed = CODE_PREFIX.exec(message);
    if (parsed) {
      code = Number(parsed[1]);
      text = message.trimEnd();
    } else {
      // Not an engine exception (a closed session, a bug here): keep the message, give it the
      // code ClickHouse uses for exceptions it cannot classify.
      code = typeof chdbCode === 'number' ? chdbCode : ErrorCode.UNKNOWN_EXCEPTION;
      const name = code === ErrorCode.UNKNOWN_EXCEPTION ? 'UNKNOWN_EXCEPTION' : 'CHDB_ERROR';
      text = `Code: ${code}. DB::Exception: ${message.replace(/\.$/, '')}. (${name})`;
    }
  }
  const body = /\(version [^)]*\)$/.test(text) ? text : `${text} (version ${version})`;
  return { status, code, body: `${body}\n` };
}
