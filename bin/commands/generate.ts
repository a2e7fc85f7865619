/** `callscope generate`: a capture of realistic SIP calls with RTP, from our own traffic generator. */
import { writeFileSync } from 'node:fs';
import {
  generateCapture,
  OUTCOMES,
  type OutcomeMix,
  parseOutcomeMix,
} from '../../capture/generator/generate.js';
import { type Command, parseCommand } from '../command.js';
import { UsageError } from '../config.js';
import { EXIT_OK } from '../errors.js';
import { COMMON, COMMON_HELP, EXIT_CODES_HELP } from '../flags.js';

export const generateCommand: Command = {
  name: 'generate',
  summary: 'write a capture of realistic SIP calls with RTP, and its ground truth',
  help: `Usage: callscope generate --output FILE.pcap [options] [--json]

Write a capture of realistic SIP calls with RTP between VMs, and its ground truth as JSON. By default
calls are answered, busy, cancelled, 503, unanswered with retransmissions or 407-challenged (70:6:6:6:6:6).

  --output FILE          the pcap to write (required)
  --truth FILE           the ground truth (every call, its outcome and messages) as JSON
  --calls N              calls (50)              --rate CPS     calls started per second (5)
  --vms N                VMs taking part (4)     --duration S   answered calls' length (5)
  --seed N               random seed (1): the same seed writes the same file
  --loss P --jitter MS --reorder P   RTP impairments (fraction, ms, fraction)
  --codec PCMU|PCMA|G729 voice codec (PCMU)    --no-rtp   SIP only
  --outcomes MIX         the outcome mix: "all" (each outcome once), or outcomes with optional weights,
                         e.g. answered=70,busy=6,b2bua (a bare name weighs 1); outcomes:
                         ${OUTCOMES.join(', ')}

${COMMON_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(this, argv, {
      ...COMMON,
      output: { type: 'string', short: 'o' },
      truth: { type: 'string' },
      calls: { type: 'string' },
      rate: { type: 'string' },
      vms: { type: 'string' },
      duration: { type: 'string' },
      seed: { type: 'string' },
      loss: { type: 'string' },
      jitter: { type: 'string' },
      reorder: { type: 'string' },
      codec: { type: 'string' },
      'no-rtp': { type: 'boolean' },
      outcomes: { type: 'string' },
    });
    if (parsed === null) return EXIT_OK;
    const { values, settings } = parsed;
    const output = settings.string('output');
    if (!output) throw new UsageError('generate needs --output FILE');
    const codec = settings.string('codec', 'PCMU');
    if (codec !== 'PCMU' && codec !== 'PCMA' && codec !== 'G729')
      throw new UsageError(`unknown codec "${codec}"`);
    const mixText = settings.string('outcomes');
    let outcomes: OutcomeMix | undefined;
    try {
      outcomes = mixText === undefined ? undefined : parseOutcomeMix(mixText);
    } catch (e) {
      throw new UsageError(`--outcomes: ${(e as Error).message}`);
    }
    const started = performance.now();
    const truth = generateCapture({
      output,
      calls: settings.number('calls', 50),
      callsPerSecond: settings.number('rate', 5),
      vms: settings.number('vms', 4),
      callDurationSec: settings.number('duration', 5),
      seed: settings.number('seed', 1),
      outcomes,
      rtp: {
        enabled: !values['no-rtp'],
        codec,
        lossRate: settings.number('loss', 0),
        jitterMs: settings.number('jitter', 0),
        reorderRate: settings.number('reorder', 0),
      },
    });
    const truthPath = settings.string('truth');
    if (truthPath) writeFileSync(truthPath, `${JSON.stringify(truth, null, 2)}\n`);
    const seconds = (performance.now() - started) / 1000;
    const result = {
      output,
      truth: truthPath ?? null,
      packets: truth.packets,
      calls: truth.calls.length,
      sip: truth.sip,
      seconds,
    };
    process.stdout.write(
      values.json
        ? `${JSON.stringify(result, null, 2)}\n`
        : `wrote ${output}: ${truth.packets} packets, ${truth.calls.length} calls, ${truth.sip.messages} SIP messages in ${seconds.toFixed(2)} s\n`,
    );
    return EXIT_OK;
  },
};
