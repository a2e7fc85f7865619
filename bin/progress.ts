/** A one-line progress display on a terminal's stderr; silent when stderr is not a TTY. */
export class ProgressLine {
  private lastDraw = 0;
  private drawn = false;
  private readonly started = performance.now();

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = Boolean(stream.isTTY),
  ) {}

  update(done: number, total: number, items: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.lastDraw < 100 && done < total) return;
    this.lastDraw = now;
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    const width = 24;
    const filled = Math.round(fraction * width);
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0 ? Math.round(items / seconds) : 0;
    const line =
      `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%` +
      `  ${formatInt(items)} packets  ${formatInt(rate)}/s  ${(done / 1048576).toFixed(1)}/${(total / 1048576).toFixed(1)} MiB`;
    this.stream.write(`\r${line.slice(0, (this.stream.columns ?? 120) - 1)}\x1b[K`);
    this.drawn = true;
  }

  done(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}

export function formatInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}
