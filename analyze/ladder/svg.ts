/**
 * The ladder as a standalone SVG: a header with each leg's outcome, one column per endpoint, one
 * arrow per message (a group `g.msg` with `data-i`, the message's index, which the HTML page uses),
 * legs told apart by colour and letter, media streams as thick bars below. Captured text is escaped
 * for XML, characters XML 1.0 cannot carry replaced.
 */
import type { Ladder } from '../../core/ladder.js';
import { arrowText, clockTime, legName, legText, sdpText, streamText, titleText } from './format.js';

const COLUMN = 190;
const LEFT = 110;
const ROW = 30;
const SDP_ROW = 14;
const LINE = 16;
/** Advance of one character of the 11 px monospace font. */
const CHAR = 6.7;
const LEG_COLOURS = ['#1f5fa8', '#a8461f', '#2a7d2a', '#7a2a8c', '#8c6d1f', '#1f7d7d'];

/** Text for XML content and attribute values. */
export function xmlText(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udfff]/g, '\ufffd')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export function legColour(leg: number | null): string {
  return leg === null ? '#555' : LEG_COLOURS[leg % LEG_COLOURS.length]!;
}

/** The SVG element; `standalone` adds the XML declaration. */
export function renderSvg(ladder: Ladder, options: { standalone?: boolean } = {}): string {
  const n = Math.max(1, ladder.endpoints.length);
  // Wide enough for the longest header and media line (monospace, 11 px).
  let widest = Math.max(
    LEFT + n * COLUMN + 20,
    6 + titleText(ladder).length * 7.5,
    ...ladder.legs.map((leg, i) => 6 + legText(leg, i).length * CHAR),
  );
  const header = 2 + ladder.legs.length;
  const top = header * LINE + 3 * LINE;
  const x = (i: number) => LEFT + i * COLUMN + COLUMN / 2;
  const parts: string[] = [];
  let y = top + LINE;
  const rows = [
    ...ladder.messages.map((m, i) => ({ time: m.time, message: m, index: i })),
    ...ladder.logs.map((l) => ({ time: l.time, log: l })),
  ].sort((a, b) => a.time - b.time);
  for (const row of rows) {
    if ('log' in row && row.log !== undefined) {
      y += LINE;
      parts.push(
        `<text class="log" x="${LEFT}" y="${y}">${xmlText(`${clockTime(row.time)} ${row.log.leg === null ? '' : `${legName(row.log.leg)} `}log: ${row.log.text}`)}</text>`,
      );
      continue;
    }
    if (!('message' in row) || row.message === undefined) continue;
    const m = row.message;
    y += ROW;
    const a = x(m.from);
    const b = x(m.to);
    const colour = legColour(m.leg);
    const dash = m.request ? '' : ' stroke-dasharray="6 3"';
    const words = `${ladder.legs.length > 1 ? `${legName(m.leg)} ` : ''}${arrowText(m)}`;
    const head =
      b >= a
        ? `${b - 8},${y - 4} ${b},${y} ${b - 8},${y + 4}`
        : `${b + 8},${y - 4} ${b},${y} ${b + 8},${y + 4}`;
    const sdp = sdpText(m);
    parts.push(
      `<g class="msg leg-${m.leg}${m.retransmission ? ' resent' : ''}" data-i="${row.index}" data-leg="${m.leg}">` +
        `<title>${xmlText(`${clockTime(m.time)} +${m.deltaMs} ms ${m.transport}`)}</title>` +
        `<text class="time" x="6" y="${y - 3}">${xmlText(clockTime(m.time))}</text>` +
        `<text class="delta" x="6" y="${y + 10}">+${xmlText((m.deltaMs / 1000).toFixed(3))}s</text>` +
        `<text class="words" x="${(a + b) / 2}" y="${y - 5}" fill="${colour}">${xmlText(words)}</text>` +
        (a === b
          ? `<path d="M${a},${y - 6} h24 v10 h-24" fill="none" stroke="${colour}"${dash}/>`
          : `<line x1="${a}" y1="${y}" x2="${b}" y2="${y}" stroke="${colour}" stroke-width="1.5"${dash}/>` +
            `<polygon points="${head}" fill="${colour}"/>`) +
        (sdp === null
          ? ''
          : `<text class="sdp" x="${(a + b) / 2}" y="${y + SDP_ROW - 2}">${xmlText(sdp)}</text>`) +
        `<rect class="hit" x="${Math.min(a, b)}" y="${y - 18}" width="${Math.max(24, Math.abs(b - a))}" height="24" fill="transparent"/>` +
        '</g>',
    );
    if (sdp !== null) y += SDP_ROW;
  }
  if (ladder.streams.length > 0) y += LINE;
  for (const s of ladder.streams) {
    y += ROW;
    const a = x(s.from);
    const b = x(s.to);
    const colour = legColour(s.leg);
    const words = `${s.leg === null ? '' : `${legName(s.leg)} `}${s.src}:${s.srcPort} → ${s.dst}:${s.dstPort} ${streamText(s)}`;
    widest = Math.max(widest, Math.min(a, b) + words.length * CHAR);
    parts.push(
      `<g class="stream" data-leg="${s.leg ?? ''}">` +
        `<text class="time" x="6" y="${y + 4}">media</text>` +
        `<line x1="${a}" y1="${y}" x2="${b === a ? a + 24 : b}" y2="${y}" stroke="${colour}" stroke-width="6" stroke-opacity="0.45"/>` +
        `<text class="stream-words" x="${Math.min(a, b)}" y="${y - 6}">${xmlText(words)}</text>` +
        '</g>',
    );
  }
  if (ladder.messagesOmitted > 0) {
    y += ROW;
    parts.push(
      `<text class="log" x="${LEFT}" y="${y}">${ladder.messagesOmitted} more messages not drawn</text>`,
    );
  }
  const height = y + ROW;
  const width = Math.ceil(widest + 20);
  const columns = ladder.endpoints
    .map((e, i) => {
      const address =
        e.port === null ? e.ip : e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
      return (
        `<text class="endpoint" x="${x(i)}" y="${top - LINE}">${xmlText(e.label)}</text>` +
        (e.label === address
          ? ''
          : `<text class="address" x="${x(i)}" y="${top - 2}">${xmlText(address)}</text>`) +
        `<line x1="${x(i)}" y1="${top + 4}" x2="${x(i)}" y2="${height - 10}" stroke="#bbb"/>`
      );
    })
    .join('');
  const legs = ladder.legs
    .map(
      (leg, i) =>
        `<text class="leg" x="6" y="${(2 + i) * LINE}" fill="${legColour(i)}">${xmlText(legText(leg, i))}</text>`,
    )
    .join('');
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="11" role="img" aria-label="${xmlText(titleText(ladder))}">` +
    `<title>${xmlText(titleText(ladder))}</title>` +
    '<style>.words,.endpoint,.address,.sdp{text-anchor:middle}.endpoint{font-weight:bold;font-size:12px}' +
    '.address,.delta,.sdp{fill:#666;font-size:10px}.title{font-weight:bold;font-size:13px}.log{fill:#777;font-style:italic}' +
    '.resent{opacity:0.55}.msg{cursor:pointer}</style>' +
    `<rect width="100%" height="100%" fill="#fff"/>` +
    `<text class="title" x="6" y="${LINE}">${xmlText(titleText(ladder))}</text>` +
    legs +
    columns +
    parts.join('') +
    '</svg>';
  return options.standalone === false ? svg : `<?xml version="1.0" encoding="UTF-8"?>\n${svg}\n`;
}
