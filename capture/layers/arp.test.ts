import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { needs, removeTmpDir, tmpDir } from '../../test/oracle/tools.js';
import { PacketDecoder } from '../decoder.js';
import { PcapWriter } from '../file/pcap-writer.js';
import { LINKTYPE_ETHERNET, type PacketRecord } from '../file/record.js';
import { arpExchange, arpFrame, gratuitousArp } from '../generator/arp.js';
import { makeHost } from '../generator/frames.js';

interface SeenArp {
  op: number;
  senderMac: string;
  senderIp: string;
  targetIp: string;
  gratuitous: boolean;
  vlan: number | null;
}

function record(frame: Uint8Array, number = 1): PacketRecord {
  const data = Buffer.from(frame);
  return {
    data,
    offset: 0,
    caplen: data.length,
    origLen: data.length,
    tsSec: 1_700_000_000,
    tsNsec: 0,
    linkType: LINKTYPE_ETHERNET,
    interfaceId: 0,
    number,
    fileOffset: 0,
  };
}

function decoder(): { decoder: PacketDecoder; seen: SeenArp[] } {
  const seen: SeenArp[] = [];
  const none = () => {};
  const d = new PacketDecoder({
    udp: none,
    tcp: none,
    sctp: none,
    arp: (p, arp) =>
      seen.push({
        op: arp.op,
        senderMac: arp.senderMac(),
        senderIp: arp.senderIp(),
        targetIp: arp.targetIp(),
        gratuitous: arp.gratuitous,
        vlan: p.outerVlan(),
      }),
  });
  return { decoder: d, seen };
}

const a = makeHost(1, 0);
const b = makeHost(2, 0);

describe('ARP decoder', () => {
  it('decodes requests, replies and gratuitous announcements, tagged or not', () => {
    const { decoder: d, seen } = decoder();
    const [ask, answer] = arpExchange(a, b);
    d.decode(record(ask));
    d.decode(record(answer));
    d.decode(record(gratuitousArp(b, 42)));
    // `arping -A`: the announcement as a reply.
    d.decode(record(arpFrame({ op: 2, senderMac: b.mac, senderIp: b.ip, targetIp: b.ip })));
    // An RFC 5227 probe (sender 0.0.0.0) announces nothing.
    d.decode(record(arpFrame({ op: 1, senderMac: b.mac, senderIp: 0, targetIp: b.ip })));
    expect(seen).toEqual([
      { op: 1, senderMac: a.macText, senderIp: a.ipText, targetIp: b.ipText, gratuitous: false, vlan: null },
      { op: 2, senderMac: b.macText, senderIp: b.ipText, targetIp: a.ipText, gratuitous: false, vlan: null },
      { op: 1, senderMac: b.macText, senderIp: b.ipText, targetIp: b.ipText, gratuitous: true, vlan: 42 },
      { op: 2, senderMac: b.macText, senderIp: b.ipText, targetIp: b.ipText, gratuitous: true, vlan: null },
      { op: 1, senderMac: b.macText, senderIp: '0.0.0.0', targetIp: b.ipText, gratuitous: false, vlan: null },
    ]);
    const s = d.stats;
    expect(s.arp).toEqual({ requests: 3, replies: 2, gratuitous: 2, other: 0 });
    // Still counted as frames without IP, as before ARP was decoded.
    expect(s.nonIp).toBe(5);
    expect(s.malformed).toBe(0);
  });

  it('counts other ARP kinds without handing them on', () => {
    const { decoder: d, seen } = decoder();
    const rarp = arpFrame({ op: 3, senderMac: a.mac, senderIp: a.ip, targetIp: b.ip });
    const ipv6 = arpFrame({ op: 1, senderMac: a.mac, senderIp: a.ip, targetIp: b.ip });
    ipv6[16] = 0x86; // protocol type 0x86dd
    ipv6[17] = 0xdd;
    ipv6[19] = 16; // with a 16-byte protocol address the body is 52 bytes: make it fit
    const long = new Uint8Array(80);
    long.set(ipv6);
    d.decode(record(rarp));
    d.decode(record(long));
    expect(seen).toEqual([]);
    expect(d.stats.arp.other).toBe(2);
    expect(d.stats.malformed).toBe(0);
  });

  it('counts every cut or inconsistent ARP frame as malformed and never throws', () => {
    const { decoder: d, seen } = decoder();
    const whole = gratuitousArp(a);
    // Cut anywhere inside the 28-byte body (Ethernet header complete).
    for (let len = 14; len < 14 + 28; len++) d.decode(record(whole.subarray(0, len)));
    expect(d.stats.malformed).toBe(28);
    expect(Object.keys(d.stats.errors).sort()).toEqual(['arp: addresses past end', 'arp: short header']);
    // IPv4 with a protocol address length other than 4.
    const bad = Uint8Array.from(whole);
    bad[19] = 6;
    d.decode(record(bad));
    expect(d.stats.errors['arp: IPv4 address length not 4']).toBe(1);
    // Address lengths that run past the frame.
    const huge = Uint8Array.from(whole);
    huge[18] = 255;
    d.decode(record(huge));
    expect(d.stats.malformed).toBe(30);
    expect(seen).toEqual([]);
  });
});

describe('ARP decoder against tshark', () => {
  const gate = needs('tshark');
  const dir = tmpDir('callscope-arp-');
  afterAll(() => removeTmpDir(dir));

  gate.it('reads our generated frames as tshark does', () => {
    const file = join(dir, 'arp.pcap');
    const w = new PcapWriter(file);
    const frames = [...arpExchange(a, b), gratuitousArp(b), gratuitousArp(a, 7)];
    frames.forEach((f, i) => {
      w.write(1_700_000_000 + i, 0, f);
    });
    w.close();
    const out = execFileSync(
      'tshark',
      // biome-ignore format: option/value pairs
      ['-n', '-r', file, '-T', 'fields', '-E', 'separator=,', '-e', 'arp.opcode', '-e', 'arp.src.hw_mac',
        '-e', 'arp.src.proto_ipv4', '-e', 'arp.dst.proto_ipv4', '-e', 'arp.isgratuitous', '-e', 'vlan.id'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const theirs = out
      .trim()
      .split('\n')
      .map((line) => {
        const [op, mac, src, dst, gratuitous, vlan] = line.split(',');
        return {
          op: Number(op),
          senderMac: mac,
          senderIp: src,
          targetIp: dst,
          gratuitous: gratuitous === '1' || gratuitous === 'True',
          vlan: vlan ? Number(vlan) : null,
        };
      });
    const { decoder: d, seen } = decoder();
    frames.forEach((f, i) => {
      d.decode(record(f, i + 1));
    });
    expect(seen).toEqual(theirs);
  });
});
