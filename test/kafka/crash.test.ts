/**
 * A consumer killed with SIGKILL in the middle of its work, then restarted on the same file store:
 * the file ends up holding every event, and the only repeats are those of the one chunk that was
 * written but not yet committed when the process died (the store drops them by event id).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createKafka } from '../../ingest/kafka/client.js';
import { EventProducer } from '../../ingest/kafka/producer.js';
import { KAFKA, needs, REPO_ROOT, removeTmpDir, tmpDir } from '../oracle/tools.js';
import {
  eventId,
  type KafkaTarget,
  startKafkaTarget,
  synthesizeEvents,
  testLogger,
  waitFor,
} from './fixtures.js';

const logger = testLogger();

/**
 * Compiles the child script (and what it imports) with the project's TypeScript into a cache
 * directory inside node_modules, where Node finds kafkajs by walking up.
 */
function compileChild(): string {
  const outDir = join(REPO_ROOT, 'node_modules', '.cache', 'callscope-kafka-child');
  mkdirSync(outDir, { recursive: true });
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(
    process.execPath,
    [
      tsc,
      '--outDir',
      outDir,
      '--rootDir',
      REPO_ROOT,
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--lib',
      'es2023',
      '--types',
      'node',
      '--strict',
      '--skipLibCheck',
      '--esModuleInterop',
      join(REPO_ROOT, 'test', 'kafka', 'consume-to-file.ts'),
    ],
    { stdio: 'pipe' },
  );
  writeFileSync(join(outDir, 'package.json'), '{"type":"module"}\n');
  return join(outDir, 'test', 'kafka', 'consume-to-file.js');
}

interface Line {
  id: string;
  chunk: string;
  pid: number;
}

function readLines(file: string): Line[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Line);
}

interface Child {
  child: ChildProcess;
  started: Promise<void>;
  /** Called with the running total on each "wrote N" line. */
  onWrote: ((total: number) => void) | null;
}

function startChild(script: string, args: string[]): Child {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const handle: Child = { child, started: Promise.resolve(), onWrote: null };
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const started = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      let nl = out.indexOf('\n');
      while (nl >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line === 'started') resolve();
        const m = /^wrote (\d+)$/.exec(line);
        if (m) handle.onWrote?.(Number(m[1]));
        nl = out.indexOf('\n');
      }
    });
    child.on('exit', (code, signal) =>
      reject(new Error(`consumer child exited early (code ${code}, signal ${signal}): ${err}`)),
    );
  });
  started.catch(() => undefined);
  handle.started = started;
  return handle;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

needs(KAFKA).describe('Kafka consumer crash', () => {
  let target: KafkaTarget;
  let script: string;
  let dir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    script = compileChild();
    target = await startKafkaTarget({ brokers: 1 });
    dir = tmpDir('callscope-kafka-crash-');
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await target?.stop();
    if (dir) removeTmpDir(dir);
  });

  it('SIGKILL mid-batch, restart: every event in the file, repeats only from the uncommitted chunk', async () => {
    const topic = target.name('callscope.crash');
    const groupId = target.name('crash');
    await target.createTopics([{ topic, partitions: 3 }]);
    const events = await synthesizeEvents(6000, '-crash');
    const ids = new Set(events.map(eventId));
    const kafka = createKafka({ brokers: target.brokers, logger, kafkaLogLevel: 'nothing' });
    const producer = new EventProducer({ kafka, topic, spool: { dir: join(dir, 'spool') }, logger });
    await producer.connect();
    for (const e of events) await producer.send(e);
    await producer.flush();
    await producer.close();

    const file = join(dir, 'store.jsonl');
    const args = [target.brokers, topic, groupId, file];
    const first = startChild(script, args);
    children.push(first.child);
    await first.started;
    // Kill right after a chunk became durable and before its commit: the worst moment, since that
    // chunk must come again after the restart. Chunks are 200 events, fetched batches larger, so
    // the kill also lands in the middle of a batch.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the first consumer wrote fewer than 1,500 events in 60 s')),
        60_000,
      );
      first.onWrote = (total) => {
        if (total < 1500) return;
        first.child.kill('SIGKILL');
        first.onWrote = null;
        clearTimeout(timer);
        resolve();
      };
    });
    expect((await exited(first.child)).signal).toBe('SIGKILL');
    const beforeCrash = readLines(file);
    expect(beforeCrash.length).toBeLessThan(events.length);

    const restartAt = Date.now();
    const second = startChild(script, args);
    children.push(second.child);
    await second.started;
    await waitFor(
      () => new Set(readLines(file).map((l) => l.id)).size >= events.length,
      60_000,
      () =>
        `all ${events.length} events in the file (have ${new Set(readLines(file).map((l) => l.id)).size})`,
    );
    const resumedMs = Date.now() - restartAt;
    second.child.kill('SIGTERM');
    expect((await exited(second.child)).code).toBe(0);

    const lines = readLines(file);
    const seen = new Map<string, number>();
    for (const l of lines) seen.set(l.id, (seen.get(l.id) ?? 0) + 1);
    // Every event is there, nothing foreign.
    expect(new Set(seen.keys())).toEqual(ids);
    // Repeats: only events of the last chunk the killed process wrote (written, not committed).
    const repeated = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
    const lastChunk = beforeCrash[beforeCrash.length - 1].chunk;
    const lastChunkIds = new Set(beforeCrash.filter((l) => l.chunk === lastChunk).map((l) => l.id));
    for (const id of repeated) expect(lastChunkIds.has(id)).toBe(true);
    // ...and all of them: that chunk was durable but uncommitted, so it was read and written again.
    expect(repeated.length).toBe(lastChunkIds.size);
    expect(repeated.length).toBeLessThanOrEqual(200);
    expect(Math.max(...seen.values())).toBeLessThanOrEqual(2);
    console.log(
      `[kafka] SIGKILL after ${beforeCrash.length} events; restarted consumer complete after ${resumedMs} ms ` +
        `(incl. waiting out the dead member's 6-s session); ${repeated.length} repeats, all from chunk ${lastChunk}`,
    );

    // The clean stop committed everything that was written: a new member has nothing left to read.
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const ends = await admin.fetchTopicOffsets(topic);
      for (const p of ends) {
        expect(committed.partitions.find((c) => c.partition === p.partition)?.offset).toBe(p.high);
      }
    } finally {
      await admin.disconnect();
    }
  });
});
