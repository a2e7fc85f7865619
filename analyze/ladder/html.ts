/**
 * The ladder as one self-contained HTML page: the SVG inline, each leg in a list with links to the legs
 * it is linked to, and a panel that shows the raw message of the arrow clicked. Nothing is fetched: a
 * Content-Security-Policy forbids every network source, the script and styles are inline, and the
 * messages travel as JSON in a non-executable script element (every `<` written as `\u003c`, so no
 * captured text can close it). Raw text reaches the page only through `textContent`.
 */
import type { Ladder } from '../../core/ladder.js';
import { legName, legText, titleText } from './format.js';
import { legColour, renderSvg, xmlText } from './svg.js';

/** JSON safe inside a <script> element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const SCRIPT = `
const data = JSON.parse(document.getElementById('ladder-data').textContent);
const raw = document.getElementById('raw');
const head = document.getElementById('raw-head');
for (const g of document.querySelectorAll('g.msg')) {
  g.addEventListener('click', () => {
    const m = data.messages[Number(g.dataset.i)];
    for (const s of document.querySelectorAll('g.msg.selected')) s.classList.remove('selected');
    g.classList.add('selected');
    head.textContent = m.head;
    raw.textContent = m.raw + (m.rawTruncated ? '\\n[cut]' : '');
  });
}
for (const a of document.querySelectorAll('a.leg-link')) {
  a.addEventListener('click', (e) => {
    e.preventDefault();
    const leg = a.dataset.leg;
    for (const g of document.querySelectorAll('g.msg,g.stream'))
      g.classList.toggle('faded', leg !== 'all' && g.dataset.leg !== leg);
    for (const li of document.querySelectorAll('li.leg')) li.classList.toggle('current', li.dataset.leg === leg);
  });
}
`;

export function renderHtml(ladder: Ladder): string {
  const data = {
    messages: ladder.messages.map((m) => ({
      head: `${new Date(Math.floor(m.time)).toISOString()} ${m.transport.toUpperCase()} ${endpointText(ladder, m.from)} → ${endpointText(ladder, m.to)}${m.retransmission ? ' (resent)' : ''}`,
      raw: m.raw,
      rawTruncated: m.rawTruncated,
    })),
  };
  const legs = ladder.legs
    .map((leg, i) => {
      const links = ladder.legs
        .map((_other, j) =>
          j === i ? '' : `<a href="#leg-${j}" class="leg-link" data-leg="${j}">${legName(j)}</a>`,
        )
        .filter((x) => x !== '')
        .join(' ');
      return (
        `<li class="leg" id="leg-${i}" data-leg="${i}" style="border-color:${legColour(i)}">` +
        `<a href="#leg-${i}" class="leg-link" data-leg="${i}">${xmlText(legText(leg, i))}</a>` +
        (links === '' ? '' : ` <span class="linked">linked legs: ${links}</span>`) +
        '</li>'
      );
    })
    .join('');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${xmlText(titleText(ladder))}</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;display:flex;flex-direction:column;height:100vh}
header{padding:8px 12px;border-bottom:1px solid #ccc}
header h1{font-size:15px;margin:0 0 4px}
ul{margin:0;padding:0;list-style:none;font-size:12px}
li.leg{border-left:4px solid;padding-left:6px;margin:2px 0}
li.leg.current{background:#eef}
main{display:flex;flex:1;min-height:0}
#ladder{flex:1;overflow:auto}
aside{width:42%;border-left:1px solid #ccc;display:flex;flex-direction:column;min-height:0}
#raw-head{font-size:12px;padding:6px;background:#f4f4f4;margin:0}
#raw{flex:1;overflow:auto;margin:0;padding:6px;font-size:12px;white-space:pre-wrap;word-break:break-all}
g.msg.selected text.words{font-weight:bold;text-decoration:underline}
g.faded{opacity:0.15}
</style>
</head>
<body>
<header><h1>${xmlText(titleText(ladder))}</h1><ul>${legs}<li><a href="#" class="leg-link" data-leg="all">all legs</a></li></ul></header>
<main>
<div id="ladder">${renderSvg(ladder, { standalone: false })}</div>
<aside><p id="raw-head">Click an arrow to see its message.</p><pre id="raw"></pre></aside>
</main>
<script type="application/json" id="ladder-data">${scriptJson(data)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

function endpointText(ladder: Ladder, i: number): string {
  const e = ladder.endpoints[i];
  if (e === undefined) return '?';
  const address = e.port === null ? e.ip : `${e.ip}:${e.port}`;
  return e.label === address ? address : `${e.label} (${address})`;
}
