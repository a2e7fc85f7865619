/**
 * chDB connections on one data directory. chDB runs the queries of one connection one at a time
 * (measured: four `SELECT sleep(0.5)` on one Session take 2 s, on four Sessions 0.5 s), and lets
 * any number of connections share the directory the process has open, each with its own settings,
 * current database and temporary tables. So requests borrow a connection each, up to `size` at
 * once; a connection whose state a request may have changed is closed instead of reused.
 */
import type { Session } from 'chdb';
import { ClickHouseException } from './errors.js';
import { quoteIdentifier } from './formats.js';

export interface Lease {
  readonly session: Session;
  readonly database: string;
}

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

export class ConnectionPool {
  private readonly idle = new Map<string, Session[]>();
  private idleCount = 0;
  private busy = 0;
  private readonly waiters: Waiter[] = [];
  private closed = false;
  private drained?: () => void;

  constructor(
    private readonly dataDir: string,
    /** Connections running queries at once; each occupies one libuv thread while it runs. */
    readonly size: number,
    /** Opens a connection; chDB's Session constructor, from the module the engine loaded. */
    private readonly connect: (dataDir: string) => Session,
  ) {}

  /** A connection whose current database is `database`; waits while `size` are busy. */
  async acquire(database: string, signal?: AbortSignal): Promise<Lease> {
    await this.slot(signal);
    try {
      const session = this.takeIdle(database) ?? (await this.open(database));
      return { session, database };
    } catch (error) {
      this.freeSlot();
      throw error;
    }
  }

  /** Returns a connection; `reusable: false` when its session state may have changed. */
  release(lease: Lease, reusable: boolean): void {
    if (reusable && !this.closed) {
      const list = this.idle.get(lease.database) ?? [];
      list.push(lease.session);
      this.idle.set(lease.database, list);
      this.idleCount++;
      this.evictBeyond(this.size);
    } else {
      lease.session.close();
    }
    this.freeSlot();
  }

  /** Refuses new work, waits for borrowed connections to come back, closes them all. */
  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.reject(shuttingDown());
    if (this.busy > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.evictBeyond(0);
  }

  private async slot(signal?: AbortSignal): Promise<void> {
    if (this.closed) throw shuttingDown();
    if (this.busy < this.size) {
      this.busy++;
      return;
    }
    // The slot is handed over by freeSlot() without ever being released, so a newcomer cannot
    // overtake a waiter.
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      this.waiters.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) {
            this.waiters.splice(i, 1);
            reject(new Error('request abandoned by the client while queued'));
          }
        },
        { once: true },
      );
    });
  }

  private freeSlot(): void {
    const next = this.waiters.shift();
    if (next) {
      next.resolve();
      return;
    }
    this.busy--;
    if (this.busy === 0) this.drained?.();
  }

  private takeIdle(database: string): Session | undefined {
    const session = this.idle.get(database)?.pop();
    if (session) this.idleCount--;
    return session;
  }

  private async open(database: string): Promise<Session> {
    // Cheap (about 2 ms) while the process already serves this directory.
    const session = this.connect(this.dataDir);
    if (database !== 'default') {
      try {
        await session.queryAsync(`USE ${quoteIdentifier(database)}`);
      } catch (error) {
        session.close();
        throw error;
      }
    }
    return session;
  }

  private evictBeyond(limit: number): void {
    for (const [database, list] of this.idle) {
      while (this.idleCount > limit && list.length > 0) {
        list.shift()?.close();
        this.idleCount--;
      }
      if (list.length === 0) this.idle.delete(database);
    }
  }
}

function shuttingDown(): ClickHouseException {
  return new ClickHouseException('ABORTED', 'The embedded store is shutting down', 503);
}
