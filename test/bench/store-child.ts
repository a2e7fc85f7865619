/**
 * The peer of the store benchmark (test/bench/store.ts), in a process of its own: chDB's best insert
 * of the very Native blocks our writer makes (each written to a file, then `INSERT INTO t (…) FROM
 * INFILE '…' FORMAT Native`, file writes timed too), into a fresh data directory that `migrate`
 * prepared. chDB binds one data directory per process, and a process of its own also gives the peer
 * a CPU figure of its own. (chDB's raw `Session.insert` takes text formats only.)
 *
 *   node dist/test/bench/store-child.js JOB.json   → one JSON line on stdout (PeerResult)
 *
 * JOB.json: { dataDir, blockFile, runs, batches: [{ table, offset, length, rows, token }] }; the
 * batches are slices of blockFile, inserted in order with the settings the writer sends
 * (insert_deduplicate = 1, its token, async_insert = 0). Every run inserts into a database of its
 * own, so a run's tokens are never deduplicated against an earlier run's.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Session } from 'chdb';
import { tuneRuntime } from '../../core/runtime.js';
import { migrate } from '../../ingest/schema/migrate.js';
import { columnNames, DATA_TABLES } from '../../ingest/schema/tables.js';
import { openStore } from '../../ingest/store/client.js';

export interface PeerBatch {
  /** Event table name (sip_messages, media_reports, rtcp_reports). */
  table: string;
  offset: number;
  length: number;
  rows: number;
  token: string;
}

export interface PeerJob {
  dataDir: string;
  blockFile: string;
  runs: number;
  batches: PeerBatch[];
}

export type PeerMode = 'infile';

export interface PeerRun {
  mode: PeerMode;
  seconds: number;
  cpuSeconds: number;
  rows: number;
  /** Rows the table holds afterwards (count() FINAL). */
  stored: number;
}

export interface PeerResult {
  engine: string;
  runs: PeerRun[];
  error?: string;
}

/** The writer sends Native blocks; chDB's raw insert takes text formats only, so FROM INFILE is the peer. */
const MODES: readonly PeerMode[] = ['infile'];

function sqlString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

async function runJob(job: PeerJob): Promise<PeerResult> {
  const data = readFileSync(job.blockFile);
  const batches = job.batches.map((b) => ({ ...b, data: data.subarray(b.offset, b.offset + b.length) }));
  const databases = (mode: PeerMode, run: number) => `peer_${mode}_${run}`;
  // The schema exactly as callscope makes it: migrate through the embedded store, then let it go.
  const store = await openStore({ dataDir: job.dataDir });
  const version = store.embedded?.version ?? '?';
  try {
    for (let run = 0; run < job.runs; run++) {
      for (const mode of MODES) await migrate(store.client, { database: databases(mode, run), ttlDays: 0 });
    }
  } finally {
    await store.close();
  }
  const session = new Session(job.dataDir);
  const runs: PeerRun[] = [];
  const file = join(job.dataDir, 'peer-batch.native');
  try {
    const spec = new Map(DATA_TABLES.map((t) => [t.name, columnNames(t)]));
    for (let run = 0; run < job.runs; run++) {
      for (const mode of MODES) {
        const database = databases(mode, run);
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        let rows = 0;
        for (const b of batches) {
          const columns = spec.get(b.table) ?? [];
          writeFileSync(file, b.data);
          await session.queryAsync(
            `INSERT INTO ${database}.${b.table} (${columns.join(', ')}) FROM INFILE ${sqlString(file)} ` +
              `SETTINGS insert_deduplicate = 1, insert_deduplication_token = ${sqlString(b.token)}, async_insert = 0 ` +
              'FORMAT Native',
          );
          rows += b.rows;
        }
        const seconds = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        let stored = 0;
        for (const table of new Set(batches.map((b) => b.table))) {
          const r = await session.queryAsync(`SELECT count() FROM ${database}.${table} FINAL`, {
            format: 'TabSeparated',
          });
          stored += Number(r.text().trim());
        }
        // Merges of this run's parts must not run on the CPU of the next one.
        await session.queryAsync(`DROP DATABASE ${database} SYNC`);
        runs.push({ mode, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, rows, stored });
      }
    }
  } finally {
    session.close();
    rmSync(file, { force: true });
  }
  return { engine: version, runs };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  tuneRuntime();
  const job = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as PeerJob;
  runJob(job).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      process.stdout.write(`${JSON.stringify({ engine: '?', runs: [], error: message })}\n`);
      process.exitCode = 1;
    },
  );
}
