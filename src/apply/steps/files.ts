import type { Backend } from '../../backends/index.js';
import { CREATED_SLOT, type FileChange, type HostPlan, KEY_SLOT } from '../../plan/types.js';
import { type Ctx, failed, runStep, type Step } from '../context.js';
import type { HostOutcome } from '../outcome.js';
import { CURRENT_KEY, keptCopy, WRITE_EXIT, type WriteSet, writeScript } from '../scripts.js';

/**
 * The host's changed files with their new keys in place: what the write script sends over
 * stdin. A kept key is not known here: the host puts it in (CURRENT_KEY). With `keep`, the
 * files replaced or deleted are kept on the host for rollBackSet.
 */
export function writeSet(
  plan: HostPlan,
  keys: ReadonlyMap<string, string>,
  opts: { only?: (f: FileChange) => boolean; keep?: string; created?: string } = {},
): WriteSet {
  const { only, keep, created } = opts;
  const changed = plan.files.filter((f) => f.action !== 'noop' && (!only || only(f)));
  return {
    puts: changed.filter((f) => f.action !== 'delete').map((f) => ({ path: f.path, mode: f.mode, content: withCreatedAt(withKey(f, keys), created) })),
    deletes: changed.filter((f) => f.action === 'delete').map((f) => f.path),
    includes: only ? [] : plan.includes,
    stale: only ? [] : plan.staleStaging,
    ...(!only && plan.dropIncludes?.length ? { dropIncludes: plan.dropIncludes } : {}),
    ...(keep && changed.some((f) => f.action !== 'create') ? { keep } : {}),
  };
}

function withCreatedAt(content: string, created: string | undefined): string {
  if (!content.includes(CREATED_SLOT)) return content;
  if (!created) throw new Error('a new key with no creation time: a bug in provision');
  return content.replace(CREATED_SLOT, created);
}

function withKey(f: FileChange, keys: ReadonlyMap<string, string>): string {
  if (!f.content.includes(KEY_SLOT)) return f.content;
  if (f.keyState === 'unchanged') return f.content.replace(KEY_SLOT, CURRENT_KEY);
  const key = f.pair ? keys.get(f.pair) : undefined;
  if (!key) throw new Error(`no key drawn for ${f.pair}: a bug in provision`);
  return f.content.replace(KEY_SLOT, key);
}

/**
 * The files as they were before this run's write, what a roll back writes: those it
 * created are deleted, the others come back from the copies the write kept on the host.
 */
export function rollBackSet(plan: HostPlan, keep: string, only: (f: FileChange) => boolean): WriteSet {
  const set: WriteSet = { puts: [], deletes: [], includes: [], restores: [] };
  for (const f of plan.files.filter((x) => x.action !== 'noop' && only(x))) {
    if (f.action === 'create') set.deletes.push(f.path);
    else set.restores!.push({ path: f.path, from: keptCopy(keep, f.path) });
  }
  return set;
}

/** Writes a set of files on a host, atomically as a whole; the config is checked and a refused one put back. */
export async function writeFiles(
  ctx: Ctx,
  host: string,
  at: Step,
  set: WriteSet,
  check?: { backend: Backend; version: string },
): Promise<{ ok: true } | { ok: false; outcome: HostOutcome }> {
  const backend = check?.backend;
  const { script, stdin } = writeScript(set, backend?.commands({ version: check!.version }).checkConfig);
  const r = await runStep(ctx, host, at, script, stdin);
  if (!r.ok) return r;
  if (r.code === 0) return { ok: true };
  if (r.code === WRITE_EXIT.checkFailed) {
    return {
      ok: false,
      outcome: failed(
        'check config',
        `${backend?.package ?? 'the daemon'} rejected the new config, so the previous files are back`,
        'Look at the file and line named above; an operator conn in /etc/ipsec.d that no longer parses can cause it. Nothing changed on this host.',
        { exitCode: r.code, output: r.stderr },
      ),
    };
  }
  if (r.code === WRITE_EXIT.noCurrentKey) {
    return {
      ok: false,
      outcome: failed(
        at.label,
        'a secrets file changed on the host since it was read, so its key could not be kept',
        'Nothing changed on this host. Re-run: the pair is planned again from what the host holds now.',
        { exitCode: r.code, output: r.stderr },
      ),
    };
  }
  return {
    ok: false,
    outcome: failed(at.label, `writing files failed (exit ${r.code})`, 'Nothing was left half-written; fix the cause and re-run.', {
      exitCode: r.code,
      output: r.stderr,
    }),
  };
}

export function describeWrite(set: WriteSet): string {
  const n = set.puts.length;
  const d = set.deletes.length;
  const r = set.restores?.length ?? 0;
  return [
    n ? `${n} file${n === 1 ? '' : 's'} written` : '',
    r ? `${r} put back` : '',
    d ? `${d} deleted` : '',
    set.includes.length ? `${set.includes.length} include line(s) added` : '',
    set.dropIncludes?.length ? `${set.dropIncludes.length} include line(s) of provision removed` : '',
    set.stale?.length ? `${set.stale.length} leftover staging folder(s) of an interrupted write removed` : '',
  ]
    .filter(Boolean)
    .join(', ');
}
