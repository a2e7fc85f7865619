#!/usr/bin/env -S node --max-semi-space-size=64
/**
 * The callscope command line: one command per file in bin/commands/, each with its own --help.
 * A 64 MiB young generation (the shebang's flag): a read's worth of SIP events and what the call
 * engine makes of them die young instead of being promoted; on a SIP-only capture `analyze` ran 1.8×
 * faster with it (docs/PERFORMANCE.md, "Calls"). V8's other settings: core/runtime.ts.
 */
import { readFileSync } from 'node:fs';
import { tuneRuntime } from '../core/runtime.js';
import type { Command } from './command.js';
import { alertsCommand } from './commands/alerts.js';
import { analyzeCommand } from './commands/analyze.js';
import { callsCommand } from './commands/calls.js';
import { captureCommand } from './commands/capture.js';
import { dashboardsCommand } from './commands/dashboards.js';
import { exportCommand } from './commands/export.js';
import { extractCommand } from './commands/extract.js';
import { generateCommand } from './commands/generate.js';
import { ingestCommand } from './commands/ingest.js';
import { kpisCommand } from './commands/kpis.js';
import { ladderCommand } from './commands/ladder.js';
import { runCommand } from './commands/run.js';
import { statsCommand } from './commands/stats.js';
import { storeCommand } from './commands/store.js';
import { UsageError } from './config.js';
import { describeFailure, EXIT_OK, EXIT_USAGE } from './errors.js';
import { COMMON_HELP, EXIT_CODES_HELP } from './flags.js';

const COMMANDS: readonly Command[] = [
  analyzeCommand,
  runCommand,
  statsCommand,
  callsCommand,
  kpisCommand,
  alertsCommand,
  ladderCommand,
  exportCommand,
  extractCommand,
  storeCommand,
  dashboardsCommand,
  captureCommand,
  ingestCommand,
  generateCommand,
];

const HELP = `callscope — see every call your VMs carry

Usage: callscope COMMAND [options]      callscope COMMAND --help      callscope --version

Commands:
${COMMANDS.map((c) => `  ${`callscope ${c.name}`.padEnd(20)} ${c.summary}`).join('\n')}

Settings come from flags, CALLSCOPE_* environment variables or a JSON file (--config); logs are JSON
lines on stderr (text on a terminal).

${COMMON_HELP}
${EXIT_CODES_HELP}`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    switch (name) {
      case undefined:
        process.stdout.write(HELP);
        return EXIT_USAGE;
      case 'help':
      case '--help':
      case '-h': {
        const topic = rest[0] === undefined ? undefined : COMMANDS.find((c) => c.name === rest[0]);
        if (rest[0] !== undefined && topic === undefined)
          throw new UsageError(`unknown command "${rest[0]}"`);
        process.stdout.write(topic?.help ?? HELP);
        return EXIT_OK;
      }
      case '--version':
      case '-v':
        process.stdout.write(`${version()}\n`);
        return EXIT_OK;
    }
    const command = COMMANDS.find((c) => c.name === name);
    if (command === undefined) throw new UsageError(`unknown command "${name}"`);
    return await command.run(rest);
  } catch (error) {
    const { code, text } = describeFailure(error, 'callscope');
    process.stderr.write(text);
    return code;
  }
}

tuneRuntime();
// A reader that went away (`| head`) ends the output, not the command: a run still stores what it read.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
});
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
