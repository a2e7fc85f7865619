/** Opening the store the flags name: a ClickHouse server (--clickhouse) or the embedded one (--data-dir). */
import type { Logger } from '../core/log.js';
import { DEFAULT_DATA_DIR, openStore, type Store } from '../ingest/store/client.js';
import type { Settings } from './config.js';
import { databaseOf } from './flags.js';

/**
 * Opens the store the settings name and logs where (credentials redacted). The embedded store serves
 * callscope's database as its default. `mustExist`: a command that only reads refuses to create an
 * embedded store (a mistyped --data-dir is an error, exit 66).
 */
export async function storeFor(
  settings: Settings,
  logger: Logger,
  options: { mustExist?: boolean } = {},
): Promise<Store> {
  const store = await openStore({
    clickhouseUrl: settings.string('clickhouse'),
    username: settings.string('clickhouse-user'),
    password: settings.string('clickhouse-password'),
    dataDir: settings.string('data-dir', DEFAULT_DATA_DIR),
    defaultDatabase: databaseOf(settings),
    mustExist: options.mustExist,
    logger,
  });
  logger.info('store opened', { mode: store.mode, url: store.displayUrl });
  return store;
}
