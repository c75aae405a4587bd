import { randomBytes } from 'node:crypto';
import { type Ctx, interrupted, phase, runStep, step } from '../apply/context.js';
import type { Hooks } from '../apply/outcome.js';
import { verifyPairs } from '../apply/steps/verify.js';
import { planChanges } from '../plan/plan.js';
import { offlineFacts, parseFacts, sections } from '../remote/facts.js';
import { SessionPool } from '../remote/pool.js';
import { progressHooks, spinnerFits } from '../report/progress.js';
import type { Io } from '../report/view.js';
import { assess, type HostReading } from '../status/assess.js';
import { parseXfrmPolicies, undeclared } from '../status/policies.js';
import { healthy, renderPrometheus, renderStatusText, type StatusReport, statusToJson } from '../status/render.js';
import { parseDaemon, statusScript } from '../status/script.js';
import { EXIT, type StatusArgs } from './args.js';
import { toolVersion } from './flags.js';
import { type Deps, onHosts, verbosity } from './live.js';
import { loadScope } from './scope.js';

/** Nagios plugin exit codes. */
const NAGIOS = { ok: 0, warning: 1, critical: 2, unknown: 3 } as const;

/**
 * `provision status`: read-only. One command per host reads its state, the keys' MACs
 * over a fresh challenge and the daemon's SAs; `--verify` adds one more per host, the proof
 * on the wire. Never writes, never restarts.
 */
export async function statusCommand(args: StatusArgs, io: Io, deps: Deps, now: () => number = Date.now): Promise<number> {
  const scope = await loadScope(args);
  const { inventory, limit, inScope } = scope;
  // Status prints no progress lines off a terminal (monitoring reads its output), unless -v.
  const level = verbosity(args);
  const hooks: Hooks & { stop(): void } =
    level === 'verbose' || (level === 'normal' && spinnerFits(io.stderr)) ? progressHooks(io.stderr, inScope.length, level) : { stop: () => undefined };
  return onHosts(hooks, { inventory, hosts: inScope, deps, args, jumps: scope.jumps }, async ({ signal, connect }) => {
    const pool = new SessionPool(connect, args.concurrency);
    const challenge = randomBytes(16).toString('hex');
    // Status writes nothing, so it keeps nothing: `keep` is never used.
    const ctx: Ctx = { pool, hooks, signal, states: new Map(inScope.map((h) => [h.name, { spec: h, did: [] }])), challenge, keep: '' };
    const readings = new Map<string, HostReading>();
    const at = now();
    try {
      await phase(ctx, inScope, async (h) => {
        const r = await runStep(ctx, h.name, step('status'), statusScript(challenge));
        if (!r.ok) {
          const o = r.outcome;
          return void readings.set(h.name, {
            ok: false,
            status: o.status === 'refused' ? 'refused' : o.status === 'unreachable' ? 'unreachable' : 'failed',
            error: 'error' in o ? o.error : o.status,
          });
        }
        try {
          const s = sections(r.stdout);
          const facts = parseFacts(r.stdout);
          readings.set(h.name, {
            ok: true,
            facts,
            daemon: parseDaemon(s.get('daemon') ?? [], at),
            policies: undeclared(parseXfrmPolicies((s.get('policies') ?? []).join('\n')), facts),
          });
        } catch (err) {
          readings.set(h.name, { ok: false, status: 'failed', error: `could not read the host's state: ${(err as Error).message}` });
        }
      });
      const facts = new Map([...readings].map(([h, r]) => [h, r.ok ? r.facts : offlineFacts()]));
      const plan = planChanges(inventory, new Map([...facts].filter(([h]) => readings.get(h)!.ok)), {
        mode: 'live',
        prune: true,
        retireLegacy: false,
        tool: toolVersion(),
        now: at,
        ...(limit ? { limit } : {}),
      });
      const report: StatusReport = { fleet: inventory.fleet, tool: toolVersion(), at, ...assess(inventory, readings, plan, at) };
      if (args.verify && !interrupted(ctx)) {
        const up = report.pairs.filter((p) => p.status === 'up' || p.status === 'exposed');
        const wire = await verifyPairs(ctx, up, (h) => inventory.hosts.get(h)!.address);
        for (const p of up) {
          const w = wire.get(p.name);
          if (w && (w.status === 'verified' || w.status === 'failed'))
            p.wire = { verdict: w.status, ...(w.status === 'failed' ? { reason: w.reason } : {}), directions: w.directions };
        }
      }
      const format = args.json ? 'json' : args.format;
      io.stdout.write(
        format === 'json'
          ? `${JSON.stringify(statusToJson(report), null, 2)}\n`
          : format === 'prometheus'
            ? renderPrometheus(report)
            : renderStatusText(report),
      );
      const unreadable = report.hosts.some((h) => !h.readable);
      const refused = [...readings.values()].some((r) => !r.ok && r.status === 'refused');
      if (args.nagios) {
        if (unreadable) return NAGIOS.unknown;
        if (report.pairs.some((p) => p.status !== 'up' || p.wire?.verdict === 'failed')) return NAGIOS.critical;
        if (report.pairs.some((p) => !healthy(p)) || report.hosts.some((h) => h.drift.length)) return NAGIOS.warning;
        return NAGIOS.ok;
      }
      if (refused) return EXIT.hostKey;
      return unreadable || report.pairs.some((p) => !healthy(p)) || report.hosts.some((h) => h.drift.length) ? EXIT.failed : EXIT.ok;
    } finally {
      await pool.closeAll();
    }
  });
}
