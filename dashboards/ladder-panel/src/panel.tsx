/**
 * The ladder panel: the SVG of analyze/ladder/svg.ts (the one ladder drawing of the project) drawn from
 * the query frames, a side pane with the raw message of the arrow clicked, and, for a B2BUA call,
 * buttons that bring one leg forward and links that open another leg's ladder.
 *
 * Captured text reaches the page two ways only: inside the SVG, which renderSvg escapes and which is
 * parsed as XML (never as HTML), and as React text (the raw message). Problems show as one line.
 */
import { LoadingState, type PanelProps } from '@grafana/data';
import {
  type CSSProperties,
  type MouseEvent,
  useCallback,
  useEffect,
  useMemo,
  useRef,
  useState,
} from 'react';
import { legName, legText } from '../../../analyze/ladder/format.js';
import { legColour, renderSvg } from '../../../analyze/ladder/svg.js';
import type { Ladder } from '../../../core/ladder.js';
import { type FramesResult, ladderFromFrames } from './frames';
import { DEFAULT_OPTIONS, type LadderOptions } from './options';

const CSS = `
.callscope-ladder g.msg.selected text.words{font-weight:bold;text-decoration:underline}
.callscope-ladder g.faded{opacity:0.15}
.callscope-ladder-legs button{font:inherit;margin:0 4px 2px 0;padding:0 6px;cursor:pointer;background:none;color:inherit;border:1px solid #888;border-radius:3px}
.callscope-ladder-legs button.current{background:rgba(128,128,255,0.25)}
`;

const MESSAGE_STYLE: CSSProperties = {
  padding: 8,
  whiteSpace: 'nowrap',
  overflow: 'hidden',
  textOverflow: 'ellipsis',
};

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
const CALL_ID_VARIABLE = '${call_id}';

/** The Call-ID variable's value, when the dashboard has one. */
function askedCallId(replace: PanelProps['replaceVariables'] | undefined): string | undefined {
  try {
    const value = replace?.(CALL_ID_VARIABLE);
    return value === undefined || value === CALL_ID_VARIABLE ? undefined : value;
  } catch {
    return undefined;
  }
}

/** A link to this dashboard with another Call-ID in its variable (Grafana's `var-NAME` parameter). */
function legHref(callId: string): string | null {
  try {
    const url = new URL(window.location.href);
    url.searchParams.set('var-call_id', callId);
    return url.toString();
  } catch {
    return null;
  }
}

