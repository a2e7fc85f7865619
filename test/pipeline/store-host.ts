/**
 * A process that owns an embedded store and can take it down and bring it back on command, to stage
 * "ClickHouse unavailable" for a writer in another process (chDB serves one data directory per
 * process, and the test process already owns one).
 *
 *   node store-host.js DATA_DIR [PORT]
 *
 * stdin, one command a line:
 *   close  →  EmbeddedStore.close(): the port stops answering (ECONNREFUSED), the directory is released
 *   open   →  EmbeddedStore.start() again on the same directory and the same port
 *   quit   →  close (if open) and exit 0
 * stdout, one JSON object a line: {"event":"open","url","port","ms"} | {"event":"closed","ms"} |
 * {"event":"error","message"}.
 */
import { createInterface } from 'node:readline';
import { createLogger, type LogLevel } from '../../core/log.js';
import { EmbeddedStore } from '../../ingest/store/embedded.js';

const [dataDir, portArg] = process.argv.slice(2);
if (!dataDir) {
  process.stderr.write('usage: store-host DATA_DIR [PORT]\n');
  process.exit(64);
}
const logger = createLogger({ level: (process.env.CALLSCOPE_TEST_LOG as LogLevel) || 'warn' });
let port = Number(portArg ?? 0);
let store: EmbeddedStore | null = null;

const say = (o: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};

async function open(): Promise<void> {
  if (store) {
    say({ event: 'open', url: store.url, port, ms: 0 });
    return;
  }
  const t0 = performance.now();
  store = await EmbeddedStore.start({ dataDir, port, logger });
  port = Number(new URL(store.url).port);
  say({ event: 'open', url: store.url, port, ms: Math.round(performance.now() - t0) });
}

async function close(): Promise<void> {
  const t0 = performance.now();
  const s = store;
  store = null;
  await s?.close();
  say({ event: 'closed', ms: Math.round(performance.now() - t0) });
}

let chain: Promise<void> = Promise.resolve();
const run = (f: () => Promise<void>) => {
  chain = chain.then(f).catch((e) => say({ event: 'error', message: (e as Error).message }));
};

const quit = () =>
  run(async () => {
    await close();
    process.exit(0);
  });

createInterface({ input: process.stdin }).on('line', (line) => {
  const command = line.trim();
  if (command === 'open') run(open);
  else if (command === 'close') run(close);
  else if (command === 'quit') quit();
  else say({ event: 'error', message: `unknown command ${JSON.stringify(command)}` });
});
process.stdin.on('end', quit);
process.on('SIGTERM', quit);
run(open);
