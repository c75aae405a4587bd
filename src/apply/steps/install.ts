import { quote } from '../../core/shell.js';
import type { Install } from '../../plan/types.js';
import { type Ctx, DPKG_LOCK_WAIT, failed, runStep, step } from '../context.js';
import type { HostOutcome } from '../outcome.js';

/**
 * Exit code of the install script when apt offers none of the packages, even after an
 * update. Not 100: that is apt-get's own code for any error, the dpkg lock among them.
 */
export const NO_CANDIDATE = 97;

/**
 * Installs the packages, as the recipe does (`apt-get update && apt-get install`) but only
 * updating when apt offers no candidate: lists missing, or older than the sources. For
 * `auto` the choice is the first set apt offers after the update. A failing third-party
 * source does not stop the update from being used.
 */
export function installScript(install: Install): string {
  const choices = install.choose?.map((c) => c.packages) ?? [install.packages];
  const pick = choices.map((ps, i) => `${i ? 'elif' : 'if'} have ${ps.map(quote).join(' ')}; then echo ${quote(ps.join(' '))}`).join('\n  ');
  return `set -u
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
apt="apt-get -q -o DPkg::Lock::Timeout=${DPKG_LOCK_WAIT}"
have() { for p; do apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]' || return 1; done; }
pick() {
  ${pick}
  fi
}
pkgs=$(pick)
if [ -z "$pkgs" ]; then
  err=$(mktemp) || exit 1
  $apt update >/dev/null 2>"$err" || true
  pkgs=$(pick)
  if [ -z "$pkgs" ]; then tail -n 3 "$err" >&2; rm -f "$err"; exit ${NO_CANDIDATE}; fi
  rm -f "$err"
fi
echo "installing $pkgs"
$apt -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install -y $pkgs >/dev/null
`;
}

/** What the install did, or why it failed, named for the operator. */
export async function install(ctx: Ctx, host: string, plan: Install): Promise<{ ok: true; packages: string } | { ok: false; outcome: HostOutcome }> {
  const wanted = plan.choose
    ? plan.choose
        .map((c) => c.packages[0])
        .join(', ')
        .replace(/, ([^,]*)$/, ' or $1')
    : plan.packages.join(' ');
  const label = plan.choose ? 'install (auto)' : `install ${wanted}`;
  const r = await runStep(ctx, host, step('install', label), installScript(plan));
  if (!r.ok) return r;
  const packages = /^installing (.+)$/m.exec(r.stdout)?.[1] ?? wanted;
  if (r.code === 0) return { ok: true, packages };
  const out = r.stderr + r.stdout;
  if (r.code === NO_CANDIDATE) {
    return {
      ok: false,
      outcome: failed(
        label,
        `apt has no candidate for ${wanted}, even after apt-get update`,
        'Check /etc/apt/sources.list on the host (libreswan is in Debian main and Ubuntu universe), or choose another backend.',
        { exitCode: r.code, output: out },
      ),
    };
  }
  if (/Could not get lock|dpkg frontend lock|is held by process/.test(out)) {
    return {
      ok: false,
      outcome: failed(
        label,
        `another process held the dpkg lock for ${DPKG_LOCK_WAIT} s`,
        'Wait for the other apt or unattended-upgrades run to finish (`ps aux | grep -E "apt|dpkg"`), then re-run.',
        { exitCode: r.code, output: out },
      ),
    };
  }
  if (/Unable to locate package|has no installation candidate/.test(out)) {
    return {
      ok: false,
      outcome: failed(label, `apt has no package ${packages}`, 'Check /etc/apt/sources.list on the host, or choose another backend.', {
        exitCode: r.code,
        output: out,
      }),
    };
  }
  return {
    ok: false,
    outcome: failed(
      label,
      `apt-get install ${packages} failed (exit ${r.code})`,
      `Run \`apt-get install ${packages}\` on the host to see the whole error; fix apt, then re-run.`,
      { exitCode: r.code, output: out },
    ),
  };
}
