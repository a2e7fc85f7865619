import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../capture/analyze.js';
import { PcapWriter } from '../capture/file/pcap-writer.js';
import { LINKTYPE_RAW } from '../capture/file/record.js';
import { encapsulateCapture, sipOverSegmentedTcp, type Variant } from './fixtures/encapsulate.js';
import { haveTool, removeTmpDir, tmpDir } from './oracle/tools.js';
import { tsharkSipStat } from './oracle/tshark.js';

const sample = new URL('../capture/sample/calls.pcap', import.meta.url).pathname;
const dir = tmpDir('callscope-encap-');
afterAll(() => removeTmpDir(dir));

const variants: Variant[] = [
  'qinq',
  'vxlan',
  'gre-teb',
  'gre-ip',
  'erspan2',
  'erspan3',
  'ipip',
  'ip4in6',
  'fragments',
  'sll',
  'sll2',
  'null',
  'raw',
];

describe.skipIf(!haveTool('tshark'))(
  'the sample calls in every encapsulation and link type, against tshark',
  () => {
    it.each(variants)('%s', async (variant) => {
      const file = join(dir, `${variant}.pcap`);
      await encapsulateCapture(sample, file, variant);
      const [summary, reference] = await Promise.all([analyzeFile(file), tsharkSipStat(file)]);
      const { messages, retransmissions, requests, responses } = summary.sip;
      expect({ messages, retransmissions, requests, responses }).toEqual(reference);
      expect(messages).toBe(268);
      expect(summary.malformedPackets).toBe(0);
      if (variant === 'fragments') expect(summary.decode.fragments.reassembled).toBeGreaterThan(100);
      if (variant === 'vxlan') expect(summary.decode.tunnelled.vxlan).toBe(summary.packets);
      if (variant === 'erspan2' || variant === 'erspan3')
        expect(summary.decode.tunnelled.erspan).toBe(summary.packets);
    });
  },
);

describe.skipIf(!haveTool('tshark'))('SIP over TCP cut into segments, retransmitted and reordered', () => {
  it('counts every message once, as tshark does with out-of-order reassembly on', async () => {
    const file = join(dir, 'tcp-segmented.pcap');
    const { segments } = await sipOverSegmentedTcp(sample, file);
    expect(segments).toBeGreaterThan(200);
    const [summary, reference] = await Promise.all([
      analyzeFile(file),
      tsharkSipStat(file, { extraArgs: ['-o', 'tcp.reassemble_out_of_order:TRUE'] }),
    ]);
    const { messages, retransmissions, requests, responses } = summary.sip;
    expect({ messages, retransmissions, requests, responses }).toEqual(reference);
    expect(messages).toBe(268);
    expect(summary.sip.transports.tcp).toBe(268);
    expect(summary.decode.tcpStreams.retransmissions).toBeGreaterThan(0);
    expect(summary.decode.tcpStreams.outOfOrder).toBeGreaterThan(0);
  });
});

describe.skipIf(!haveTool('tshark') || !haveTool('sngrep'))(
  'SIP inside HEP3, as a HOMER server receives it',
  () => {
    it('sngrep replays the sample as HEP3: we count what tshark counts in the plain sample', async () => {
      // sngrep (not our code) encodes every SIP message of the sample as HEP3 and sends it over UDP;
      // we store the datagrams in a capture, as a capture on a HOMER server would hold them.
      const socket = createSocket('udp4');
      await new Promise<void>((ok) => socket.bind(0, '127.0.0.1', ok));
      const port = socket.address().port;
      const datagrams: { at: bigint; data: Buffer; from: number }[] = [];
      socket.on('message', (data, rinfo) =>
        datagrams.push({ at: process.hrtime.bigint(), data, from: rinfo.port }),
      );
      const child = spawn('sngrep', ['-N', '-q', '-I', sample, '-H', `udp:127.0.0.1:${port}`], {
        stdio: 'ignore',
      });
      await new Promise((done) => child.on('exit', done));
      await new Promise((done) => setTimeout(done, 300));
      socket.close();
      expect(datagrams.length).toBe(268);
      const file = join(dir, 'hep-from-sngrep.pcap');
      const writer = new PcapWriter(file, { linkType: LINKTYPE_RAW, nanosecond: true });
      for (const [i, d] of datagrams.entries()) {
        const h = Buffer.alloc(28);
        h[0] = 0x45;
        h.writeUInt16BE(28 + d.data.length, 2);
        h.writeUInt16BE(i, 4);
        h[8] = 64;
        h[9] = 17;
        h.writeUInt32BE(0x7f000001, 12);
        h.writeUInt32BE(0x7f000001, 16);
        h.writeUInt16BE(d.from, 20);
        h.writeUInt16BE(port, 22);
        h.writeUInt16BE(8 + d.data.length, 24);
        writer.write(
          1_700_000_000 + Math.floor(i / 1000),
          (i % 1000) * 1_000_000,
          Buffer.concat([h, d.data]),
        );
      }
      writer.close();
      const [summary, reference] = await Promise.all([analyzeFile(file), tsharkSipStat(sample)]);
      const { messages, retransmissions, requests, responses } = summary.sip;
      expect({ messages, retransmissions, requests, responses }).toEqual(reference);
      expect(summary.sip.endpoints.some((e) => e.ip === '127.0.0.1')).toBe(false);

      // The same frames over one TCP connection (HEP over TCP), cut into 1,000-byte segments.
      const stream = Buffer.concat(datagrams.map((d) => d.data));
      const tcpFile = join(dir, 'hep-over-tcp.pcap');
      const tcpWriter = new PcapWriter(tcpFile, { linkType: LINKTYPE_RAW, nanosecond: true });
      for (let off = 0, i = 0; off < stream.length; off += 1000, i++) {
        const data = stream.subarray(off, off + 1000);
        const h = Buffer.alloc(40);
        h[0] = 0x45;
        h.writeUInt16BE(40 + data.length, 2);
        h[8] = 64;
        h[9] = 6;
        h.writeUInt32BE(0x7f000001, 12);
        h.writeUInt32BE(0x7f000001, 16);
        h.writeUInt16BE(40001, 20);
        h.writeUInt16BE(9061, 22);
        h.writeUInt32BE(1 + off, 24);
        h[32] = 0x50;
        h[33] = 0x18;
        tcpWriter.write(1_700_000_000 + i, 0, Buffer.concat([h, data]));
      }
      tcpWriter.close();
      const overTcp = await analyzeFile(tcpFile);
      expect({
        messages: overTcp.sip.messages,
        retransmissions: overTcp.sip.retransmissions,
        requests: overTcp.sip.requests,
        responses: overTcp.sip.responses,
      }).toEqual(reference);
    });
  },
);
