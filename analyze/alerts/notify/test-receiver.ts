/**
 * For tests: an HTTP receiver on 127.0.0.1 that records every POST and answers as told (a status, or
 * never: `'hang'`), per request. Not used by the product.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';

export interface Received {
  at: number;
  url: string;
  headers: IncomingHttpHeaders;
  bytes: number;
  body: unknown;
}

/** How to answer request number `n` (0-based): an HTTP status, with an optional body, or never. */
export type Answer = number | 'hang' | { status: number; body?: string; headers?: Record<string, string> };

export interface TestReceiver {
  url: string;
  port: number;
  received: Received[];
  /** Requests whose connection closed before we answered (a client that gave up). */
  abandoned: number;
  /** Resolves once `n` requests have arrived (rejects after `timeoutMs`). */
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startTestReceiver(answer: (n: number) => Answer = () => 200): Promise<TestReceiver> {
  const sockets = new Set<Socket>();
  const waiters: { n: number; done: () => void }[] = [];
  const state: TestReceiver = {
    url: '',
    port: 0,
    received: [],
    abandoned: 0,
    waitFor(n, timeoutMs = 10_000) {
      if (state.received.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`waited ${timeoutMs} ms for ${n} requests, got ${state.received.length}`)),
          timeoutMs,
        );
        waiters.push({
          n,
          done: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const n = state.received.length;
      let body: unknown = raw.toString('utf8');
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        // kept as text
      }
      state.received.push({
        at: Date.now(),
        url: req.url ?? '',
        headers: req.headers,
        bytes: raw.length,
        body,
      });
      for (const w of waiters.filter((w) => state.received.length >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.done();
      }
      const a = answer(n);
      if (a === 'hang') {
        res.on('close', () => state.abandoned++);
        return;
      }
      const { status, body: text = '', headers = {} } = typeof a === 'number' ? { status: a } : a;
      res.writeHead(status, { 'content-type': 'text/plain', ...headers });
      res.end(text);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  state.port = typeof address === 'object' && address ? address.port : 0;
  state.url = `http://127.0.0.1:${state.port}/`;
  return state;
}
