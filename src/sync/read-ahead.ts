/**
 * Ordered read-ahead: fetches a planned list of pages with at most `limit` fetches in flight and hands the answers out
 * strictly in plan order, so the caller writes and checkpoints page N only after pages 1..N-1 (a crash resumes at the
 * page after the last checkpoint, exactly as with one page at a time).
 *
 * The window moves when the caller takes a page whose answer is in: taking page N starts page N+limit. So at most
 * `limit` pages are in flight or waiting, whatever the write speed (memory stays bounded by `limit` pages). A failed fetch surfaces when
 * its turn comes (the pages before it are still handed out first); `abandon()` stops the plan, and fetches still in
 * flight then finish unobserved (their errors too).
 */
export class ReadAhead<T, P> {
  private started = 0;
  private readonly window: Promise<{ ok: true; value: P } | { ok: false; error: unknown }>[] = [];
  private abandoned = false;

  constructor(
    private readonly plan: readonly T[],
    private readonly fetch: (item: T, index: number) => Promise<P>,
    private readonly limit: number,
  ) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`read-ahead limit must be a positive integer (got ${limit})`);
    this.fill();
  }

  /** Planned pages not yet handed out. */
  get remaining(): number {
    return this.abandoned ? 0 : this.plan.length - (this.started - this.window.length);
  }

  private fill(): void {
    while (!this.abandoned && this.window.length < this.limit && this.started < this.plan.length) {
      const index = this.started++;
      const item = this.plan[index]!;
      this.window.push(
        Promise.resolve()
          .then(() => this.fetch(item, index))
          .then(
            (value) => ({ ok: true as const, value }),
            (error: unknown) => ({ ok: false as const, error }),
          ),
      );
    }
  }

  /** The next planned page in order, or null when the plan is exhausted or abandoned. Throws that page's error. */
  async take(): Promise<{ item: T; index: number; page: P } | null> {
    if (this.abandoned) return null;
    const head = this.window[0];
    if (!head) return null;
    // The slot is freed only once its answer is in: the next fetch never starts while `limit` are still in flight.
    const settled = await head;
    if (this.abandoned || this.window[0] !== head) return null;
    this.window.shift();
    const index = this.started - this.window.length - 1;
    this.fill();
    if (!settled.ok) {
      this.abandon();
      throw settled.error;
    }
    return { item: this.plan[index]!, index, page: settled.value };
  }

  /** Starts nothing more; answers in flight are dropped. */
  abandon(): void {
    this.abandoned = true;
    this.window.length = 0;
  }
}
