/**
 * Exit codes (sysexits where one fits) and how an error becomes one line and a code. Operational
 * errors — a file that is not a capture, a store in use, a service that does not answer — name their
 * cause and remedy in one line; only an error nobody foresaw (a bug) prints its stack.
 */
import { UnknownRunError } from '../analyze/store-summary.js';
import { CaptureFormatError } from '../capture/file/record.js';
import { LiveCaptureError } from '../capture/live/binding.js';
import { KafkaTransportError } from '../ingest/kafka/errors.js';
import { UsageError } from './config.js';
import { VmSourceError } from './vms.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
/** A capture file unusable from its first byte, or an interface that cannot be captured on. */
export const EXIT_UNUSABLE_INPUT = 2;
export const EXIT_USAGE = 64;
/** What was named does not exist (sysexits EX_NOINPUT): a data directory without a store, a run. */
export const EXIT_NO_INPUT = 66;
/** A service named on the command line does not answer (EX_UNAVAILABLE): OVSDB, ClickHouse, Kafka. */
export const EXIT_UNAVAILABLE = 69;
/** In use by another process (EX_TEMPFAIL): the data directory, the port. */
export const EXIT_IN_USE = 75;

/** An error that knows its exit code and says its remedy in its message. */
export interface OperationalError {
  readonly exitCode: number;
  readonly message: string;
}

function isOperational(error: unknown): error is OperationalError {
  return error instanceof Error && typeof (error as Partial<OperationalError>).exitCode === 'number';
}

/** The exit code of an error, and the line to print (with the stack only for the unforeseen). */
export function describeFailure(error: unknown, program: string): { code: number; text: string } {
  const message = error instanceof Error ? error.message : String(error);
  const line = (code: number, extra = '') => ({ code, text: `${program}: ${message}\n${extra}` });
  if (error instanceof UsageError || (error as { code?: string })?.code?.startsWith('ERR_PARSE_ARGS'))
    return line(EXIT_USAGE, `Try '${program} --help'.\n`);
  if (error instanceof CaptureFormatError) return line(EXIT_UNUSABLE_INPUT);
  if (error instanceof LiveCaptureError)
    return line(error.reason === 'pcap-missing' ? EXIT_FAILURE : EXIT_UNUSABLE_INPUT);
  if (error instanceof VmSourceError) return line(EXIT_UNAVAILABLE);
  if (error instanceof UnknownRunError) return line(EXIT_NO_INPUT);
  if (error instanceof KafkaTransportError) return line(EXIT_UNAVAILABLE);
  if (isOperational(error)) return line(error.exitCode);
  return {
    code: EXIT_FAILURE,
    text: `${program}: ${error instanceof Error ? (error.stack ?? message) : message}\n`,
  };
}

/**
 * A capture file that ends in the middle of a packet, as tshark reports it: everything before the cut
 * was used, and the command still exits 2 so that a script notices. Returns the exit code.
 */
export function cutShortExit(
  file: string,
  summary: { decode: { truncatedRecords: number; fileWarnings: string[] } },
): number {
  if (summary.decode.truncatedRecords === 0) return EXIT_OK;
  const where = summary.decode.fileWarnings.find((w) => w.includes('cut off by end of file'));
  process.stderr.write(
    `callscope: ${file} appears to have been cut short in the middle of a packet; everything before it was used` +
      `${where ? ` (${where})` : ''}\n`,
  );
  return EXIT_UNUSABLE_INPUT;
}
