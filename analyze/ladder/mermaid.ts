/**
 * The ladder as a Mermaid `sequenceDiagram`. Captured text is written with Mermaid's entity codes
 * (`#59;`) for every character outside a safe set, so that no header value can end a line, open a
 * directive or inject HTML into the rendered diagram.
 */
import type { Ladder } from '../../core/ladder.js';
import { arrowText, clockTime, legName, legText, sdpText, streamText } from './format.js';

/** Letters, digits, space and plain punctuation as they are; every other character as `#code;`. */
export function mermaidText(text: string): string {
  return text.replace(/[^A-Za-z0-9 .,_@()[\]/+=*~?!'-]/g, (c) => `#${c.codePointAt(0)};`);
}

export function renderMermaid(ladder: Ladder): string {
  const out = ['sequenceDiagram'];
  for (const [i, leg] of ladder.legs.entries()) out.push(`  %% ${mermaidText(legText(leg, i))}`);
  ladder.endpoints.forEach((e, i) => {
    const address = e.port === null ? e.ip : `${e.ip}:${e.port}`;
    out.push(
      `  participant E${i} as ${mermaidText(e.label === address ? address : `${e.label} ${address}`)}`,
    );
  });
  const several = ladder.legs.length > 1;
  const rows = [
    ...ladder.messages.map((m) => ({ time: m.time, line: () => messageLines(m) })),
    ...ladder.logs.map((l) => ({
      time: l.time,
      line: () => [`  Note over E0: ${mermaidText(`${clockTime(l.time)} log: ${l.text}`)}`],
    })),
  ].sort((a, b) => a.time - b.time);
  function messageLines(m: Ladder['messages'][number]): string[] {
    const words = `${several ? `${legName(m.leg)} ` : ''}${arrowText(m)} ${clockTime(m.time)}`;
    const lines = [`  E${m.from}${m.request ? '->>' : '-->>'}E${m.to}: ${mermaidText(words)}`];
    const sdp = sdpText(m);
    if (sdp !== null) lines.push(`  Note over E${m.from},E${m.to}: ${mermaidText(sdp)}`);
    return lines;
  }
  for (const r of rows) out.push(...r.line());
  for (const s of ladder.streams)
    out.push(
      `  Note over E${s.from},E${s.to}: ${mermaidText(`media ${s.srcPort} to ${s.dstPort}: ${streamText(s)}`)}`,
    );
  if (ladder.messagesOmitted > 0) out.push(`  %% ${ladder.messagesOmitted} more messages not drawn`);
  return `${out.join('\n')}\n`;
}
