import { BACKENDS, type ConnLoad } from '../../backends/index.js';
import type { HostPlan } from '../../plan/types.js';
import { type Ctx, failed, runStep, type Step, step } from '../context.js';
import type { HostOutcome } from '../outcome.js';
import { restartScript } from '../scripts.js';

type Result = { ok: true; did: string[] } | { ok: false; outcome: HostOutcome };

/** Reload only what changed: retired conns down, secrets reread, then each changed conn; other tunnels stay up. */
export function reloadScript(plan: Pick<HostPlan, 'unload' | 'reload' | 'backend'> & { files?: HostPlan['files'] }, reread: boolean): string {
  const cmd = BACKENDS[plan.backend.id].commands({ version: plan.backend.version });
  const parts = ['set -e'];
  if (cmd.reloadSettings && plan.files?.some((f) => f.kind === 'daemon' && f.action !== 'noop')) parts.push(cmd.reloadSettings);
  if (plan.unload.length) parts.push(cmd.unloadConns(plan.unload));
  if (reread) parts.push(`${cmd.rereadSecrets} >/dev/null`);
  if (plan.reload.length) parts.push(cmd.reloadConns(plan.reload));
  return `${parts.join('\n')}\n`;
}

export async function reload(ctx: Ctx, host: string, plan: HostPlan, reread: boolean): Promise<Result> {
  const r = await runStep(ctx, host, step('reload', 'reload conns'), reloadScript(plan, reread));
  if (!r.ok) return r;
  const names = [...plan.reload.map((c) => c.name), ...plan.unload].join(', ');
  if (r.code !== 0) {
    return {
      ok: false,
      outcome: failed(
        'reload conns',
        `reloading ${names || 'the secrets'} failed (exit ${r.code})`,
        'See docs/troubleshooting.md; `ipsec status` on the host.',
        { exitCode: r.code, output: r.stderr },
      ),
    };
  }
  const did: string[] = [];
  if (reread) did.push('secrets reread');
  if (plan.reload.length) did.push(`reloaded ${plan.reload.map((c) => c.name).join(', ')}`);
  if (plan.unload.length) did.push(`retired ${plan.unload.join(', ')}`);
  return { ok: true, did };
}

/** Restarts ipsec; `false` with the daemon's message when it will not start. */
export async function restart(
  ctx: Ctx,
  host: string,
  plan: HostPlan,
  init: 'systemd' | 'sysv',
  conns: readonly ConnLoad[],
  at: Step = step('restart', 'restart ipsec'),
): Promise<{ ok: true } | { ok: false; outcome: HostOutcome; refused: boolean }> {
  const after = BACKENDS[plan.backend.id].commands({ version: plan.backend.version }).afterRestart(conns);
  const r = await runStep(ctx, host, at, restartScript(init, after));
  if (!r.ok) return { ...r, refused: false };
  if (r.code === 0) return { ok: true };
  return {
    ok: false,
    refused: true,
    outcome: failed(at.label, 'ipsec did not start', 'See docs/troubleshooting.md for the daemon messages; `journalctl -u ipsec` on the host.', {
      exitCode: r.code,
      output: r.stderr,
    }),
  };
}

/** Initiators bring up their pairs: those they reloaded, or, after a restart, those not up yet. */
export async function bringUp(
  ctx: Ctx,
  host: string,
  plan: HostPlan,
  names: readonly string[],
  unlessUp: boolean,
): Promise<{ ok: true } | { ok: false; outcome: HostOutcome }> {
  const cmd = BACKENDS[plan.backend.id].commands({ version: plan.backend.version });
  const r = await runStep(ctx, host, step('bring-up', 'bring up'), `${names.map((n) => (unlessUp ? cmd.upUnlessEstablished(n) : cmd.up(n))).join('\n')}\n`);
  if (!r.ok) return r;
  if (r.code !== 0)
    return {
      ok: false,
      outcome: failed('bring up', `starting ${names.join(', ')} failed (exit ${r.code})`, 'Run `ipsec status` on the host; see docs/troubleshooting.md.', {
        exitCode: r.code,
        output: r.stderr + r.stdout,
      }),
    };
  return { ok: true };
}

/** The initiator proves a new key with a new IKE SA; a refusal is the pair's failure, not the host's. */
export async function reauth(
  ctx: Ctx,
  host: string,
  plan: HostPlan,
  pair: string,
  at: Step = step('reauth', `re-authenticate ${pair}`),
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const cmd = BACKENDS[plan.backend.id].commands({ version: plan.backend.version });
  const r = await runStep(ctx, host, at, cmd.reauth(pair));
  if (!r.ok) return { ok: false, reason: r.outcome.status === 'failed' ? r.outcome.error : `${host} ${r.outcome.status}` };
  if (r.code !== 0) return { ok: false, reason: `the new key did not authenticate: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` };
  return { ok: true };
}
