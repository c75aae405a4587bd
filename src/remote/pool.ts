import pLimit, { type LimitFunction } from 'p-limit';
import type { HostSpec } from '../inventory/types.js';
import type { Session } from './session.js';

interface Open {
  session: Session;
  busy: boolean;
  used: number;
}

/**
 * SSH sessions for a run, at most `max` open at once (jump host connections aside): a step
 * runs on its host's session, opened when first needed and kept while there is room; when
 * there is none, the session idle the longest is closed. It is also the run's concurrency
 * limit: at most `max` steps run at once. A step never holds two sessions.
 */
export class SessionPool {
  private readonly open = new Map<string, Open>();
  private readonly limit: LimitFunction;
  private pending = 0;
  private tick = 0;
  private closedCommands = 0;
  /** Connections opened in this run. */
  opened = 0;
  /** The most sessions open at one time. */
  peak = 0;

  constructor(
    private readonly connect: (host: HostSpec) => Promise<Session>,
    readonly max: number,
  ) {
    this.limit = pLimit(Math.max(1, max));
  }

  use<T>(host: HostSpec, fn: (s: Session) => Promise<T>): Promise<T> {
    return this.limit(async () => {
      let entry = this.open.get(host.name);
      if (entry && entry.session.connected === false) {
        await this.drop(host.name, entry);
        entry = undefined;
      }
      if (!entry) {
        while (this.open.size + this.pending >= this.max && (await this.evictIdle()));
        this.pending++;
        try {
          entry = { session: await this.connect(host), busy: false, used: 0 };
        } finally {
          this.pending--;
        }
        this.opened++;
        this.open.set(host.name, entry);
        this.peak = Math.max(this.peak, this.open.size);
      }
      entry.busy = true;
      try {
        return await fn(entry.session);
      } finally {
        entry.busy = false;
        entry.used = ++this.tick;
      }
    });
  }

  /** Remote commands run in this run, on every session ever opened. */
  get commands(): number {
    return this.closedCommands + [...this.open.values()].reduce((n, e) => n + e.session.commands, 0);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.open].map(([name, e]) => this.drop(name, e)));
  }

  private async evictIdle(): Promise<boolean> {
    let oldest: [string, Open] | undefined;
    for (const [name, e] of this.open) if (!e.busy && (!oldest || e.used < oldest[1].used)) oldest = [name, e];
    if (!oldest) return false;
    await this.drop(...oldest);
    return true;
  }

  private async drop(name: string, e: Open): Promise<void> {
    if (this.open.get(name) !== e) return;
    this.open.delete(name);
    this.closedCommands += e.session.commands;
    await e.session.close().catch(() => undefined);
  }
}
