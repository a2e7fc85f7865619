/** Structured logging: JSON lines for machines, short text lines for a person at a terminal. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'json' | 'text';
  write?: (line: string) => void;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = RANK[options.level ?? 'info'];
  const format = options.format ?? 'json';
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    if (RANK[level] < threshold) return;
    if (format === 'json') {
      write(`${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields })}\n`);
    } else {
      const extra = fields
        ? Object.entries(fields)
            .filter(([, v]) => v !== undefined)
            .map(([k, v]) => `${k}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : v}`)
            .join(' ')
        : '';
      write(`${level}: ${message}${extra ? ` ${extra}` : ''}\n`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

export const silentLogger: Logger = createLogger({ level: 'silent' });

/**
 * Logs the first `perKind` occurrences of each kind of problem and counts the rest, so a hostile
 * capture cannot flood the log; `summary()` reports what was suppressed.
 */
export class ProblemLog {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly logger: Logger,
    private readonly perKind = 20,
  ) {}

  report(kind: string, message: string, fields: LogFields, level: 'info' | 'warn' = 'warn'): void {
    const n = (this.seen.get(kind) ?? 0) + 1;
    this.seen.set(kind, n);
    if (n <= this.perKind) this.logger[level](message, { kind, ...fields });
  }

  summary(fields: LogFields = {}): void {
    for (const [kind, n] of this.seen) {
      if (n > this.perKind) {
        this.logger.warn('further problems of this kind not logged', {
          kind,
          suppressed: n - this.perKind,
          ...fields,
        });
      }
    }
  }

  counts(): Record<string, number> {
    return Object.fromEntries(this.seen);
  }
}
