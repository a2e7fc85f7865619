/** What every callscope command shares: exit codes, common flags, logger, capture id, media options. */
import type { AnalyzeOptions } from '../capture/analyze.js';
import type { MediaTrackerOptions } from '../capture/rtp/media.js';
import { createLogger, type Logger, type LogLevel } from '../core/log.js';
import { type Settings, UsageError } from './config.js';
import { ProgressLine } from './progress.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_UNUSABLE_INPUT = 2;
export const EXIT_USAGE = 64;
/** A service named on the command line does not answer (sysexits EX_UNAVAILABLE): OVSDB, vswitchd. */
export const EXIT_UNAVAILABLE = 69;

export const COMMON = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'node-name': { type: 'string' },
  'capture-id': { type: 'string' },
  config: { type: 'string' },
} as const;

/** HEP carries the capture agent id as an unsigned 32-bit number. */
export function captureIdOf(settings: Settings): number {
  const id = settings.number('capture-id', 0);
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff)
    throw new UsageError(`--capture-id must be 0..4294967295, got ${id}`);
  return id;
}

export function loggerFor(settings: Settings) {
  const level = settings.string('log-level', 'warn') as LogLevel;
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(level))
    throw new UsageError(`unknown log level "${level}"`);
  const format = settings.string('log-format', process.stderr.isTTY ? 'text' : 'json');
  if (format !== 'json' && format !== 'text') throw new UsageError(`unknown log format "${format}"`);
  return createLogger({ level, format });
}

export function mediaOptions(settings: Settings): Omit<MediaTrackerOptions, 'onReport' | 'onProblem'> {
  const heuristic = settings.string('rtp-heuristic', 'on');
  if (heuristic !== 'on' && heuristic !== 'off') {
    throw new UsageError(`--rtp-heuristic expects on or off, got "${heuristic}"`);
  }
  const seconds = (name: string, fallback: number): number => {
    const n = settings.number(name, fallback);
    if (!(n > 0)) throw new UsageError(`--${name} must be a positive number of seconds, got ${n}`);
    return n * 1000;
  };
  return {
    heuristic: heuristic === 'on',
    reportIntervalMs: seconds('report-interval', 10),
    idleTimeoutMs: seconds('rtp-idle-timeout', 60),
  };
}

/** Flags of every command that decodes captures: progress display and media options. */
export const MEDIA_FLAGS = {
  'no-progress': { type: 'boolean' },
  'rtp-heuristic': { type: 'string' },
  'report-interval': { type: 'string' },
  'rtp-idle-timeout': { type: 'string' },
} as const;

/** A progress line on a terminal's stderr unless --no-progress. */
export function progressFor(label: string, values: { 'no-progress'?: boolean }): ProgressLine {
  return new ProgressLine(label, process.stderr, Boolean(process.stderr.isTTY) && !values['no-progress']);
}

/** What every decoding command (analyze, run, capture) gives its capture pipeline. */
export function pipelineOptionsOf(
  settings: Settings,
  logger: Logger,
  vms: { attribution: AnalyzeOptions['vms'] } | null,
): Pick<AnalyzeOptions, 'logger' | 'nodeName' | 'captureId' | 'media' | 'vms'> {
  return {
    logger,
    nodeName: settings.string('node-name', ''),
    captureId: captureIdOf(settings),
    media: mediaOptions(settings),
    vms: vms?.attribution,
  };
}
