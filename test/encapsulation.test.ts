import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeFile } from '../capture/analyze.js';
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
