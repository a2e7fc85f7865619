/** What every callscope command is, and the prologue they share: flags parsed, --help, positionals. */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { Logger, LogLevel } from '../core/log.js';
import { Settings, UsageError } from './config.js';
import { loggerFor } from './flags.js';

export interface Command {
  name: string;
  /** One line for `callscope --help`. */
  summary: string;
  /** `callscope NAME --help`: usage, the options this command takes, the exit codes. */
  help: string;
  /** Runs with the arguments after the command name; resolves with the exit code. */
  run(argv: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses a command's flags and settings, or prints its help and returns null (--help). `files` is how
 * many positional arguments it takes: 0, 1 capture file, or at most one argument of the given name
 * (`{ optional: 'CALL-ID' }`).
 */
export function parseCommand<const O extends Options>(
  command: Command,
  argv: string[],
  options: O,
  files: 0 | 1 | { optional: string } = 0,
  service: (settings: Settings) => boolean = () => false,
) {
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  if ((values as { help?: boolean }).help) {
    process.stdout.write(command.help);
    return null;
  }
  if (typeof files === 'object') {
    if (positionals.length > 1) throw new UsageError(`${command.name} takes at most one ${files.optional}`);
  } else if (positionals.length !== files)
    throw new UsageError(
      files === 0
        ? `${command.name} takes no positional arguments`
        : `${command.name} takes exactly one capture file`,
    );
  const settings = new Settings(values as Record<string, string | boolean | undefined>);
  const defaultLevel: LogLevel = service(settings) ? 'info' : 'warn';
  const logger: Logger = loggerFor(settings, defaultLevel);
  return { values, file: positionals[0], settings, logger };
}
