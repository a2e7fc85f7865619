/** Opening the store the flags name: a ClickHouse server (--clickhouse) or the embedded one (--data-dir). */
import { existsSync } from 'node:fs';
import type { Logger } from '../core/log.js';
import { DEFAULT_DATA_DIR, openStore, type Store } from '../ingest/store/client.js';
import type { Settings } from './config.js';
import { EXIT_NO_INPUT, type OperationalError } from './errors.js';

/** A read-only command named an embedded store that does not exist (a mistyped --data-dir). */
export class StoreMissingError extends Error implements OperationalError {
  readonly exitCode = EXIT_NO_INPUT;
  constructor(readonly dataDir: string) {
    super(
      `no store in ${dataDir}: check --data-dir (or CALLSCOPE_DATA_DIR), or fill it first with ` +
        `\`callscope run --pcap FILE --data-dir ${dataDir}\``,
    );
    this.name = 'StoreMissingError';
  }
}

/**
 * Opens the store the settings name and logs where (credentials redacted). `mustExist`: a command
 * that only reads refuses to create an embedded store.
 */
export async function storeFor(
  settings: Settings,
  logger: Logger,
  options: { mustExist?: boolean } = {},
): Promise<Store> {
  const clickhouseUrl = settings.string('clickhouse');
  const dataDir = settings.string('data-dir', DEFAULT_DATA_DIR);
  if (options.mustExist && clickhouseUrl === undefined && !existsSync(dataDir))
    throw new StoreMissingError(dataDir);
  const store = await openStore({
    clickhouseUrl,
    username: settings.string('clickhouse-user'),
    password: settings.string('clickhouse-password'),
    dataDir,
    logger,
  });
  logger.info('store opened', { mode: store.mode, url: store.displayUrl });
  return store;
}
