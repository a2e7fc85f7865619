/**
 * The HTTP endpoint Prometheus scrapes: GET /metrics answers with the registry's text exposition.
 * Nothing else is served. Each scrape runs the metrics' collect callbacks, so a scrape costs a read
 * of the stats objects, not the pipeline.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { type Logger, silentLogger } from '../../core/log.js';

export interface MetricsServerOptions {
  /** Address to listen on ('0.0.0.0', '127.0.0.1', '::'...). */
  host: string;
  /** 0 picks a free port: read it back from `port`. */
  port: number;
  registry: Registry;
  logger?: Logger;
}

/** The metrics port cannot be opened; `exitCode` as bin/errors.ts expects (75: in use). */
export class MetricsListenError extends Error {
  override name = 'MetricsListenError';
  constructor(
    message: string,
    readonly exitCode: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export class MetricsServer {
  private closing: Promise<void> | null = null;
  /** Scrapes that failed (a collect callback threw), logged once per kind. */
  private failures = 0;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {}

  /** Listens; rejects with MetricsListenError when the address cannot be had. */
  static async start(options: MetricsServerOptions): Promise<MetricsServer> {
    const logger = options.logger ?? silentLogger;
    let instance: MetricsServer | null = null;
    const server = createServer((req, res) => {
      if (instance !== null) instance.answer(req, res, options.registry, logger);
      else res.writeHead(503).end();
    });
    // A scraper that opens connections and sends nothing must not hold them.
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    server.maxConnections = 64;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => reject(listenError(error, options));
      server.once('error', onError);
      server.listen({ host: options.host, port: options.port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (error) => logger.error('metrics server failed', { error: error.message }));
    // The process ends when its work does: an idle metrics port must not keep it alive.
    server.unref();
    const address = server.address() as AddressInfo;
    instance = new MetricsServer(server, options.host, address.port);
    return instance;
  }

  /** `host:port` as listened on (the real port when 0 was asked for). */
  get address(): string {
    return formatAddress(this.host, this.port);
  }

  /** Where to scrape: `http://host:port/metrics`. */
  get url(): string {
    return `http://${this.address}/metrics`;
  }

  /** Stops listening and ends open connections (a scraper's keep-alive would hold close() otherwise). */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private answer(req: IncomingMessage, res: ServerResponse, registry: Registry, logger: Logger): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('callscope: scrape /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        if (this.failures++ % 100 === 0)
          logger.error('metrics scrape failed', { error: message, failures: this.failures });
        res
          .writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
          .end(`metrics failed: ${message}\n`);
      },
    );
  }
}

function listenError(error: NodeJS.ErrnoException, options: MetricsServerOptions): MetricsListenError {
  const where = `--metrics-listen ${formatAddress(options.host, options.port)}`;
  switch (error.code) {
    case 'EADDRINUSE':
      return new MetricsListenError(
        `${where}: the port is in use by another process; choose another port or stop that process`,
        75,
        { cause: error },
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new MetricsListenError(
        `${where}: ${options.host} is not an address of this host; give one it has (or 0.0.0.0)`,
        64,
        { cause: error },
      );
    case 'EACCES':
      return new MetricsListenError(
        `${where}: not allowed to listen on port ${options.port} (below 1024 needs root); choose a port above 1023`,
        1,
        { cause: error },
      );
    default:
      return new MetricsListenError(`${where}: ${error.message}`, 1, { cause: error });
  }
}
