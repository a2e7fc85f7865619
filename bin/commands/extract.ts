/**
 * `callscope extract`: one call's packets copied out of a capture, SIP and media as captured.
 */
import { extractCall } from '../../analyze/export/extract.js';
import { type Command, parseCommand } from '../command.js';
import { UsageError } from '../config.js';
import { EXIT_OK } from '../errors.js';
import {
  COMMON,
  COMMON_HELP,
  captureOptionsOf,
  EXIT_CODES_HELP,
  LINK_FLAGS,
  LINK_HELP,
  linkOf,
} from '../flags.js';

export const extractCommand: Command = {
  name: 'extract',
  summary: "one call's packets (SIP, RTP, RTCP, T.38) copied out of a capture into a pcap",
  help: `Usage: callscope extract --pcap FILE --call-id ID -o OUT.pcap [--legs]

Copies every packet of one call from a capture, as captured: its SIP messages (every B2BUA leg's
with --legs), the TCP connections and SCTP associations that carried them, the RTP and RTCP of the
streams bound to it (by its SDP, or found by the RTP heuristic and tied to it), and any UDP to or from
an address:port its SDP offered while the call lasted (T.38's UDPTL). Fragments of a kept datagram
are kept with it. Wireshark's RTP player and \`tshark -z rtp,streams\` read the result as the original.

Options:
  --pcap FILE            the capture to read
  --call-id ID           the call
  -o, --output FILE      the pcap to write
  --legs                 every B2BUA leg linked to the call, not only this Call-ID

${LINK_HELP}
${COMMON_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(this, argv, {
      ...COMMON,
      ...LINK_FLAGS,
      pcap: { type: 'string' },
      'call-id': { type: 'string' },
      output: { type: 'string', short: 'o' },
      legs: { type: 'boolean' },
    });
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger } = parsed;
    const pcap = settings.string('pcap');
    const callId = settings.string('call-id');
    const output = settings.string('output');
    if (pcap === undefined || callId === undefined || output === undefined)
      throw new UsageError('extract needs --pcap FILE, --call-id ID and -o OUT.pcap');
    const started = performance.now();
    const result = await extractCall(pcap, callId, output, {
      legs: values.legs === true,
      capture: captureOptionsOf(settings, logger, null),
      link: linkOf(settings),
      logger,
    });
    const seconds = (performance.now() - started) / 1000;
    if (values.json) process.stdout.write(`${JSON.stringify({ ...result, output, seconds })}\n`);
    else
      process.stderr.write(
        `callscope extract: ${result.packetsWritten} of ${result.packetsRead} packets → ${output} ` +
          `(${result.sipMessages} SIP messages, ${result.streams} media streams, ${result.callIds.length} Call-ID(s))\n`,
      );
    if (result.otherLinkType > 0)
      logger.warn('packets of another link type left out', { count: result.otherLinkType, file: pcap });
    return EXIT_OK;
  },
};
