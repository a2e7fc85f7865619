/**
 * OvsdbClient against a real ovsdb-server (test/oracle/ovs.ts), with ovs-vsctl as the outside oracle,
 * plus fake servers that misbehave (malformed replies, oversized messages, silence).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OVS_LAB, type OvsLab, startOvs } from '../../test/oracle/ovs.js';
import { needs } from '../../test/oracle/tools.js';
import {
  OvsdbClient,
  type OvsdbOperation,
  OvsdbReplyError,
  OvsdbTransactionError,
  type TableUpdates,
  type TableUpdates2,
  type UpdateInfo,
} from './client.js';
import {
  decodeMap,
  decodeMapRecord,
  decodeOptional,
  decodeSet,
  decodeUuid,
  decodeUuidSet,
  EMPTY_SET,
  map,
  namedUuid,
  set,
  uuid,
} from './datum.js';
import {
  JsonFramer,
  JsonRpcConnection,
  JsonRpcConnectionError,
  JsonRpcProtocolError,
  parseTarget,
} from './jsonrpc.js';

const DB = 'Open_vSwitch';

async function waitFor<T>(
  what: string,
  probe: () => T | undefined | null | false,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------------------

describe('datum helpers', () => {
  it('encodes and decodes uuid, set and map', () => {
    const u = '0f6c4c8e-3b1a-4c39-9d5e-6a1f2b3c4d5e';
    expect(uuid(u)).toEqual(['uuid', u]);
    expect(namedUuid('new_port')).toEqual(['named-uuid', 'new_port']);
    expect(() => uuid('nope')).toThrow(/not a UUID/);
    expect(() => namedUuid('1bad')).toThrow(/uuid-name/);
    expect(set([1, 2])).toEqual(['set', [1, 2]]);
    expect(map({ a: 'x' })).toEqual(['map', [['a', 'x']]]);
    expect(map(new Map([['k', 1]]))).toEqual(['map', [['k', 1]]]);
    expect(map([['k', 'v']])).toEqual(['map', [['k', 'v']]]);
    expect(decodeSet(['set', [1, ['uuid', u]]])).toEqual([1, u]);
    expect(decodeSet('alone')).toEqual(['alone']); // one-element sets may be bare atoms
    expect(decodeUuidSet(['uuid', u])).toEqual([u]);
    expect(decodeUuidSet(EMPTY_SET)).toEqual([]);
    expect(decodeOptional(EMPTY_SET)).toBeNull();
    expect(decodeOptional(5)).toBe(5);
    expect(
      decodeMap([
        'map',
        [
          ['vm-id', '9101'],
          [1, true],
        ],
      ]),
    ).toEqual(
      new Map<unknown, unknown>([
        ['vm-id', '9101'],
        [1, true],
      ]),
    );
    expect({ ...decodeMapRecord(['map', [['attached-mac', '02:00:00:00:00:01']]]) }).toEqual({
      'attached-mac': '02:00:00:00:00:01',
    });
    expect(() => decodeMap(['set', []])).toThrow(/not an OVSDB map/);
    expect(() => decodeSet({})).toThrow(/not an OVSDB atom/);
  });
});

describe('JSON framer', () => {
  it('splits concatenated values at any chunk boundary, minding strings and escapes', () => {
    const msgs = [
      { id: 1, result: ['a}b', 'c{d', '[', 'quote"in\\side'], error: null },
      { method: 'update', params: ['x', { t: { u: { new: { n: 'ü€𝄞' } } } }], id: null },
      [1, [2, [3]]],
    ];
    const stream = Buffer.from(
      `${JSON.stringify(msgs[0])}\n${JSON.stringify(msgs[1])}  ${JSON.stringify(msgs[2])}`,
    );
    for (let cut = 1; cut < stream.length; cut++) {
      const f = new JsonFramer();
      const ev = [...f.push(stream.subarray(0, cut)), ...f.push(stream.subarray(cut))];
      expect(ev.map((e) => (e.kind === 'message' ? JSON.parse(e.data.toString()) : e))).toEqual(msgs);
    }
    const f = new JsonFramer();
    const one = [...stream].flatMap((b) => f.push(Buffer.from([b])));
    expect(one.length).toBe(3);
  });

  it('reports garbage between values and resynchronises; refuses oversized messages', () => {
    const f = new JsonFramer();
    const ev = f.push(Buffer.from('hello {"a":1} ?? {"b":2}'));
    expect(ev.map((e) => e.kind)).toEqual(['garbage', 'message', 'garbage', 'message']);
    const small = new JsonFramer(100);
    expect(small.push(Buffer.from(`{"a":"${'x'.repeat(60)}`))).toEqual([]);
    const big = small.push(Buffer.from(`${'x'.repeat(60)}"}`));
    expect(big).toEqual([{ kind: 'too-big', bytes: 101 }]);
    expect(small.push(Buffer.from('{}'))).toEqual([]); // stays failed: the stream is no longer trusted
  });

  it('parses targets', () => {
    expect(parseTarget('unix:/run/db.sock')).toEqual({ kind: 'unix', path: '/run/db.sock' });
    expect(parseTarget('/run/db.sock')).toEqual({ kind: 'unix', path: '/run/db.sock' });
    expect(parseTarget('tcp:127.0.0.1:6640')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 6640 });
    expect(parseTarget('tcp:[::1]:6640')).toEqual({ kind: 'tcp', host: '::1', port: 6640 });
    expect(() => parseTarget('tcp:host')).toThrow(/tcp:host:port/);
    expect(() => parseTarget('ssl:1.2.3.4:6640')).toThrow(/unsupported/);
  });
});

// ---------------------------------------------------------------------------------------------------
// Fake servers

interface Fake {
  path: string;
  server: Server;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

/** A unix-socket server; `onRequest` gets each parsed request and the socket. */
async function fakeServer(
  onRequest: (req: { method: string; params: unknown[]; id: unknown }, sock: Socket) => void,
): Promise<Fake> {
  const dir = mkdtempSync(join(tmpdir(), 'csfake-'));
  const path = join(dir, 'fake.sock');
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => undefined); // the client may close mid-write (oversized reply)
    sock.on('close', () => sockets.delete(sock));
    const framer = new JsonFramer();
    sock.on('data', (chunk: Buffer) => {
      for (const ev of framer.push(chunk))
        if (ev.kind === 'message') onRequest(JSON.parse(ev.data.toString()), sock);
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    server,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('against misbehaving fake servers', () => {
  const fakes: Fake[] = [];
  const clients: OvsdbClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const f of fakes.splice(0)) await f.close();
  });

  async function setup(
    reply: (req: { method: string; params: unknown[]; id: unknown }, sock: Socket) => void,
    options: Parameters<typeof OvsdbClient.connect>[1] = {},
  ) {
    const fake = await fakeServer(reply);
    fakes.push(fake);
    const protocolErrors: Error[] = [];
    const client = await OvsdbClient.connect(`unix:${fake.path}`, {
      keepaliveIntervalMs: 0,
      reconnect: false,
      requestTimeoutMs: 3000,
      onError: (e) => protocolErrors.push(e),
      ...options,
    });
    clients.push(client);
    return { fake, client, protocolErrors };
  }

  it('non-JSON bytes and a broken object are counted errors; the real reply still arrives', async () => {
    const { client, protocolErrors } = await setup((req, sock) => {
      sock.write('this is not json\n');
      sock.write('{"id": 1, oops}');
      sock.write(JSON.stringify({ id: req.id, result: ['Open_vSwitch'], error: null }));
    });
    await expect(client.listDbs()).resolves.toEqual(['Open_vSwitch']);
    expect(protocolErrors.map((e) => e.message)).toEqual([
      expect.stringMatching(/^unix:.*fake\.sock: protocol error: not JSON: skipped bytes "this is not json/),
      expect.stringMatching(/protocol error: not JSON \(.*position 10\): .*oops\}"$/),
    ]);
    expect(protocolErrors.every((e) => e instanceof JsonRpcProtocolError)).toBe(true);
    expect(client.protocolErrors).toBe(2);
  });

  it('a reply with an unknown id is reported and ignored', async () => {
    const { client, protocolErrors } = await setup((req, sock) => {
      sock.write(JSON.stringify({ id: 999, result: [], error: null }));
      sock.write(JSON.stringify({ id: req.id, result: ['x'], error: null }));
    });
    await expect(client.listDbs()).resolves.toEqual(['x']);
    expect(protocolErrors.map((e) => e.message)).toEqual([
      expect.stringMatching(/reply with unknown id 999 \(no request pending\)/),
    ]);
  });

  it('a reply missing result and error rejects that request clearly', async () => {
    const { client, protocolErrors } = await setup((req, sock) => {
      sock.write(JSON.stringify({ id: req.id }));
    });
    await expect(client.listDbs()).rejects.toThrow(
      /reply to list_dbs \(id \d+\) has neither result nor error/,
    );
    expect(protocolErrors).toHaveLength(1);
  });

  it('a wrongly shaped result and a server error are clear errors', async () => {
    const { client } = await setup((req, sock) => {
      if (req.method === 'list_dbs')
        sock.write(JSON.stringify({ id: req.id, result: { no: 1 }, error: null }));
      else
        sock.write(
          JSON.stringify({ id: req.id, result: null, error: { error: 'unknown database', details: 'nope' } }),
        );
    });
    await expect(client.listDbs()).rejects.toThrow(/list_dbs: unexpected result \{"no":1\}/);
    await expect(client.transact('nope', [])).rejects.toThrow(
      /fake\.sock: transact failed: unknown database: nope/,
    );
  });

  it('malformed transact and monitor replies are OvsdbReplyErrors naming the method and op', async () => {
    let reply: unknown = null;
    const { client, protocolErrors } = await setup((req, sock) => {
      sock.write(JSON.stringify({ id: req.id, result: reply, error: null }));
    });
    const select = { op: 'select', table: 'Bridge', where: [] };
    reply = [null];
    let err = await client.transact('Open_vSwitch', [select]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OvsdbReplyError);
    expect((err as Error).message).toMatch(
      /fake\.sock: transact Open_vSwitch: malformed reply: result 0 \(select Bridge\) is not an object: null$/,
    );
    reply = [{ rows: { a: 1 } }];
    await expect(client.transact('Open_vSwitch', [select])).rejects.toThrow(
      /transact Open_vSwitch: malformed reply: result 0 \(select Bridge\) has no rows array: \{"a":1\}/,
    );
    reply = [{ rows: [] }, { count: 1 }];
    await expect(
      client.transact('Open_vSwitch', [select, { op: 'mutate', table: 'Bridge', where: [], mutations: [] }]),
    ).resolves.toEqual([{ rows: [] }, { count: 1 }]);
    reply = null;
    err = await client
      .monitor('Open_vSwitch', 'm1', { Bridge: {} }, () => undefined)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OvsdbReplyError);
    expect((err as Error).message).toMatch(
      /monitor Open_vSwitch: malformed reply: initial contents are not a table-updates object: null/,
    );
    // The failed monitor's id is free again.
    reply = {};
    await expect(client.monitor('Open_vSwitch', 'm1', { Bridge: {} }, () => undefined)).resolves.toEqual({});
    expect(protocolErrors).toEqual([]);
  });

  it('a 70 MiB message closes the connection with a size error, without hanging', async () => {
    const { client, protocolErrors } = await setup((req, sock) => {
      const blob = Buffer.alloc(70 * 1024 * 1024, 0x61);
      sock.write(`{"id":${JSON.stringify(req.id)},"error":null,"result":"`);
      sock.write(blob);
      sock.write('"}');
    });
    const disconnected = new Promise<Error | null>((r) => client.once('disconnect', r));
    const t0 = Date.now();
    const err = await client.listDbs().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JsonRpcConnectionError);
    expect((err as Error).message).toMatch(
      /list_dbs \(id \d+\) not answered: message larger than the 64 MiB limit/,
    );
    expect((await disconnected)?.message).toMatch(/64 MiB/);
    expect(protocolErrors[0]?.message).toMatch(/message larger than the 64 MiB limit/);
    expect(client.connected).toBe(false);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it("answers the server's echo requests and delivers update notifications", async () => {
    let echoReply: unknown;
    const { fake, client } = await setup((req, sock) => {
      if (req.method === 'list_dbs') {
        sock.write(JSON.stringify({ method: 'echo', params: ['ping', 7], id: 'echo' }));
        sock.write(JSON.stringify({ id: req.id, result: [], error: null }));
      } else if (req.method === 'monitor') {
        sock.write(JSON.stringify({ id: req.id, result: { T: { u1: { new: { a: 1 } } } }, error: null }));
        sock.write(
          JSON.stringify({
            method: 'update',
            params: ['m', { T: { u1: { old: { a: 1 }, new: { a: 2 } } } }],
            id: null,
          }),
        );
        sock.write(JSON.stringify({ method: 'update', params: ['other', { T: {} }], id: null }));
      }
    });
    // Catch what the client sends back on the same socket.
    const sock = await waitFor('server socket', () => [...fake.sockets][0]);
    sock.on('data', (d: Buffer) => {
      for (const part of d.toString().split(/(?<=\})(?=\{)/)) {
        const m = JSON.parse(part);
        if (m.id === 'echo') echoReply = m;
      }
    });
    await client.listDbs();
    await waitFor('echo reply', () => echoReply);
    expect(echoReply).toEqual({ result: ['ping', 7], error: null, id: 'echo' });
    const got: unknown[] = [];
    const initial = await client.monitor('db', 'm', { T: {} }, (u, info) => got.push([u, info]));
    expect(initial).toEqual({ T: { u1: { new: { a: 1 } } } });
    await waitFor('update', () => got.length > 0);
    expect(got).toEqual([
      [{ T: { u1: { old: { a: 1 }, new: { a: 2 } } } }, { initial: false, replace: false }],
    ]);
  });

  it('keepalive detects a server that accepts but never answers', async () => {
    const { client } = await setup(() => undefined, { keepaliveIntervalMs: 300, requestTimeoutMs: 0 });
    const disconnected = new Promise<Error | null>((r) => client.once('disconnect', r));
    const t0 = Date.now();
    const pending = client.listDbs().catch((e: unknown) => e); // no timeout of its own: only keepalive ends it
    const err = await disconnected;
    expect(err?.message).toMatch(/keepalive: no echo reply within 300 ms; connection considered dead/);
    expect(((await pending) as Error).message).toMatch(/list_dbs \(id \d+\) not answered: keepalive/);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(500);
    expect(elapsed).toBeLessThan(3000);
  });

  it('a request timeout names the method and target; close() leaves no timers', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const { client } = await setup(() => undefined, {
      keepaliveIntervalMs: 200,
      requestTimeoutMs: 150,
      reconnect: true,
    });
    await expect(client.echo('x')).rejects.toThrow(/fake\.sock: no reply to echo \(id \d+\) within 150 ms/);
    client.close();
    client.close();
    await expect(client.listDbs()).rejects.toThrow(/client is closed/);
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    expect(after).toBeLessThanOrEqual(before);
  });

  it('connect failure names the target', async () => {
    await expect(OvsdbClient.connect('unix:/nonexistent/callscope.sock')).rejects.toThrow(
      /unix:\/nonexistent\/callscope\.sock: cannot connect: .*ENOENT/,
    );
  });

  it('JsonRpcConnection rejects pending requests when the peer closes', async () => {
    const fake = await fakeServer((_req, sock) => sock.end());
    fakes.push(fake);
    const conn = await JsonRpcConnection.connect(fake.path);
    await expect(conn.request('get_schema', ['x'])).rejects.toThrow(
      /get_schema \(id 1\) not answered: connection closed by peer/,
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// Real ovsdb-server

needs(...OVS_LAB).describe('OvsdbClient against ovsdb-server', () => {
  let lab: OvsLab;
  let client: OvsdbClient;
  const extra: OvsdbClient[] = [];
  beforeAll(async () => {
    lab = await startOvs({ vswitchd: false, tcp: true });
    client = await OvsdbClient.connect(lab.dbTarget, { keepaliveIntervalMs: 1000 });
  });
  afterAll(async () => {
    client?.close();
    for (const c of extra) c.close();
    await lab?.close();
  });

  const bridgeUuid = async (c: OvsdbClient = client): Promise<string> => {
    const [r] = await c.transact(DB, [
      { op: 'select', table: 'Bridge', where: [['name', '==', lab.bridge]], columns: ['_uuid'] },
    ]);
    return decodeUuid(r.rows?.[0]?._uuid);
  };
  const listPorts = async () =>
    (await lab.vsctl('list-ports', lab.bridge as string)).split('\n').filter(Boolean);
  const addPortOps = (name: string, brUuid: string): OvsdbOperation[] => [
    {
      op: 'insert',
      table: 'Interface',
      row: { name, external_ids: map({ 'vm-id': name }) },
      'uuid-name': 'iface',
    },
    { op: 'insert', table: 'Port', row: { name, interfaces: namedUuid('iface') }, 'uuid-name': 'port' },
    {
      op: 'mutate',
      table: 'Bridge',
      where: [['_uuid', '==', uuid(brUuid)]],
      mutations: [['ports', 'insert', set([namedUuid('port')])]],
    },
  ];

  it('list_dbs over unix and tcp contains Open_vSwitch', async () => {
    expect(await client.listDbs()).toContain(DB);
    const tcp = await OvsdbClient.connect(lab.dbTcpTarget as string, { keepaliveIntervalMs: 0 });
    extra.push(tcp);
    expect(await tcp.listDbs()).toContain(DB);
    expect(await tcp.echo('a', 1)).toEqual(['a', 1]);
  });

  it('get_schema has the Bridge, Port, Interface and Mirror tables', async () => {
    const schema = await client.getSchema(DB);
    expect(schema.name).toBe(DB);
    for (const t of ['Bridge', 'Port', 'Interface', 'Mirror']) expect(schema.tables[t]).toBeDefined();
    expect(Object.keys(schema.tables.Mirror.columns)).toEqual(
      expect.arrayContaining([
        'select_all',
        'select_src_port',
        'select_dst_port',
        'output_port',
        'statistics',
      ]),
    );
    await expect(client.getSchema('NoSuchDb')).rejects.toThrow(/get_schema failed: unknown database/);
  });

  it('transact inserts Interface+Port with named-uuid and mutates Bridge.ports (ovs-vsctl agrees)', async () => {
    const br = await bridgeUuid();
    const results = await client.transact(DB, addPortOps('cstx0', br));
    expect(results).toHaveLength(3);
    expect(results[0].uuid).toEqual(['uuid', expect.stringMatching(/^[0-9a-f-]{36}$/)]);
    expect(results[2].count).toBe(1);
    expect(await listPorts()).toContain('cstx0');
    expect((await lab.vsctl('get', 'Interface', 'cstx0', 'external_ids:vm-id')).trim()).toBe('cstx0');
    const [sel] = await client.transact(DB, [
      { op: 'select', table: 'Bridge', where: [['name', '==', lab.bridge]], columns: ['ports'] },
    ]);
    expect(decodeUuidSet(sel.rows?.[0].ports)).toContain((results[1].uuid as string[])[1]);
  });

  it('a failing wait aborts the whole transaction', async () => {
    const before = await listPorts();
    const ports = (await lab.vsctl('--columns=name', '--format=csv', '--no-headings', 'list', 'Port')).trim();
    const ops: OvsdbOperation[] = [
      ...addPortOps('cswait0', await bridgeUuid()),
      {
        op: 'wait',
        table: 'Bridge',
        where: [['name', '==', lab.bridge]],
        columns: ['name'],
        until: '==',
        rows: [{ name: 'not-this-one' }],
        timeout: 0,
      },
    ];
    const err = await client.transact(DB, ops).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OvsdbTransactionError);
    const te = err as OvsdbTransactionError;
    expect(te.index).toBe(3);
    expect(te.op?.op).toBe('wait');
    expect(te.error).toBe('timed out');
    expect(te.message).toMatch(/transact on Open_vSwitch: op 3 \(wait Bridge\) failed: timed out/);
    expect(await listPorts()).toEqual(before);
    expect((await lab.vsctl('--columns=name', '--format=csv', '--no-headings', 'list', 'Port')).trim()).toBe(
      ports,
    );
  });

  it('a constraint failure at commit is reported as such', async () => {
    // An Interface nobody references is garbage-collected; a Port without its Interface violates the min-1 constraint.
    const err = await client
      .transact(DB, [{ op: 'insert', table: 'Port', row: { name: 'csbad0' } }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OvsdbTransactionError);
    expect((err as Error).message).toMatch(
      /db\.sock: transact on Open_vSwitch: commit after op 0 failed: referential integrity violation: .*Port column interfaces/,
    );
    expect((err as OvsdbTransactionError).index).toBe(1);
    expect((err as OvsdbTransactionError).op).toBeNull();
  });

  it('concurrent wait-guarded updates of one row: exactly one wins', async () => {
    const other = await OvsdbClient.connect(lab.dbTarget, { keepaliveIntervalMs: 0 });
    extra.push(other);
    await lab.vsctl('set', 'Bridge', lab.bridge as string, 'external_ids:owner=none');
    const guarded = (who: string): OvsdbOperation[] => [
      {
        op: 'wait',
        table: 'Bridge',
        where: [['name', '==', lab.bridge]],
        columns: ['external_ids'],
        until: '==',
        rows: [{ external_ids: map({ owner: 'none' }) }],
        timeout: 0,
      },
      {
        op: 'update',
        table: 'Bridge',
        where: [['name', '==', lab.bridge]],
        row: { external_ids: map({ owner: who }) },
      },
    ];
    for (let round = 0; round < 5; round++) {
      await lab.vsctl('set', 'Bridge', lab.bridge as string, 'external_ids:owner=none');
      const outcomes = await Promise.allSettled([
        client.transact(DB, guarded('a')),
        other.transact(DB, guarded('b')),
      ]);
      const won = outcomes.map((o) => o.status === 'fulfilled');
      expect(won.filter(Boolean)).toHaveLength(1);
      const loser = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
      expect(loser.reason).toBeInstanceOf(OvsdbTransactionError);
      expect((loser.reason as OvsdbTransactionError).index).toBe(0);
      const owner = (await lab.vsctl('get', 'Bridge', lab.bridge as string, 'external_ids:owner')).trim();
      expect(owner).toBe(won[0] ? 'a' : 'b');
    }
  });

  it('concurrent set-insert mutations of one row both apply', async () => {
    const other = await OvsdbClient.connect(lab.dbTarget, { keepaliveIntervalMs: 0 });
    extra.push(other);
    const br = await bridgeUuid();
    await Promise.all([
      client.transact(DB, addPortOps('csconc1', br)),
      other.transact(DB, addPortOps('csconc2', br)),
    ]);
    expect(await listPorts()).toEqual(expect.arrayContaining(['csconc1', 'csconc2']));
  });

  it('monitor reports insert, modify and delete made by ovs-vsctl', async () => {
    const updates: TableUpdates[] = [];
    const initial = await client.monitor(
      DB,
      'mon-iface',
      { Interface: { columns: ['name', 'external_ids'] } },
      (u) => updates.push(u),
    );
    const names = Object.values(initial.Interface ?? {}).map((r) => r.new?.name);
    expect(names).toEqual(expect.arrayContaining(['cstx0', lab.bridge]));
    const rowOf = (name: string) =>
      updates
        .flatMap((u) => Object.entries(u.Interface ?? {}))
        .find(([, r]) => (r.new ?? r.old)?.name === name);

    await lab.vsctl('add-port', lab.bridge as string, 'csmon0');
    const [uuidIns, ins] = await waitFor('insert of csmon0', () => rowOf('csmon0'));
    expect(ins.old).toBeUndefined();
    expect(ins.new?.name).toBe('csmon0');

    updates.length = 0;
    await lab.vsctl('set', 'Interface', 'csmon0', 'external_ids:vm-id=9101');
    const [uuidMod, mod] = await waitFor('modify of csmon0', () => rowOf('csmon0'));
    expect(uuidMod).toBe(uuidIns);
    expect(decodeMapRecord(mod.new?.external_ids)['vm-id']).toBe('9101');
    expect(mod.old).toHaveProperty('external_ids'); // old holds the changed columns' previous values
    expect(decodeMap(mod.old?.external_ids).size).toBe(0);

    updates.length = 0;
    await lab.vsctl('del-port', lab.bridge as string, 'csmon0');
    const [uuidDel, del] = await waitFor('delete of csmon0', () => rowOf('csmon0'));
    expect(uuidDel).toBe(uuidIns);
    expect(del.new).toBeUndefined();
    expect(del.old?.name).toBe('csmon0');
    await client.monitorCancel('mon-iface');
    updates.length = 0;
    await lab.vsctl('add-port', lab.bridge as string, 'csmon1');
    await new Promise((r) => setTimeout(r, 200));
    expect(updates).toEqual([]);
  });

  it('monitor_cond filters on the server and reports update2 insert/modify/delete', async () => {
    const updates: TableUpdates2[] = [];
    const initial = await client.monitorCond(
      DB,
      ['cond', 1],
      { Interface: [{ columns: ['name', 'external_ids'], where: [['name', '==', 'cscond0']] }] },
      (u) => updates.push(u),
    );
    expect(initial).toEqual({});
    const rows = () => updates.flatMap((u) => Object.entries(u.Interface ?? {}));

    await lab.vsctl(
      'add-port',
      lab.bridge as string,
      'csother0',
      '--',
      'add-port',
      lab.bridge as string,
      'cscond0',
    );
    const [u0, first] = await waitFor('insert of cscond0', () => rows()[0]);
    expect(first.insert?.name).toBe('cscond0');
    await lab.vsctl('set', 'Interface', 'cscond0', 'external_ids:vm-id=42');
    const [u1, second] = await waitFor('modify', () => rows()[1]);
    expect(u1).toBe(u0);
    expect(second.modify?.external_ids).toEqual(['map', [['vm-id', '42']]]); // a diff, not the whole row
    await lab.vsctl('del-port', lab.bridge as string, 'cscond0');
    const [, third] = await waitFor('delete', () => rows()[2]);
    expect(third).toHaveProperty('delete', null);
    expect(rows().every(([, r]) => JSON.stringify(r).includes('csother0') === false)).toBe(true);
    await client.monitorCancel(['cond', 1]);
  });

  it('reconnects after ovsdb-server restarts on the same socket and re-issues the monitor', async () => {
    const events: string[] = [];
    const c = await OvsdbClient.connect(lab.dbTarget, {
      keepaliveIntervalMs: 1000,
      backoffMinMs: 50,
      backoffMaxMs: 400,
      onReconnect: () => events.push('reconnect'),
      onDisconnect: () => events.push('disconnect'),
    });
    extra.push(c);
    const seen: { u: TableUpdates; info: UpdateInfo }[] = [];
    await c.monitor(DB, 'mon-restart', { Interface: { columns: ['name', 'external_ids'] } }, (u, info) =>
      seen.push({ u, info }),
    );

    const t0 = Date.now();
    await lab.stopOvsdb({ hard: true });
    await waitFor('disconnect', () => events.includes('disconnect'));
    await expect(c.listDbs()).rejects.toThrow(/not connected \(reconnecting\)/);
    // Change the database while the server is down, so the re-issued monitor must show fresh contents.
    execFileSync('ovsdb-tool', [
      'transact',
      join(lab.dir, 'conf.db'),
      JSON.stringify([
        DB,
        {
          op: 'update',
          table: 'Interface',
          where: [['name', '==', 'cstx0']],
          row: { external_ids: ['map', [['offline', 'yes']]] },
        },
      ]),
    ]);
    await lab.startOvsdb();
    await waitFor('reconnect', () => events.includes('reconnect'), 10_000);
    const elapsedMs = Date.now() - t0;
    expect(events).toEqual(['disconnect', 'reconnect']);
    const replay = seen.find((s) => s.info.replace);
    expect(replay?.info).toEqual({ initial: true, replace: true });
    const tx0 = Object.values(replay?.u.Interface ?? {}).find((r) => r.new?.name === 'cstx0');
    expect(decodeMapRecord(tx0?.new?.external_ids)).toEqual({ offline: 'yes' });
    expect(c.reconnects).toBe(1);
    expect(elapsedMs).toBeLessThan(10_000);

    // The monitor keeps working on the new connection.
    await lab.vsctl('add-port', lab.bridge as string, 'csafter0');
    await waitFor('update after reconnect', () =>
      seen.some(
        (s) => !s.info.initial && Object.values(s.u.Interface ?? {}).some((r) => r.new?.name === 'csafter0'),
      ),
    );
    expect(await c.listDbs()).toContain(DB);
  });
});
