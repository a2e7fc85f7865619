/**
 * `callscope export`: one call out of the store, every B2BUA leg with --legs, as a pcap a vendor opens
 * in Wireshark, an sngrep-like text dump, or CSV (one row per message).
 */
import { writeFileSync } from 'node:fs';
import { callCsv, callText, spooledMedia, writeCallPcap } from '../../analyze/export/call-export.js';
import { ladderInputFromStore } from '../../analyze/ladder/gather.js';
import { migrate } from '../../ingest/schema/migrate.js';
import { type Command, parseCommand } from '../command.js';
import { UsageError } from '../config.js';
import { EXIT_OK } from '../errors.js';
import {
  COMMON,
  COMMON_HELP,
  callIdOf,
  databaseOf,
  EXIT_CODES_HELP,
  STORE_FLAGS,
  STORE_HELP,
  ttlDaysOf,
} from '../flags.js';
import { storeFor } from '../store.js';

export const exportCommand: Command = {
  name: 'export',
  summary: "one call's messages from the store as a pcap, an sngrep-like text dump or CSV",
  help: `Usage: callscope export CALL-ID -o FILE.pcap [--legs] [store options]
       callscope export CALL-ID --text|--csv [-o FILE] [--legs] [store options]

The stored SIP messages of one call, in capture order. As a pcap (the default), each message becomes
packets with its capture time, addresses, ports, VLAN and transport: UDP datagrams, a TCP stream per
connection opened by a handshake (TLS and WebSocket as their cleartext over TCP), SCTP DATA chunks;
IPv4 or IPv6. Wireshark and tshark read it as a capture. --text writes what sngrep saves as text,
--csv one row per message. The store keeps SIP; with --rtp-dir the pcap also has the call's RTP,
RTCP and T.38 as the capture agent spooled them (\`run\`/\`capture --save-rtp DIR\`).

Options:
  --call-id ID           the call (or give it as the argument)
  -o, --output FILE      where to write (a pcap needs one; text and CSV default to stdout)
  --legs                 every B2BUA leg linked to the call, not only this Call-ID
  --text                 sngrep-like text: a header line per message, then the message as captured
  --csv                  one row per message: time, Call-ID, addresses, transport, method or status...
  --rtp-dir DIR          add the call's media from the RTP spool a capture kept (\`--save-rtp DIR\`)

${STORE_HELP}
${COMMON_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(
      this,
      argv,
      {
        ...COMMON,
        ...STORE_FLAGS,
        'call-id': { type: 'string' },
        output: { type: 'string', short: 'o' },
        legs: { type: 'boolean' },
        text: { type: 'boolean' },
        csv: { type: 'boolean' },
        'rtp-dir': { type: 'string' },
      },
      { optional: 'CALL-ID' },
    );
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger, file: positional } = parsed;
    const callId = callIdOf(settings, positional, 'export');
    if (values.text && values.csv) throw new UsageError('--text and --csv: choose one');
    const output = settings.string('output');
    if (!values.text && !values.csv && output === undefined)
      throw new UsageError('a pcap needs a file: -o FILE.pcap (or --text / --csv for stdout)');
    const database = databaseOf(settings);
    const store = await storeFor(settings, logger, { mustExist: true });
    let input: Awaited<ReturnType<typeof ladderInputFromStore>>;
    try {
      await migrate(store.client, { database, ttlDays: ttlDaysOf(settings), logger });
      input = await ladderInputFromStore(store.client, database, callId, { legs: values.legs === true });
    } finally {
      await store.close();
    }
    if (values.text || values.csv) {
      const content = values.text ? callText(input.events) : callCsv(input.events);
      if (output === undefined) process.stdout.write(content);
      else writeFileSync(output, content);
      return EXIT_OK;
    }
    const rtpDir = settings.string('rtp-dir');
    const media =
      rtpDir === undefined
        ? { packets: [], files: 0, skipped: 0 }
        : await spooledMedia(rtpDir, [...new Set(input.events.map((e) => e.sip?.callId ?? callId))]);
    if (media.skipped > 0)
      logger.warn('spooled packets of another link type than Ethernet left out', { count: media.skipped });
    const { packets } = writeCallPcap(output!, input.events, media.packets);
    const summary = {
      file: output,
      messages: input.events.length,
      mediaPackets: media.packets.length,
      packets,
    };
    if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else
      process.stderr.write(
        `callscope export: ${summary.messages} messages and ${summary.mediaPackets} media packets in ${packets} packets → ${output}\n`,
      );
    return EXIT_OK;
  },
};
