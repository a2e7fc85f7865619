/** `callscope analyze FILE`: a capture file → the summary (nothing stored). */
import { CaptureSummary } from '../../analyze/summary.js';
import { FileSource } from '../../capture/sources.js';
import { drive } from '../../core/drive.js';
import { type Command, parseCommand } from '../command.js';
import { cutShortExit, EXIT_OK } from '../errors.js';
import {
  COMMON,
  COMMON_HELP,
  captureOptionsOf,
  EXIT_CODES_HELP,
  LINK_FLAGS,
  LINK_HELP,
  linkOf,
  MEDIA_FLAGS,
  MEDIA_HELP,
  progressFor,
} from '../flags.js';
import { formatSummary } from '../report.js';
import { VM_FLAGS, VM_HELP, vmSourceFor } from '../vms.js';

export const analyzeCommand: Command = {
  name: 'analyze',
  summary: 'summarise a pcap/pcapng capture: SIP per method and status, RTP streams worst first',
  help: `Usage: callscope analyze FILE [--json] [options]

Decode a pcap/pcapng capture and summarise its SIP (messages per method and status, retransmissions
counted as tshark counts them, Call-IDs, the busiest endpoints), its calls (one per call, however many
messages, hops and legs: outcomes, final statuses, ASR, SER, SEER, NER, ISA, SCR, ACD, PDD, failed-call
ratio, peaks of calls up and attempts waiting; \`callscope calls --pcap FILE\` lists them) and its RTP
streams (tshark's RTP Streams figures per stream, plus loss bursts, delay variation, RTCP and MOS),
worst first. Nothing is stored: the ClickHouse engine is not even loaded.

${COMMON_HELP}
${MEDIA_HELP}
${VM_HELP}
${LINK_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(this, argv, { ...COMMON, ...MEDIA_FLAGS, ...VM_FLAGS, ...LINK_FLAGS }, 1);
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger, file } = parsed;
    const vms = await vmSourceFor(settings, logger);
    const progress = progressFor('analyze', values);
    try {
      const summary = new CaptureSummary({ logger, calls: { link: linkOf(settings) } });
      const source = new FileSource(file, {
        ...captureOptionsOf(settings, logger, vms),
        onProgress: (done, total, packets) => progress.update(done, total, packets),
      });
      const result = await drive(source, summary.sinks, { logger });
      progress.done();
      const s = await summary.of(result.source);
      process.stdout.write(values.json ? `${JSON.stringify(s, null, 2)}\n` : `${formatSummary(s)}\n`);
      return cutShortExit(file, s);
    } finally {
      progress.done();
      await vms?.close();
    }
  },
};
