/**
 * Progress for `sync-now --wait`: a bar when Sage told us how many records to expect (`$total`, stored as `total` on the
 * sync run), otherwise a spinner with page and record counts. Draws in place on a terminal; on a pipe it prints a line
 * only when the numbers change, at most every two seconds.
 */
export interface ProgressSnapshot {
  pages: number;
  fetched: number;
  total: number | null;
  runs: number;
  finishedRuns: number;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function renderProgress(s: ProgressSnapshot, frame: number | null, width = 30): string {
  const runs = `${s.finishedRuns}/${s.runs} partition${s.runs === 1 ? '' : 's'} done`;
  if (s.total && s.total > 0) {
    const ratio = Math.min(1, s.fetched / s.total);
    const filled = Math.round(ratio * width);
    return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.round(ratio * 100)).padStart(3)}%  ${s.fetched}/${s.total} records, ${s.pages} pages, ${runs}`;
  }
  const counts = `${s.fetched} records, ${s.pages} pages, ${runs}`;
  return frame === null ? counts : `${FRAMES[frame % FRAMES.length]} ${counts}`;
}

export class ProgressView {
  private frame = 0;
  private lastLine = '';
  private lastPrintAt = 0;
  constructor(private readonly out: NodeJS.WritableStream & { isTTY?: boolean }) {}

  private last: ProgressSnapshot | null = null;

  update(s: ProgressSnapshot): void {
    this.last = s;
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${renderProgress(s, this.frame++)}`);
      return;
    }
    const plain = renderProgress(s, null);
    if (plain !== this.lastLine && Date.now() - this.lastPrintAt >= 2_000) {
      this.out.write(`${plain}\n`);
      this.lastLine = plain;
      this.lastPrintAt = Date.now();
    }
  }

  /** Ends the progress display; on a pipe, prints the final numbers if the throttle held them back. */
  done(): void {
    if (this.out.isTTY) this.out.write('\n');
    else if (this.last && renderProgress(this.last, null) !== this.lastLine)
      this.out.write(`${renderProgress(this.last, null)}\n`);
  }
}
