/**
 * `callscope ladder`: the ladder of one call, every B2BUA leg of it in one diagram, from the store or
 * straight from a capture file, as terminal text, SVG, a self-contained HTML page, Mermaid or JSON
 * (docs/LADDER.md).
 */
import { writeFileSync } from 'node:fs';
import { buildLadder } from '../../analyze/ladder/build.js';
import { ladderInputFromFile, ladderInputFromStore } from '../../analyze/ladder/gather.js';
import { renderHtml } from '../../analyze/ladder/html.js';
import { renderMermaid } from '../../analyze/ladder/mermaid.js';
import { renderSvg } from '../../analyze/ladder/svg.js';
import { renderText } from '../../analyze/ladder/text.js';
import type { Ladder } from '../../core/ladder.js';
import { migrate } from '../../ingest/schema/migrate.js';
import { type Command, parseCommand } from '../command.js';
import { type Settings, UsageError } from '../config.js';
import { EXIT_OK } from '../errors.js';
import {
  COMMON,
  COMMON_HELP,
  callIdOf,
  captureOptionsOf,
  databaseOf,
  EXIT_CODES_HELP,
  LINK_FLAGS,
  LINK_HELP,
  linkOf,
  STORE_FLAGS,
  STORE_HELP,
  ttlDaysOf,
} from '../flags.js';
import { storeFor } from '../store.js';

const FORMATS = ['text', 'svg', 'html', 'mermaid', 'json'] as const;
type Format = (typeof FORMATS)[number];

/** `--alias 10.0.0.1=sbc,10.0.0.2:5060=proxy`: column names by address or address:port. */
export function aliasesOf(settings: Settings): Map<string, string> {
  const aliases = new Map<string, string>();
  const text = settings.string('alias');
  if (text === undefined) return aliases;
  for (const item of text.split(',')) {
    const at = item.lastIndexOf('=');
    if (at <= 0 || at === item.length - 1)
      throw new UsageError(`--alias takes ADDRESS[:PORT]=NAME pairs separated by commas, got "${item}"`);
    aliases.set(item.slice(0, at).trim(), item.slice(at + 1).trim());
  }
  return aliases;
}

export function renderLadder(
  ladder: Ladder,
  format: Format,
  options: { width?: number; colour?: boolean },
): string {
  switch (format) {
    case 'text':
      return renderText(ladder, options);
    case 'svg':
      return renderSvg(ladder);
    case 'html':
      return renderHtml(ladder);
    case 'mermaid':
      return renderMermaid(ladder);
    case 'json':
      return `${JSON.stringify(ladder, null, 2)}\n`;
  }
}

export const ladderCommand: Command = {
  name: 'ladder',
  summary:
    'the ladder of one call (every leg, hop, branch and media stream) as text, SVG, HTML, Mermaid or JSON',
  help: `Usage: callscope ladder CALL-ID [--format F] [-o FILE] [store options]
       callscope ladder --pcap FILE --call-id ID [--format F] [-o FILE]

The call's messages in capture order between its endpoints (one column each: --alias name, else
its VM, else address:port), with method or status, CSeq, time and delta, resends marked, the SDP of
offers and answers, the branches a proxy tried, every B2BUA leg linked to the call (A, B...), its
media streams with packets, loss, jitter and MOS, HEP logs of the call, and each leg's outcome, PDD
and duration. docs/LADDER.md shows each format.

Options:
  --call-id ID           the call (or give it as the argument)
  --pcap FILE            read the call from this capture file instead of the store
  --format F             ${FORMATS.join(', ')} (text; --json is --format json)
  -o, --output FILE      write there instead of stdout
  --alias LIST           column names: ADDRESS[:PORT]=NAME,... (e.g. 10.0.0.1=sbc)
  --leg-only             only the leg of this Call-ID, not the B2BUA legs linked to it
  --width N              terminal text width (the terminal's, else 80); narrower folds the columns
  --max-messages N       draw at most N messages (text and JSON 100000, SVG and HTML 2000)
  --color, --no-color    colour the text (default: on a terminal, unless NO_COLOR is set)

${LINK_HELP}
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
        ...LINK_FLAGS,
        'call-id': { type: 'string' },
        pcap: { type: 'string' },
        format: { type: 'string' },
        output: { type: 'string', short: 'o' },
        alias: { type: 'string' },
        'leg-only': { type: 'boolean' },
        width: { type: 'string' },
        'max-messages': { type: 'string' },
        color: { type: 'boolean' },
        'no-color': { type: 'boolean' },
      },
      { optional: 'CALL-ID' },
    );
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger, file: positional } = parsed;
    const callId = callIdOf(settings, positional, 'ladder');
    const format = (values.json ? 'json' : (settings.string('format') ?? 'text')) as Format;
    if (!FORMATS.includes(format))
      throw new UsageError(`--format must be one of ${FORMATS.join(', ')}, got "${format}"`);
    const output = settings.string('output');
    const drawn = format === 'svg' || format === 'html' ? 2000 : 100_000;
    const maxMessages = settings.number('max-messages', drawn);
    if (!Number.isInteger(maxMessages) || maxMessages < 1)
      throw new UsageError(`--max-messages must be a whole number >= 1, got ${maxMessages}`);
    const widthSetting = settings.string('width');
    const width = widthSetting === undefined ? (process.stdout.columns ?? 80) : Number(widthSetting);
    if (!Number.isInteger(width) || width < 40)
      throw new UsageError(`--width must be a whole number >= 40, got ${widthSetting}`);
    const colour =
      values['no-color'] === true
        ? false
        : values.color === true ||
          (output === undefined && process.stdout.isTTY === true && !process.env.NO_COLOR);
    const legs = values['leg-only'] !== true;
    const pcap = settings.string('pcap');
    let input: Awaited<ReturnType<typeof ladderInputFromFile>>;
    if (pcap !== undefined) {
      input = await ladderInputFromFile(pcap, callId, {
        capture: captureOptionsOf(settings, logger, null),
        link: linkOf(settings),
        logger,
        legs,
      });
    } else {
      const database = databaseOf(settings);
      const store = await storeFor(settings, logger, { mustExist: true });
      try {
        await migrate(store.client, { database, ttlDays: ttlDaysOf(settings), logger });
        input = await ladderInputFromStore(store.client, database, callId, { legs });
      } finally {
        await store.close();
      }
    }
    const ladder = buildLadder(input, { aliases: aliasesOf(settings), maxMessages });
    const text = renderLadder(ladder, format, { width, colour });
    if (output !== undefined) writeFileSync(output, text);
    else process.stdout.write(text);
    return EXIT_OK;
  },
};
