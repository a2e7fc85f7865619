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

export interface ProblemLogOptions {
  /** Lines of one kind logged per interval (default 20); the rest are counted. */
  perKind?: number;
  /** The interval, ms (default 60,000): an attack days later is logged again. */
  intervalMs?: number;
}

/**
 * Logs at most `perKind` problems of each kind per interval and counts the rest, so that a hostile
 * capture cannot flood the log, and an attack after a quiet spell is still seen. When an interval ends
 * with problems suppressed, one line per kind says how many (a timer, unref'd, so it never keeps the
 * process alive); `summary()` says it for the interval under way. `counts()` are totals since start.
 */
export class ProblemLog {
  private readonly totals = new Map<string, number>();
  /** This interval's lines per kind. */
  private readonly window = new Map<string, { logged: number; suppressed: number; fields: LogFields }>();
  private readonly perKind: number;
  private readonly intervalMs: number;
  private windowStart = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly logger: Logger,
    options: ProblemLogOptions | number = {},
  ) {
    const o = typeof options === 'number' ? { perKind: options } : options;
    this.perKind = o.perKind ?? 20;
    this.intervalMs = o.intervalMs ?? 60_000;
  }

  report(kind: string, message: string, fields: LogFields, level: 'info' | 'warn' = 'warn'): void {
    this.totals.set(kind, (this.totals.get(kind) ?? 0) + 1);
    const now = Date.now();
    if (now - this.windowStart >= this.intervalMs) this.endWindow(now);
    let w = this.window.get(kind);
    if (w === undefined) {
      w = { logged: 0, suppressed: 0, fields: {} };
      this.window.set(kind, w);
    }
    if (w.logged < this.perKind) {
      w.logged++;
      this.logger[level](message, { kind, ...fields });
      return;
    }
    if (w.suppressed++ === 0) {
      // Context for the suppressed-count line: where the first suppressed one came from.
      w.fields = fields;
      this.arm(now);
    }
  }

  /** Says how many problems of each kind the interval under way suppressed (at the end of a run). */
  summary(fields: LogFields = {}): void {
    this.endWindow(Date.now(), fields);
  }

  /** Problems reported per kind since the start. */
  counts(): Record<string, number> {
    return Object.fromEntries(this.totals);
  }

  private arm(now: number): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.endWindow(Date.now());
      },
      Math.max(0, this.windowStart + this.intervalMs - now),
    );
    this.timer.unref();
  }

  private endWindow(now: number, extra: LogFields = {}): void {
    for (const [kind, w] of this.window) {
      if (w.suppressed > 0)
        this.logger.warn('more problems of this kind, not logged one by one', {
          kind,
          suppressed: w.suppressed,
          seconds: Math.round(this.intervalMs / 1000),
          total: this.totals.get(kind),
          ...w.fields,
          ...extra,
        });
    }
    this.window.clear();
    this.windowStart = now;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
