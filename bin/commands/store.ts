/** `callscope store`: serve the embedded store over the ClickHouse HTTP interface. */
import { readFileSync } from 'node:fs';
import { DEFAULT_DATA_DIR } from '../../ingest/store/client.js';
import { EmbeddedStore } from '../../ingest/store/embedded.js';
import { type Command, parseCommand } from '../command.js';
import { UsageError } from '../config.js';
import { EXIT_OK } from '../errors.js';
import { COMMON, COMMON_HELP, databaseOf, EXIT_CODES_HELP, statsIntervalOf } from '../flags.js';
import { stopOnSignals } from '../live.js';

/**
 * Started through `npx`/`npm exec`, this process is the grandchild of npm (npm exec → sh → node), and
 * killing npm's process (the PID a shell's `&` reports) does not reach it: without a watch it would
 * keep serving, orphaned. It follows the life of npm and the shell between instead. Started directly
 * it does not: a store left running on purpose survives the shell that started it.
 */
function whenOrphaned(onOrphaned: () => void): () => void {
  if (process.env.npm_command !== 'exec') return () => {};
  const watched = npmAncestors();
  const timer = setInterval(() => {
    if (watched.some((pid) => !alive(pid))) onOrphaned();
  }, 500);
  timer.unref();
  return () => clearInterval(timer);
}

/** This process's ancestors up to and including the `npm exec` that started it (Linux /proc). */
function npmAncestors(): number[] {
  const pids: number[] = [];
  let pid = process.ppid;
  for (let depth = 0; depth < 4 && pid > 1; depth++) {
    pids.push(pid);
    let stat: string;
    let cmdline: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      break;
    }
    if (/(^|\/)npm(\0| )|npm exec|npx-cli/.test(cmdline)) break;
    // The fields after the command name (which may hold spaces) start with the state, then the ppid.
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return pids.length > 0 ? pids : [process.ppid];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export const storeCommand: Command = {
  name: 'store',
  summary: 'serve the embedded store over the ClickHouse HTTP interface on 127.0.0.1',
  help: `Usage: callscope store [--data-dir DIR] [--port 8123] [--json]

Serve the embedded store (chDB) in --data-dir over the ClickHouse HTTP interface on 127.0.0.1, for
curl, @clickhouse/client, Grafana's ClickHouse plugin (Protocol HTTP, server 127.0.0.1;
docs/GRAFANA-EMBEDDED.md) or another callscope process (--clickhouse URL). Its
default database is callscope's, so \`SHOW TABLES\` lists callscope's tables. Runs until SIGINT or
SIGTERM; started with npx, it also stops when npx is killed.

  --data-dir DIR         embedded store directory (${DEFAULT_DATA_DIR})  env CALLSCOPE_DATA_DIR
  --port N               TCP port on 127.0.0.1 (8123; 0 picks a free one)  env CALLSCOPE_PORT
  --database NAME        the database served as the default (callscope)    env CALLSCOPE_DATABASE

${COMMON_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(
      this,
      argv,
      {
        ...COMMON,
        'data-dir': { type: 'string' },
        port: { type: 'string' },
        database: { type: 'string' },
      },
      0,
      () => true,
    );
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger } = parsed;
    const port = settings.number('port', 8123);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UsageError(`--port must be 0..65535, got ${port}`);
    const store = await EmbeddedStore.start({
      dataDir: settings.string('data-dir', DEFAULT_DATA_DIR),
      port,
      defaultDatabase: databaseOf(settings),
      logger,
    });
    const stop = stopOnSignals(logger);
    const unwatch = whenOrphaned(() => {
      logger.info('npx that started the store is gone: stopping');
      process.kill(process.pid, 'SIGTERM');
    });
    try {
      process.stdout.write(
        values.json
          ? `${JSON.stringify({ url: store.url, dataDir: store.dataDir, pid: process.pid })}\n`
          : `callscope store: ${store.dataDir} served at ${store.url} (ClickHouse HTTP interface), pid ${process.pid}; Ctrl-C stops\n`,
      );
      const interval = statsIntervalOf(settings);
      const ticker =
        interval > 0
          ? setInterval(
              () => logger.info('statistics', { store: store.dataDir, ...store.httpStats }),
              interval,
            )
          : null;
      ticker?.unref();
      await new Promise<void>((resolve) =>
        stop.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      if (ticker !== null) clearInterval(ticker);
    } finally {
      unwatch();
      stop.dispose();
      await store.close();
    }
    return EXIT_OK;
  },
};
