/**
 * A real Kafka-protocol broker for tests: librdkafka's mock cluster (Debian `librdkafka-dev`), driven
 * through the small C program `test/kafka/mock-cluster.c`. Nothing here imports product code: the
 * broker is the oracle the Kafka transport is checked against.
 *
 * The program is compiled on first use (tools.ts, mockKafkaBuild) into a cache directory keyed by its
 * source, so a changed source is rebuilt and parallel test processes never run a half-written binary.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mockKafkaBuild } from './tools.js';

export interface MockKafkaOptions {
  /** Number of brokers; their ids are 1..brokers. Default 1. */
  brokers?: number;
  /** Topics to create before the bootstrap list is returned. */
  topics?: { name: string; partitions: number }[];
}

export interface MockKafka {
  /** `host:port,host:port,...` as kafkajs's `brokers` wants it after a split on ','. */
  readonly bootstrap: string;
  readonly brokerIds: number[];
  /** Disconnects broker `id` and refuses new connections (ECONNREFUSED); -1 means every broker. */
  setDown(id: number): Promise<void>;
  setUp(id: number): Promise<void>;
  /** The mock does not implement CreateTopics: topics are made through its own API. */
  createTopic(name: string, partitions: number): Promise<void>;
  stop(): Promise<void>;
}

/** `KAFKA_BROKERS` (e.g. `host:9092`): run the same tests against a real broker as well. */
export function kafkaBrokersFromEnv(): string | undefined {
  const v = process.env.KAFKA_BROKERS?.trim();
  return v ? v : undefined;
}

/** True when the mock cluster can be built and run here (gcc and librdkafka-dev present). */
export function haveMockKafka(): boolean {
  return mockKafkaBuild().binary !== null;
}

/** Why {@link haveMockKafka} is false, or null. Tests gate with `needs(KAFKA_MOCK)` (tools.ts). */
export function mockKafkaUnavailableReason(): string | null {
  return mockKafkaBuild().reason;
}

/** A line reader over the child's stdout that hands out lines in order. */
class Lines {
  private readonly queued: string[] = [];
  private readonly waiting: { resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  private ended: Error | null = null;

  constructor(child: ChildProcessWithoutNullStreams, stderr: () => string) {
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      const w = this.waiting.shift();
      if (w) w.resolve(line);
      else this.queued.push(line);
    });
    child.on('exit', (code, signal) => {
      this.ended = new Error(
        `mock-cluster exited (code ${code}, signal ${signal})${stderr() ? `: ${stderr()}` : ''}`,
      );
      for (const w of this.waiting.splice(0)) w.reject(this.ended);
    });
  }

  next(timeoutMs: number, what: string): Promise<string> {
    const line = this.queued.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Error(`mock-cluster: no answer to ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.push(entry);
    });
  }
}

/** Starts a mock cluster in a child process; the caller owns it and calls `stop()`. */
export async function startMockKafka(options: MockKafkaOptions = {}): Promise<MockKafka> {
  const { binary, reason } = mockKafkaBuild();
  if (!binary) throw new Error(`mock Kafka unavailable: ${reason}`);
  const brokers = options.brokers ?? 1;
  const args = [String(brokers), ...(options.topics ?? []).map((t) => `${t.name}:${t.partitions}`)];
  const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    // librdkafka logs to stderr; keep only the tail for error messages.
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const lines = new Lines(child, () => stderr.trim());
  // Commands are answered in order; serialising them keeps each answer with its command.
  let chain: Promise<unknown> = Promise.resolve();
  const command = (line: string): Promise<void> => {
    const run = chain.then(async () => {
      child.stdin.write(`${line}\n`);
      const answer = await lines.next(10_000, line);
      if (answer !== 'ok') throw new Error(`mock-cluster: ${line}: ${answer}`);
    });
    chain = run.catch(() => undefined);
    return run;
  };

  let bootstrap: string;
  try {
    bootstrap = await lines.next(10_000, 'startup');
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  let stopped: Promise<void> | null = null;
  return {
    bootstrap,
    brokerIds: Array.from({ length: brokers }, (_, i) => i + 1),
    setDown: (id) => command(`down ${id}`),
    setUp: (id) => command(`up ${id}`),
    createTopic: (name, partitions) => {
      if (!/^[A-Za-z0-9._-]{1,249}$/.test(name)) {
        return Promise.reject(new Error(`mock-cluster: ${JSON.stringify(name)} is not a legal topic name`));
      }
      return command(`topic ${name} ${partitions}`);
    },
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.stdin.end('quit\n');
      });
      return stopped;
    },
  };
}
