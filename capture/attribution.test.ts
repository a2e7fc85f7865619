import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../core/event.js';
import { decodeHep3, encodeHep3 } from '../core/hep3.js';
import { removeTmpDir, tmpDir } from '../test/oracle/tools.js';
import { normaliseMac, StaticVmMap, VmAttribution, type VmIdentity } from './attribution.js';
import { readCaptureFile } from './file/reader.js';
import { generateCapture } from './generator/generate.js';
import { CapturePipeline } from './pipeline.js';

const dir = tmpDir('callscope-vm-');
afterAll(() => removeTmpDir(dir));

describe('StaticVmMap', () => {
  it('normalises MACs and rejects what is not one', () => {
    expect(normaliseMac('02-00-00-00-00-0A')).toBe('02:00:00:00:00:0a');
    expect(normaliseMac('02:00:00:00:00')).toBeNull();
    expect(normaliseMac("'; DROP TABLE x; --")).toBeNull();
    const map = StaticVmMap.parse('[{"mac":"02:00:00:00:00:0A","id":"101","name":"pbx"}]', 'vms.json');
    expect(map.vmOfMac('02:00:00:00:00:0a')).toEqual({ id: '101', name: 'pbx' });
    expect(map.vmOfMac('02:00:00:00:00:0b')).toBeNull();
    expect(() => StaticVmMap.parse('{', 'a.json')).toThrow(/VM map a\.json: not JSON/);
    expect(() => StaticVmMap.parse('[{"mac":"zz","id":"1"}]', 'b.json')).toThrow(
      /entry 0: "zz" is not a MAC/,
    );
    expect(() => StaticVmMap.parse('[{"mac":"02:00:00:00:00:01","id":""}]', 'c.json')).toThrow(/"id"/);
  });
});

describe('VmAttribution', () => {
  it('answers by MAC, then by the IP learned behind that MAC, within a bound', () => {
    const vm: VmIdentity = { id: '7', name: 'seven' };
    const attribution = new VmAttribution(
      { vmOfMac: (mac) => (mac === 'aa:aa:aa:aa:aa:aa' ? vm : null) },
      {
        maxLearnedIps: 2,
      },
    );
    expect(attribution.vmOf('bb:bb:bb:bb:bb:bb', '10.0.0.1', true)).toBeNull();
    // A destination teaches nothing: the MAC may be a router VM's, the address a host behind it.
    expect(attribution.vmOf('aa:aa:aa:aa:aa:aa', '10.0.0.9', false)).toBe(vm);
    expect(attribution.vmOf(null, '10.0.0.9', false)).toBeNull();
    expect(attribution.vmOf('aa:aa:aa:aa:aa:aa', '10.0.0.1', true)).toBe(vm);
    // A routed frame (router's MAC) from the same address still finds the VM.
    expect(attribution.vmOf('cc:cc:cc:cc:cc:cc', '10.0.0.1', true)).toBe(vm);
    attribution.vmOf('aa:aa:aa:aa:aa:aa', '10.0.0.2', true);
    // 10.0.0.1 used again: the least recently used address (10.0.0.2) is the one forgotten.
    expect(attribution.vmOf(null, '10.0.0.1', false)).toBe(vm);
    attribution.vmOf('aa:aa:aa:aa:aa:aa', '10.0.0.3', true);
    expect(attribution.stats.forgottenIps).toBe(1);
    expect(attribution.vmOf(null, '10.0.0.2', false)).toBeNull();
    expect(attribution.ipsOf('7').sort()).toEqual(['10.0.0.1', '10.0.0.3']);
  });
});

describe('attribution in the capture pipeline', () => {
  it('every SIP event and media report of a generated capture carries the VMs of its two sides', async () => {
    const file = join(dir, 'vms.pcap');
    const truth = generateCapture({
      output: file,
      seed: 11,
      vms: 4,
      calls: 12,
      callsPerSecond: 4,
      callDurationSec: 3,
    });
    // The map names only three of the four VMs: the fourth stays unattributed.
    const known = truth.vms.slice(0, 3);
    const map = new StaticVmMap(known.map((v, i) => ({ mac: v.mac, id: String(100 + i), name: v.name })));
    const idOfIp = new Map(known.map((v, i) => [v.ip, String(100 + i)]));
    const events: CaptureEvent[] = [];
    const pipeline = new CapturePipeline({
      sourceName: file,
      isFile: true,
      vms: new VmAttribution(map),
      onEvent: (e) => events.push(e),
    });
    await readCaptureFile(file, (r) => pipeline.handle(r));
    pipeline.finish();
    const sip = events.filter((e) => e.sip !== undefined);
    const media = events.filter((e) => e.media !== undefined);
    expect(sip.length).toBe(truth.sip.messages);
    expect(media.length).toBeGreaterThan(0);
    let attributed = 0;
    for (const e of [...sip, ...media]) {
      expect(e.srcVm).toBe(idOfIp.get(e.srcIp));
      expect(e.dstVm).toBe(idOfIp.get(e.dstIp));
      if (e.srcVm !== undefined) attributed++;
    }
    expect(attributed).toBeGreaterThan(0);
    expect(pipeline.attribution?.stats.attributedByMac).toBeGreaterThan(0);

    // The attribution survives HEP (Kafka, HEP senders) in callscope's vendor chunks.
    const withVm = sip.find((e) => e.srcVm !== undefined && e.dstVm !== undefined)!;
    const decoded = decodeHep3(encodeHep3(withVm), 0, encodeHep3(withVm).length);
    expect(decoded.ok && decoded.event.srcVm).toBe(withVm.srcVm);
    expect(decoded.ok && decoded.event.dstVm).toBe(withVm.dstVm);
    expect(decoded.ok && decoded.unknownChunks).toBe(0);
  });
});
