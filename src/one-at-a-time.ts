// One run of a piece of work at a time, for work whose caller needs it done after the call (a
// delivery of what the caller just queued, a schema read after the caller's ALTER): a call
// while a run is under way gets the run after it, which every such call shares. So calls at
// once never start runs faster than they end, and none is answered by a run that began before it.

export class OneAtATime<T> {
  private running: { done: Promise<T>; next?: Promise<T> } | undefined;

  /** `start`'s run now, or, while one is under way, the run after it (started by the first
   * caller's `start`). */
  run(start: () => Promise<T>): Promise<T> {
    const running = this.running;
    if (running) {
      const again = () => this.run(start);
      return (running.next ??= running.done.then(again, again));
    }
    const current: { done: Promise<T>; next?: Promise<T> } = {
      done: start().finally(() => {
        if (this.running === current) this.running = undefined;
      }),
    };
    this.running = current;
    return current.done;
  }

  /** Resolves once the runs asked for so far have ended (the one under way, and the one after it
   * if asked for already), whatever their outcome. Not runs asked for after this call: under
   * constant calls it would never resolve. */
  async settled(): Promise<void> {
    const running = this.running;
    if (running) await (running.next ?? running.done).catch(() => undefined);
  }
}
