/**
 * Errors of the store, in two families:
 * - `StoreError`: something the caller of this module must act on (a locked data directory, an
 *   unreachable server), with the context needed to act on it;
 * - `ClickHouseException`: a failure reported to an HTTP client exactly as a ClickHouse server
 *   reports it, so `@clickhouse/client` raises a `ClickHouseError` with the same `.code`/`.type`
 *   in both modes.
 */

export type ErrorContext = Record<string, string | number | boolean | undefined>;

export class StoreError extends Error {
  constructor(
    message: string,
    readonly context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/** ClickHouse error codes this module raises itself (names as in ClickHouse's ErrorCodes.cpp). */
export const ErrorCode = {
  BAD_ARGUMENTS: 36,
  NOT_IMPLEMENTED: 48,
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
