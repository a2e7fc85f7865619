/**
 * The /metrics endpoint (server.ts) on loopback: the exposition with Prometheus' content type, nothing
 * else served, a free port when 0 is asked for, a port in use refused with exit code 75, and close()
 * not held by a scraper's keep-alive connection.
 */
import { request } from 'node:http';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { CallscopeMetrics } from './metrics.js';
import { formatAddress, MetricsListenError, MetricsServer } from './server.js';

function get(
  url: string,
  method = 'GET',
  agent?: import('node:http').Agent,
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('metrics server', () => {
  it('serves the registry on /metrics, on the port the system picked, and nothing else', async () => {
    const metrics = new CallscopeMetrics({ command: 'test' });
    const server = await MetricsServer.start({ host: '127.0.0.1', port: 0, registry: metrics.registry });
    try {
      expect(server.port).toBeGreaterThan(0);
      expect(server.url).toBe(`http://127.0.0.1:${server.port}/metrics`);
      const ok = await get(server.url);
      expect(ok.status).toBe(200);
      expect(ok.type).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(ok.body).toContain('callscope_info{command="test"} 1\n');
      expect(ok.body).toContain('callscope_events_total{type="sip"} 0\n');
      expect((await get(server.url, 'HEAD')).body).toBe('');
      expect((await get(`${server.url}?x=1`)).status).toBe(200);
      expect((await get(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
      expect((await get(`http://127.0.0.1:${server.port}/metrics/../admin`)).status).toBe(404);
      expect((await get(server.url, 'POST')).status).toBe(405);
    } finally {
      await server.close();
      metrics.close();
    }
  });

  it('refuses a port in use with exit code 75 and the remedy', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as import('node:net').AddressInfo).port;
    const metrics = new CallscopeMetrics({ command: 'test' });
    try {
      const failure = await MetricsServer.start({
        host: '127.0.0.1',
        port,
        registry: metrics.registry,
      }).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(MetricsListenError);
      expect((failure as MetricsListenError).exitCode).toBe(75);
      expect((failure as Error).message).toBe(
        `--metrics-listen 127.0.0.1:${port}: the port is in use by another process; choose another port or stop that process`,
      );
    } finally {
      holder.close();
      metrics.close();
    }
  });

  it('closes while a scraper holds a keep-alive connection', async () => {
    const metrics = new CallscopeMetrics({ command: 'test' });
    const server = await MetricsServer.start({ host: '127.0.0.1', port: 0, registry: metrics.registry });
    const { Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true });
    try {
      expect((await get(server.url, 'GET', agent)).status).toBe(200);
      const started = Date.now();
      await server.close();
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      agent.destroy();
      metrics.close();
    }
  });

  it('formats IPv6 hosts in brackets', () => {
    expect(formatAddress('::1', 9464)).toBe('[::1]:9464');
    expect(formatAddress('0.0.0.0', 0)).toBe('0.0.0.0:0');
  });
});
