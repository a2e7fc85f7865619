#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { analyzeFile } from '../capture/analyze.js';
import { CaptureFormatError } from '../capture/file/record.js';
import { generateCapture } from '../capture/generator/generate.js';
import {
  COMMON,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_UNAVAILABLE,
  EXIT_UNUSABLE_INPUT,
  EXIT_USAGE,
  loggerFor,
  MEDIA_FLAGS,
  pipelineOptionsOf,
  progressFor,
} from './common.js';
import { Settings, UsageError } from './config.js';
import { formatSummary } from './report.js';
import { LIVE_HELP, runCommand, STORE_HELP, statsCommand, storeCommand } from './store-commands.js';
import { captureCommand, ingestCommand, STREAM_HELP } from './stream-commands.js';
import { VM_FLAGS, VM_HELP, VmSourceError, vmSourceFor } from './vms.js';

const HELP = `callscope — see every call your VMs carry

Usage:
  callscope analyze <file> [--json] [--no-progress] [--rtp-heuristic on|off]
                    [--report-interval S] [--rtp-idle-timeout S]
      Decode a pcap/pcapng capture and summarise its SIP (messages per method and status,
      retransmissions counted as tshark counts them) and its RTP streams (tshark's RTP Streams
      figures per stream, plus loss bursts, delay variation, RTCP and MOS), worst first.
  callscope run --pcap <file> | --interface <iface> [live options] [--json] [store options]
      Capture → store in one process: decode the file (or capture live on the interface until
      SIGINT/SIGTERM or --duration) and write every SIP message and media report, and live
      capture health, into the store (embedded chDB in --data-dir unless --clickhouse URL).
  callscope stats [--json] [--run ID|latest|all] [store options]
      The analyze summary of a stored run (default: the latest), computed by SQL from the store.
  callscope store [--data-dir DIR] [--port 8123]
      Serve the embedded store over the ClickHouse HTTP interface on 127.0.0.1 (for
      clickhouse-client, Grafana's ClickHouse plugin, or another callscope process).
  callscope capture --pcap <file> | --interface <iface> [live options]
                    [--kafka BROKERS] [--hep-to udp|tcp:HOST:PORT] [--json]
      Capture agent (split mode): decode and send every event HEP3-encoded to Kafka (keyed by
      Call-ID; spooled on disk while brokers are down) and/or as HEP to an existing HOMER.
  callscope ingest [--kafka BROKERS] [--hep-listen [HOST:]PORT] [store options]
      Ingest service (split mode): a Kafka consumer group and/or a HEP3 listener (heplify,
      Kamailio siptrace, Asterisk res_hep, FreeSWITCH, sngrep) writing into the store.
  callscope generate --output <file.pcap> [--calls N] [--rate CPS] [--vms N] [--duration S]
                     [--seed N] [--loss P] [--jitter MS] [--reorder P] [--codec PCMU|PCMA|G729]
                     [--truth <file.json>]
      Write a capture of realistic SIP calls with RTP, and its ground truth as JSON.
  callscope help | --help      callscope --version

Common options:
  --json                 machine-readable output on stdout
  --log-level LEVEL      debug, info, warn (default), error, silent    env CALLSCOPE_LOG_LEVEL
  --log-format FORMAT    json (default when not a terminal) or text    env CALLSCOPE_LOG_FORMAT
  --node-name NAME       capture node name carried in events           env CALLSCOPE_NODE_NAME
  --capture-id N         HEP capture agent id                          env CALLSCOPE_CAPTURE_ID
  --config FILE          JSON file with the same settings (camelCase)  env CALLSCOPE_CONFIG

${STORE_HELP}
${LIVE_HELP}
${VM_HELP}
${STREAM_HELP}
Media options (analyze, run):
  --rtp-heuristic on|off find RTP no SDP announced by its headers (on)  env CALLSCOPE_RTP_HEURISTIC
  --report-interval S    seconds between a stream's quality reports (10) env CALLSCOPE_REPORT_INTERVAL
  --rtp-idle-timeout S   a stream silent this long has ended (60)      env CALLSCOPE_RTP_IDLE_TIMEOUT

Exit codes: 0 success (also after SIGINT/SIGTERM ends a live capture), 1 failure, 2 unusable
input file or an interface that cannot be captured on, 64 usage error.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function analyzeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...COMMON,
      ...MEDIA_FLAGS,
      ...VM_FLAGS,
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return EXIT_OK;
  }
  if (positionals.length !== 1) throw new UsageError('analyze takes exactly one capture file');
  const settings = new Settings(values);
  const logger = loggerFor(settings);
  const file = positionals[0];
  const vms = await vmSourceFor(settings, logger);
  const progress = progressFor('analyze', values);
  try {
    const summary = await analyzeFile(file, {
      ...pipelineOptionsOf(settings, logger, vms),
      onProgress: (done, total, packets) => progress.update(done, total, packets),
    });
    progress.done();
    process.stdout.write(
      values.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`,
    );
    return EXIT_OK;
  } finally {
    progress.done();
    await vms?.close();
  }
}

async function generateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
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
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return EXIT_OK;
  }
  const settings = new Settings(values);
  const output = settings.string('output');
  if (!output) throw new UsageError('generate needs --output FILE');
  const codec = settings.string('codec', 'PCMU');
  if (codec !== 'PCMU' && codec !== 'PCMA' && codec !== 'G729')
    throw new UsageError(`unknown codec "${codec}"`);
  const started = performance.now();
  const truth = generateCapture({
    output,
    calls: settings.number('calls', 50),
    callsPerSecond: settings.number('rate', 5),
    vms: settings.number('vms', 4),
    callDurationSec: settings.number('duration', 5),
    seed: settings.number('seed', 1),
    rtp: {
      enabled: !values['no-rtp'],
      codec,
      lossRate: settings.number('loss', 0),
      jitterMs: settings.number('jitter', 0),
      reorderRate: settings.number('reorder', 0),
    },
  });
  const truthPath = settings.string('truth');
  if (truthPath) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(truthPath, `${JSON.stringify(truth, null, 2)}\n`);
  }
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
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'analyze':
        return await analyzeCommand(rest);
      case 'generate':
        return await generateCommand(rest);
      case 'run':
        return await runCommand(rest, HELP);
      case 'stats':
        return await statsCommand(rest, HELP);
      case 'store':
        return await storeCommand(rest, HELP);
      case 'capture':
        return await captureCommand(rest, HELP);
      case 'ingest':
        return await ingestCommand(rest, HELP);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        return command === undefined ? EXIT_USAGE : EXIT_OK;
      case '--version':
      case '-v':
        process.stdout.write(`${version()}\n`);
        return EXIT_OK;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    // A capture file unusable from its first byte, whichever command read it.
    if (e instanceof CaptureFormatError) {
      process.stderr.write(`callscope: ${e.message}\n`);
      return EXIT_UNUSABLE_INPUT;
    }
    if (e instanceof VmSourceError) {
      process.stderr.write(`callscope: ${e.message}\n`);
      return EXIT_UNAVAILABLE;
    }
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`callscope: ${(e as Error).message}\nTry 'callscope --help'.\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`callscope: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT_FAILURE;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
