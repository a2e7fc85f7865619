/**
 * The ladder on a terminal: one column per endpoint, two lines per message (time and words, then
 * delta and arrow), media streams as `===>` bars, HEP logs in time order. Within `width` (80 by
 * default): when the columns would be narrower than an arrow's words, the ladder folds into one line
 * per message naming its columns by number. Colour (ANSI) only when asked: the command asks on a TTY
 * unless NO_COLOR is set. Every captured string passes through terminalSafe.
 */
import type { Ladder, LadderMessage } from '../../core/ladder.js';
import {
  arrowText,
  clockTime,
  legName,
  legText,
  sdpText,
  streamText,
  terminalSafe,
  titleText,
} from './format.js';

export interface TextOptions {
  width?: number;
  colour?: boolean;
}

const TIME_WIDTH = 14;
const MIN_COLUMN = 16;

const ANSI = {
  reset: '\u001b[0m',
  dim: '\u001b[2m',
  bold: '\u001b[1m',
  request: '\u001b[36m',
  provisional: '\u001b[33m',
  success: '\u001b[32m',
  failure: '\u001b[31m',
  media: '\u001b[35m',
};

export function renderText(ladder: Ladder, options: TextOptions = {}): string {
  const width = Math.max(40, options.width ?? 80);
  const colour = options.colour ?? false;
  const paint = (code: string, text: string) => (colour ? `${code}${text}${ANSI.reset}` : text);
  const tone = (m: LadderMessage) =>
    m.retransmission
      ? ANSI.dim
      : m.request
        ? ANSI.request
        : (m.status ?? 0) < 200
          ? ANSI.provisional
          : (m.status ?? 0) < 300
            ? ANSI.success
            : ANSI.failure;
  const out: string[] = wrap(terminalSafe(titleText(ladder)), width, '', '  ').map((l) =>
    paint(ANSI.bold, l),
  );
  for (const [i, leg] of ladder.legs.entries())
    out.push(...wrap(terminalSafe(legText(leg, i)), width, '  ', '      '));
  out.push('');
  const n = ladder.endpoints.length;
  const columnWidth = n === 0 ? 0 : Math.floor((width - TIME_WIDTH) / n);
  const legMark = (leg: number) => (ladder.legs.length > 1 ? `${legName(leg)} ` : '');
  // Events (messages and logs) in time order; logs after messages at the same time.
  type Row = { time: number; message?: LadderMessage; log?: string };
  const rows: Row[] = [
    ...ladder.messages.map((message): Row => ({ time: message.time, message })),
    ...ladder.logs.map(
      (l): Row => ({
        time: l.time,
        log: `${l.leg === null ? '' : legMark(l.leg)}log: ${l.text}`,
      }),
    ),
  ].sort((a, b) => a.time - b.time || Number(a.message === undefined) - Number(b.message === undefined));

  if (n > 0 && columnWidth >= MIN_COLUMN) {
    const centre = (i: number) => TIME_WIDTH + i * columnWidth + Math.floor(columnWidth / 2);
    const blank = () => {
      const line = Array(TIME_WIDTH + n * columnWidth).fill(' ');
      for (let i = 0; i < n; i++) line[centre(i)] = '|';
      return line;
    };
    const put = (line: string[], at: number, text: string) => {
      for (let k = 0; k < text.length && at + k < line.length; k++) if (at + k >= 0) line[at + k] = text[k]!;
    };
    const labelLine = (pick: (e: (typeof ladder.endpoints)[number]) => string) => {
      const line = Array(TIME_WIDTH + n * columnWidth).fill(' ');
      ladder.endpoints.forEach((e, i) => {
        const text = clip(terminalSafe(pick(e)), columnWidth - 1);
        put(line, centre(i) - Math.floor(text.length / 2), text);
      });
      return line.join('').trimEnd();
    };
    out.push(labelLine((e) => e.label));
    const addresses = ladder.endpoints.map((e) => (e.port === null ? e.ip : `${e.ip}:${e.port}`));
    if (ladder.endpoints.some((e, i) => e.label !== addresses[i]))
      out.push(
        labelLine((e) =>
          e.port === null ? e.ip : e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`,
        ),
      );
    out.push(blank().join('').trimEnd());
    for (const row of rows) {
      if (row.log !== undefined) {
        const line = blank();
        put(line, 0, clockTime(row.time));
        put(line, TIME_WIDTH, clip(terminalSafe(row.log), width - TIME_WIDTH));
        out.push(paint(ANSI.dim, line.join('').trimEnd()));
        continue;
      }
      const m = row.message!;
      const a = centre(m.from);
      const b = centre(m.to);
      const lo = Math.min(a, b);
      const hi = Math.max(a, b);
      const span = hi - lo - 1;
      const full = terminalSafe(`${legMark(m.leg)}${arrowText(m)}`);
      // Narrow columns drop the CSeq before cutting the words.
      // Words longer than the arrow spill over the columns to its right, up to the width.
      const words = clip(
        full.length <= span ? full : terminalSafe(`${legMark(m.leg)}${arrowText(m, true)}`),
        Math.max(span, width - lo - 1),
      );
      const top = blank();
      put(top, 0, clockTime(m.time));
      put(top, lo + 1 + Math.max(0, Math.floor((hi - lo - 1 - words.length) / 2)), words);
      const arrow = blank();
      put(arrow, 0, `+${(m.deltaMs / 1000).toFixed(3)}s`.padStart(11));
      if (a === b) put(arrow, a, '|<-');
      else {
        for (let k = lo + 1; k < hi; k++) arrow[k] = '-';
        if (b > a) arrow[hi - 1] = '>';
        else arrow[lo + 1] = '<';
      }
      out.push(top.join('').trimEnd());
      out.push(paint(tone(m), arrow.join('').trimEnd()));
      const sdp = sdpText(m);
      if (sdp !== null) {
        const line = blank();
        const text = clip(terminalSafe(sdp), width - lo - 2);
        put(line, lo + 2, text);
        out.push(paint(ANSI.dim, line.join('').trimEnd()));
      }
    }
    if (ladder.streams.length > 0) {
      out.push(blank().join('').trimEnd());
      for (const s of ladder.streams) {
        const a = centre(s.from);
        const b = centre(s.to);
        const lo = Math.min(a, b);
        const hi = Math.max(a, b);
        const top = blank();
        put(top, 0, 'media');
        const words = clip(
          terminalSafe(`${s.leg === null ? '' : legMark(s.leg)}${streamText(s)}`),
          width - TIME_WIDTH,
        );
        put(top, TIME_WIDTH, words);
        const bar = blank();
        put(bar, 0, `${s.srcPort}>${s.dstPort}`.slice(0, TIME_WIDTH - 1));
        for (let k = lo + 1; k < hi; k++) bar[k] = '=';
        if (b > a) bar[hi - 1] = '>';
        else if (b < a) bar[lo + 1] = '<';
        out.push(top.join('').trimEnd());
        out.push(paint(ANSI.media, bar.join('').trimEnd()));
      }
    }
  } else {
    // Folded: the columns by number, one line per message.
    ladder.endpoints.forEach((e, i) => {
      const address = e.port === null ? e.ip : `${e.ip}:${e.port}`;
      out.push(clip(terminalSafe(`[${i + 1}] ${e.label}${e.label === address ? '' : ` ${address}`}`), width));
    });
    out.push('');
    for (const row of rows) {
      if (row.log !== undefined) {
        out.push(paint(ANSI.dim, clip(terminalSafe(`${clockTime(row.time)}  ${row.log}`), width)));
        continue;
      }
      const m = row.message!;
      const head = `${clockTime(m.time)} [${m.from + 1}]->[${m.to + 1}] `;
      out.push(paint(tone(m), clip(head + terminalSafe(`${legMark(m.leg)}${arrowText(m)}`), width)));
      const sdp = sdpText(m);
      if (sdp !== null)
        out.push(paint(ANSI.dim, clip(`${' '.repeat(head.length)}${terminalSafe(sdp)}`, width)));
    }
    for (const s of ladder.streams)
      out.push(
        paint(
          ANSI.media,
          clip(
            terminalSafe(
              `media [${s.from + 1}]=>[${s.to + 1}] ${s.leg === null ? '' : legMark(s.leg)}${streamText(s)}`,
            ),
            width,
          ),
        ),
      );
  }
  if (ladder.messagesOmitted > 0) out.push(`(${ladder.messagesOmitted} more messages not drawn)`);
  return `${out.join('\n')}\n`;
}

/** At most `width` characters, an ellipsis marking the cut. */
function clip(text: string, width: number): string {
  if (width <= 0) return '';
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}~`;
}

/** Words onto lines of at most `width`, the first after `first`, the rest after `rest` (long words cut). */
function wrap(text: string, width: number, first: string, rest: string): string[] {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const word of text.split(' ')) {
    const room = width - line.length - (empty ? 0 : 1);
    if (word.length <= room) {
      line += empty ? word : ` ${word}`;
      empty = false;
      continue;
    }
    if (!empty) lines.push(line);
    line = rest + clip(word, width - rest.length);
    empty = false;
  }
  lines.push(line);
  return lines;
}
