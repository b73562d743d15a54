/** A progress bar with the time left, on stderr, only when stdout is a terminal. */
export class Progress {
  private done = 0;
  private readonly started = Date.now();
  private readonly on = process.stdout.isTTY === true;

  /** `total`: the planned work, in the same unit as step()'s (planned milliseconds). */
  constructor(private readonly total: number) {}

  step(amount: number): void {
    this.done += amount;
    if (!this.on) return;
    const f = Math.min(1, this.done / this.total);
    const elapsed = (Date.now() - this.started) / 1000;
    const left = f > 0 ? Math.round((elapsed * (1 - f)) / f) : Math.round(this.total / 1000);
    const bar = '#'.repeat(Math.round(f * 30)).padEnd(30, '.');
    process.stderr.write(`\r[${bar}] ${Math.round(f * 100)}%, about ${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')} left `);
  }

  /** Clears the bar so that other output starts on a clean line. */
  clear(): void {
    if (this.on) process.stderr.write('\r\x1b[K');
  }
}