function endpointText(ladder: Ladder, i: number): string {
  const e = ladder.endpoints[i];
  if (e === undefined) return '?';
  const address = e.port === null ? e.ip : e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
  return e.label === address ? address : `${e.label} (${address})`;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function LadderPanel(props: PanelProps<LadderOptions>) {
  const { data, width, height, replaceVariables } = props;
  const options = { ...DEFAULT_OPTIONS, ...props.options };
  const asked = askedCallId(replaceVariables);
  const series = data?.series;
  const result: FramesResult = useMemo(() => {
    try {
      return ladderFromFrames(series ?? [], {
        callId: asked,
        maxMessages: options.maxMessages,
        showSdp: options.showSdp,
        showMedia: options.showMedia,
        showLogs: options.showLogs,
      });
    } catch (e) {
      return { ok: false, message: `Cannot read the frames: ${errorText(e)}` };
    }
  }, [series, asked, options.maxMessages, options.showSdp, options.showMedia, options.showLogs]);
  const svg = useMemo(() => {
    if (!result.ok) return null;
    try {
      return renderSvg(result.ladder, { standalone: false });
    } catch {
      return null;
    }
  }, [result]);

  const [selected, setSelected] = useState<number | null>(null);
  const [legFilter, setLegFilter] = useState<number | null>(null);
  // Keyed by the drawing it is about: a new drawing gets its own chance.
  const [drawError, setDrawError] = useState<{ svg: string; message: string } | null>(null);
  const ladderRef = useRef<HTMLDivElement | null>(null);

  // A new ladder: nothing selected, every leg shown.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs because the ladder changed
  useEffect(() => {
    setSelected(null);
    setLegFilter(null);
  }, [result]);

  // The SVG goes in parsed as XML: markup it might carry could never run as HTML would. A callback
  // ref, so that it is drawn whenever its element is (re)mounted or the drawing changes.
  const ladderRoot = useCallback(
    (root: HTMLDivElement | null) => {
      ladderRef.current = root;
      if (root === null) return;
      if (svg === null) {
        root.replaceChildren();
        return;
      }
      try {
        const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
        if (doc.getElementsByTagName('parsererror').length > 0)
          throw new Error('the drawing is not well-formed');
        root.replaceChildren(document.importNode(doc.documentElement, true));
      } catch (e) {
        root.replaceChildren();
        setDrawError({ svg, message: `Cannot draw the ladder: ${errorText(e)}` });
      }
    },
    [svg],
  );

  // Marks follow the selection, and are set again on a new drawing (its elements are new).
  // biome-ignore lint/correctness/useExhaustiveDependencies: svg changes the elements marked
  useEffect(() => {
    const root = ladderRef.current;
    if (root === null) return;
    for (const g of root.querySelectorAll('g.msg'))
      g.classList.toggle('selected', selected !== null && g.getAttribute('data-i') === String(selected));
    for (const g of root.querySelectorAll('g.msg, g.stream'))
      g.classList.toggle('faded', legFilter !== null && g.getAttribute('data-leg') !== String(legFilter));
  }, [svg, selected, legFilter]);

  const outer: CSSProperties = { width, height, display: 'flex', flexDirection: 'column', fontSize: 12 };
  let problem: string | null = null;
  if (data?.state === LoadingState.Error && (series ?? []).length === 0)
    problem = `Query failed: ${data.errors?.[0]?.message ?? data.error?.message ?? 'unknown error'}`;
  else if (data?.state === LoadingState.Loading && (series ?? []).length === 0) problem = 'Loading…';
  else if (!result.ok) problem = result.message;
  else if (svg === null) problem = 'Cannot draw the ladder';
  else if (drawError !== null && drawError.svg === svg) problem = drawError.message;
  if (problem !== null || !result.ok)
    return (
      <div className="callscope-ladder-message" style={{ ...outer, ...MESSAGE_STYLE }} title={problem ?? ''}>
        {problem}
      </div>
    );

  const ladder = result.ladder;
  const onClick = (e: MouseEvent<HTMLDivElement>) => {
    const target = e.target as Element | null;
    const g = target?.closest?.('g.msg');
    if (!g) return;
    const i = Number(g.getAttribute('data-i'));
    if (Number.isInteger(i) && i >= 0 && i < ladder.messages.length) setSelected(i);
  };
  const message = selected === null ? undefined : ladder.messages[selected];
  const aside = Math.max(220, Math.floor(width * 0.38));
  return (
    <div className="callscope-ladder" style={outer}>
      <style>{CSS}</style>
      {ladder.legs.length > 1 && (
        <div
          className="callscope-ladder-legs"
          style={{ padding: '2px 4px', maxHeight: '30%', overflow: 'auto' }}
        >
          <button
            type="button"
            className={legFilter === null ? 'current' : ''}
            onClick={() => setLegFilter(null)}
          >
            all legs
          </button>
          {ladder.legs.map((leg, i) => {
            const href = legHref(leg.callId);
            return (
              <span key={leg.callId} style={{ display: 'inline-block', marginRight: 8 }}>
                <button
                  type="button"
                  className={legFilter === i ? 'current' : ''}
                  style={{ borderColor: legColour(i), color: legColour(i) }}
                  title={legText(leg, i)}
                  data-leg={i}
                  onClick={() => setLegFilter(legFilter === i ? null : i)}
                >
                  {legName(i)}
                </button>
                {href !== null && leg.callId !== ladder.callId && (
                  <a href={href} title={`Open the ladder of leg ${legName(i)}: ${leg.callId}`}>
                    open {legName(i)}
                  </a>
                )}
              </span>
            );
          })}
        </div>
      )}
      {result.queryCapped && (
        <div style={MESSAGE_STYLE}>
          The call has more messages than the query returns; the first ones are drawn.
        </div>
      )}
      <div style={{ display: 'flex', flex: 1, minHeight: 0 }}>
        {/* Clicks are read from the SVG's arrows (g.msg); the same message is in the side pane as text. */}
        {/* biome-ignore lint/a11y/noStaticElementInteractions: the arrows are SVG groups, not controls */}
        {/* biome-ignore lint/a11y/useKeyWithClickEvents: as above; the raw text is also in the export */}
        <div
          ref={ladderRoot}
          className="callscope-ladder-svg"
          style={{ flex: 1, overflow: 'auto' }}
          onClick={onClick}
        />
        <aside
          className="callscope-ladder-aside"
          style={{
            width: aside,
            borderLeft: '1px solid #8884',
            display: 'flex',
            flexDirection: 'column',
            minHeight: 0,
          }}
        >
          <div className="callscope-ladder-head" style={{ padding: 6, opacity: 0.8 }}>
            {message === undefined
              ? 'Click an arrow to see its message.'
              : `${new Date(Math.floor(message.time)).toISOString()} ${message.transport.toUpperCase()} ${endpointText(ladder, message.from)} → ${endpointText(ladder, message.to)}${message.retransmission ? ' (resent)' : ''}`}
          </div>
          <pre
            className="callscope-ladder-raw"
            style={{
              flex: 1,
              overflow: 'auto',
              margin: 0,
              padding: 6,
              whiteSpace: 'pre-wrap',
              wordBreak: 'break-all',
            }}
          >
            {message?.raw ?? ''}
          </pre>
          {message?.rawTruncated === true && <div style={{ padding: 6 }}>[message cut]</div>}
        </aside>
      </div>
    </div>
  );
}
