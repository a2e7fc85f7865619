import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { analyzeFile } from '../analyze/analyze.js';
import { PcapWriter } from '../capture/file/pcap-writer.js';
import { LINKTYPE_RAW } from '../capture/file/record.js';
import { encapsulateCapture, sipOverSegmentedTcp, type Variant } from './fixtures/encapsulate.js';
import { ipv4Tcp, ipv4Udp } from './fixtures/packets.js';
import { needs, removeTmpDir, SNGREP_HEP, tmpDir } from './oracle/tools.js';
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

const tshark = needs('tshark');

tshark.describe('the sample calls in every encapsulation and link type, against tshark', () => {
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
});

tshark.describe('SIP over TCP cut into segments, retransmitted and reordered', () => {
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

needs('tshark', SNGREP_HEP).describe('SIP inside HEP3, as a HOMER server receives it', () => {
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
      const packet = ipv4Udp(d.data, {
        src: 0x7f000001,
        dst: 0x7f000001,
        id: i,
        srcPort: d.from,
        dstPort: port,
      });
      writer.write(1_700_000_000 + Math.floor(i / 1000), (i % 1000) * 1_000_000, packet);
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
      const packet = ipv4Tcp(data, {
        src: 0x7f000001,
        dst: 0x7f000001,
        srcPort: 40001,
        dstPort: 9061,
        seq: 1 + off,
      });
      tcpWriter.write(1_700_000_000 + i, 0, packet);
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
});
