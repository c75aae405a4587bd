import { createTwoFilesPatch } from 'diff';
import { BACKENDS } from '../backends/index.js';
import { redacted } from '../core/psk.js';
import { printable } from '../core/text.js';
import { changes } from '../plan/changes.js';
import { type Changeset, FILE_ACTIONS, type FileChange, type HostPlan, KEY_SLOT, type PairPlan } from '../plan/types.js';

/** How much a plan shows: every file's diff, a line per host, or counts only. */
export type Detail = 'full' | 'hosts' | 'summary';

/** The default: every diff for a handful of hosts, a line per host beyond 10. */
export function defaultDetail(cs: Changeset): Detail {
  return cs.hosts.length > 10 ? 'hosts' : 'full';
}

/** A planned file's content as people and JSON see it: the key slot says which key goes there. */
export function shownContent(f: FileChange): string {
  return f.content.replace(KEY_SLOT, redacted(f.keyState === 'unchanged' ? 'current' : (f.keyState ?? 'new')));
}

const PAINT = { add: '\u001b[32m', del: '\u001b[31m', hunk: '\u001b[36m', off: '\u001b[0m' } as const;

/** A diff's added lines green, removed ones red, hunk headers cyan: for a terminal. */
function paint(diff: string): string {
  return diff
    .split('\n')
    .map((l) => {
      const body = l.slice(6);
      const c = /^\+(?!\+\+ )/.test(body) ? PAINT.add : /^-(?!-- )/.test(body) ? PAINT.del : body.startsWith('@@') ? PAINT.hunk : '';
      return c ? `${l.slice(0, 6)}${c}${body}${PAINT.off}` : l;
    })
    .join('\n');
}

function fileDiff(f: FileChange): string {
  // A file of ours on the host may have been edited to hold escape sequences.
  const old = (f.before ?? '').split('\n').map(printable).join('\n');
  const patch = createTwoFilesPatch(
    f.before === undefined ? '/dev/null' : f.path,
    f.action === 'delete' ? '/dev/null' : f.path,
    old,
    f.action === 'delete' ? '' : shownContent(f),
    '',
    '',
    { context: 3 },
  );
  return patch
    .split('\n')
    .filter((l, i, all) => !/^(Index: |====)/.test(l) && !(i === all.length - 1 && l === ''))
    .map((l) => `      ${l}`)
    .join('\n');
}

export function serviceLine(h: HostPlan): string {
  if (h.service === 'restart') return `restart ipsec (${h.serviceReason})`;
  if (h.service === 'none') return `no restart (${h.serviceReason})`;
  return `${[
    h.unload.length ? `take down ${h.unload.join(', ')}` : '',
    h.files.some((f) => f.kind === 'secrets' && f.action !== 'noop' && f.action !== 'delete') ? 'reread secrets' : '',
    h.reload.length ? `reload ${h.reload.map((r) => r.name).join(', ')}` : '',
    h.reauth.length ? `re-authenticate ${h.reauth.join(', ')} (new IKE SA with the new key)` : '',
  ]
    .filter(Boolean)
    .join('; ')} (${h.serviceReason})`;
}

function counts(h: HostPlan): Record<'create' | 'update' | 'delete', number> {
  const c = { create: 0, update: 0, delete: 0 };
  for (const f of h.files) if (f.action !== 'noop') c[f.action]++;
  return c;
}

/**
 * The plan for a person, offline or live, from the one changeset: per host the package, a
 * diff per file and the service action; then retired pairs, keys, pairs; then the counts.
 */
export function renderPlan(cs: Changeset, opts: { detail?: Detail; asking?: boolean; color?: boolean } = {}): string {
  const detail = opts.detail ?? defaultDetail(cs);
  const out: string[] = [];
  const offline = cs.mode === 'offline';
  out.push(
    `Plan for ${cs.inventory.file} (fleet ${cs.inventory.fleet}${cs.inventory.fleetFromFile ? ", the file's name: set `fleet:` to keep it if the file is renamed" : ''}): ${cs.hosts.length} hosts, ${cs.pairs.length} pairs${offline ? ' (offline: no host was contacted)' : ''}`,
  );
  if (offline && cs.hosts.some((h) => h.backend.assumed)) {
    out.push('Versions marked (assumed) are what a host would most likely get; a dry run without --offline asks each host.');
  }
  for (const w of cs.warnings) out.push(`warning: ${w}`);
  // The totals first: at 200 hosts they are what a reader needs before the detail.
  out.push(countLine(cs, opts.asking));
  // A file identical on many hosts (the guard's unit, a drop-in) is shown once.
  const shown = new Map<string, string>();
  if (detail !== 'summary') {
    // Hosts not read are counted, not listed: at --limit one of 200, 199 lines say nothing.
    const unread = cs.hosts.filter((h) => h.status === 'unread').map((h) => h.host);
    if (unread.length) out.push(`${unread.length} host${unread.length === 1 ? '' : 's'} not read (outside --limit, or not reached): ${some(unread)}`);
    for (const h of cs.hosts) {
      if (h.status === 'unread') continue;
      if (detail === 'hosts') {
        out.push(hostLine(h));
        continue;
      }
      out.push('');
      out.push(`${h.host}  ${h.address}  ${h.backend.package} ${h.backend.version}${h.backend.assumed ? ' (assumed)' : ''}`);
      if (h.status === 'blocked') {
        for (const p of h.problems) out.push(`  BLOCKED: ${printable(p.problem)}\n    next: ${p.hint}`);
        continue;
      }
      if (h.install) out.push(`  ${installLine(h)}`);
      const changed = h.files.filter((f) => f.action !== 'noop');
      for (const f of changed) {
        const extra = [f.mode, f.kind === 'secrets' ? `key ${f.keyState}` : '', f.why ?? ''].filter(Boolean).join(', ');
        out.push(`  ${FILE_ACTIONS[f.action]} ${f.path}  (${f.action}, ${extra})`);
        const diff = fileDiff(f);
        const key = `${f.path}\0${f.action}\0${diff}`;
        const first = shown.get(key);
        if (first) out.push(`      same as on ${first}`);
        else {
          shown.set(key, h.host);
          out.push(opts.color ? paint(diff) : diff);
        }
      }
      for (const inc of h.includes) out.push(`  ~ ${inc.path}  add the line: ${inc.line}`);
      for (const inc of h.dropIncludes ?? []) out.push(`  ~ ${inc.path}  remove the line provision added: ${inc.line}`);
      const same = h.files.length - changed.length;
      if (same) out.push(`  ${same} file${same === 1 ? '' : 's'} already as planned`);
      if (!h.conns.length && !changed.length) out.push('  no pairs: nothing to do');
      for (const l of h.legacy) out.push(`  ? ${l}  (no identity: not retired; --retire-legacy removes it)`);
      for (const d of h.staleStaging) out.push(`  - ${d}/  (delete: the staging folder an interrupted write of provision's left)`);
      if (h.guard) out.push(`  guard: ${guardLine(h)}`);
      if (h.sshPath) out.push(`  ssh path: ${sshPathLine(h)}`);
      out.push(`  then: ${serviceLine(h)}`);
    }
  }
  // Whatever the detail, the pairs a run takes down or leaves out are named.
  out.push(...trailer(cs, detail === 'full'));
  return `${out.join('\n')}\n`;
}

/** The guard's change in a few words, for a line per host: counts, not addresses. */
function guardCount(h: HostPlan): string {
  const g = h.guard!;
  if (g.remove) return 'remove';
  const joining = g.joins.length + g.joinsVerified.length;
  const change = [joining ? `${joining} join` : '', g.leaves.length ? `${g.leaves.length} leave` : ''].filter(Boolean).join(', ');
  return `${g.load ? 'load' : 'as it is'} (${g.members.length + g.joinsVerified.length} peer${g.members.length + g.joinsVerified.length === 1 ? '' : 's'}${change ? `; ${change}` : ''})`;
}

/** What happens to the host's guard: for the plan and the per-host lines. */
export function guardLine(h: HostPlan): string {
  const g = h.guard!;
  if (g.remove) return `remove table inet ${g.table}${g.leaves.length ? ` (had ${g.leaves.join(', ')})` : ''}`;
  const parts = [
    g.load ? loadLine(g) : `table inet ${g.table} as it is (${g.members.length} peer${g.members.length === 1 ? '' : 's'})`,
    g.leaves.length ? `${some(g.leaves)} leave${g.leaves.length === 1 ? 's' : ''} (pair retired)` : '',
    g.joinsVerified.length
      ? `${some(g.joinsVerified.map((j) => j.address))} join${g.joinsVerified.length === 1 ? 's' : ''} once verified (the tool's SSH runs between the two)`
      : '',
    g.ssh.length ? `SSH from ${g.ssh.join(', ')} stays open` : '',
    g.sshTo.length ? `SSH to ${g.sshTo.map((t) => `${t.address} port ${t.port}`).join(', ')} stays open` : '',
    g.dropped && (g.dropped.out || g.dropped.in) ? `dropped so far: ${g.dropped.out} out, ${g.dropped.in} in` : '',
  ];
  return parts.filter(Boolean).join('; ');
}

/** The kernel policies that keep the tool's SSH with a peer outside IPsec, as they change. */
export function sshPathLine(h: HostPlan): string {
  const p = h.sshPath!;
  const n = p.add.length / 2;
  return [
    n
      ? `kernel policies pass the tool's SSH with ${n === 1 ? 'its peer' : `${n} peers`} outside IPsec, so the pair being down cannot cut it (${p.add
          .filter((l) => / dir out /.test(l))
          .map((l) => /dst (\S+)\/\d+ /.exec(l)![1])
          .join(', ')})`
      : '',
    p.remove.length ? `${p.remove.length} such polic${p.remove.length === 1 ? 'y' : 'ies'} removed` : '',
    p.reloadUnits ? "systemd reloads the IKE daemon's drop-in" : '',
  ]
    .filter(Boolean)
    .join('; ');
}

function loadLine(g: NonNullable<HostPlan['guard']>): string {
  const joining = g.joins.map((j) => j.address);
  const kept = g.members.filter((a) => !joining.includes(a));
  const join = joining.length
    ? `${some(joining)} join${joining.length === 1 ? 's' : ''} before the daemons load ${joining.length === 1 ? 'its pair' : 'their pairs'}`
    : '';
  return [`load table inet ${g.table}${kept.length ? ` with ${some(kept)}` : joining.length ? '' : ' with no peer'}`, join].filter(Boolean).join('; ');
}

function installLine(h: HostPlan): string {
  const i = h.install!;
  const what = i.choose ? `${i.packages.join(' ')} (auto: the first apt offers of ${i.choose.map((c) => c.packages[0]).join(', ')})` : i.packages.join(' ');
  return `install ${what}${i.aptUpdate ? ', after apt-get update (apt offers no candidate yet)' : ''}`;
}

function hostLine(h: HostPlan): string {
  if (h.status === 'unread') return `  ${h.host}  not read`;
  if (h.status === 'blocked') return `  ${h.host}  BLOCKED: ${printable(h.problems[0]!.problem)}`;
  const c = counts(h);
  const files = c.create + c.update + c.delete ? `+${c.create} ~${c.update} -${c.delete}` : 'no file changes';
  return `  ${h.host}  ${h.install ? `install ${h.install.packages.join(' ')}; ` : ''}${files}; ${serviceLine(h)}${h.guard ? `; guard: ${guardCount(h)}` : ''}${h.sshPath ? '; ssh path' : ''}`;
}

function trailer(cs: Changeset, full: boolean): string[] {
  const out: string[] = [];
  if (cs.retired.length) {
    out.push('', 'Retired (no longer in the inventory: files deleted, conns taken down)');
    for (const r of cs.retired) out.push(`  ${r.name}: on ${r.hosts.join(', ')}`);
  }
  if (!full) {
    // Skipped pairs by reason: at --limit one of 200 hosts, one line, not 199.
    const byReason = new Map<string, string[]>();
    // The reason without the host it names ("h7 is outside --limit"): one line per kind.
    for (const p of cs.pairs.filter((x) => x.skipped)) {
      const why = `one end ${p.skipped!.replace(/^\S+ /, '')}`;
      byReason.set(why, [...(byReason.get(why) ?? []), p.name]);
    }
    if (byReason.size) out.push('', 'Skipped pairs');
    for (const [why, names] of byReason) out.push(`  ${names.length} skipped (${why}): ${some(names)}`);
    return out;
  }
  const keyed = cs.pairs.filter((p) => !p.skipped && (p.key !== 'unchanged' || p.notRotated));
  if (keyed.length && cs.mode === 'live') {
    out.push('', 'Keys');
    for (const p of keyed) out.push(`  ${p.name}: ${keyLine(cs, p)}`);
  }
  if (cs.pairs.length) {
    out.push('', 'Pairs');
    const width = Math.max(...cs.pairs.map((p) => p.name.length), 4);
    for (const p of cs.pairs) {
      out.push(
        `  ${p.name.padEnd(width)}  ${p.initiator} (auto=start) -> ${p.responder} (auto=${p.responderMode})${p.skipped ? `  skipped: ${p.skipped}` : ''}`,
      );
    }
  }
  return out;
}

/** A list that stays one line: the first few, then how many more. */
function some(items: readonly string[], max = 5): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max - 1).join(', ')} and ${items.length - max + 1} more`;
}

function mbb(cs: Changeset, host: string | undefined): boolean {
  const h = cs.hosts.find((x) => x.host === host);
  return Boolean(h && BACKENDS[h.backend.id].makeBeforeBreak);
}

function keyLine(cs: Changeset, p: PairPlan): string {
  if (p.notRotated) return `${p.notRotated}; run without --rotate-psk to see why it is down`;
  switch (p.key) {
    case 'new':
      return 'new pair, new key';
    case 'repaired':
      return `${p.agreement === 'weak' ? 'a weak key (under 256 bits)' : p.agreement === 'disagree' ? 'peers disagree' : 'one end lacks the key'}: repaired with a new key; ${p.reauthBy ?? p.initiator} re-authenticates`;
    case 'rotated':
      if (p.proof === 'keys compared') {
        const proof = p.probeBy
          ? `, and ${p.probeBy} authenticates it with a probe IKE SA beside the running one`
          : ' (no new authentication now: the next one uses it, docs/rotation.md)';
        return `rotate: new key on both peers, reread; the two ends' keys are compared${proof}; the pair's SAs are kept; ESP is verified; the old key comes back if that fails`;
      }
      return `rotate: new key on both peers, ${p.reauthBy} re-authenticates ${p.reauthBy !== p.initiator || mbb(cs, p.reauthBy) ? 'make-before-break (the new SAs are up before the old ones go)' : '(its SAs are replaced: break-before-make)'}, then ESP is verified; the old key comes back if that fails`;
    default:
      return 'key kept';
  }
}

/** "3 files to create, 1 to update, 2 conns to reload on 2 of 5 hosts; 3 hosts unchanged. Nothing was changed." */
export function countLine(cs: Changeset, asking = false): string {
  const t = { create: 0, update: 0, delete: 0 };
  let reloads = 0;
  let restarts = 0;
  let installs = 0;
  let guards = 0;
  for (const h of cs.hosts.filter((x) => x.status === 'planned')) {
    guards += h.guard && (h.guard.load || h.guard.remove) ? 1 : 0;
    const c = counts(h);
    t.create += c.create;
    t.update += c.update;
    t.delete += c.delete;
    reloads += h.service === 'reload' ? h.reload.length + h.unload.length : 0;
    restarts += h.service === 'restart' ? 1 : 0;
    installs += h.install ? 1 : 0;
  }
  const acting = cs.hosts.filter(changes).length;
  const parts = [
    `${t.create} file${t.create === 1 ? '' : 's'} to create`,
    `${t.update} to update`,
    `${t.delete} to delete`,
    installs ? `${installs} install${installs === 1 ? '' : 's'}` : '',
    reloads ? `${reloads} conn${reloads === 1 ? '' : 's'} to reload` : '',
    restarts ? `${restarts} restart${restarts === 1 ? '' : 's'}` : '',
    guards ? `${guards} guard${guards === 1 ? '' : 's'} to load or remove` : '',
  ].filter(Boolean);
  const blocked = cs.hosts.filter((h) => h.status === 'blocked').length;
  const unread = cs.hosts.filter((h) => h.status === 'unread').length;
  const unchanged = cs.hosts.length - acting - blocked - unread;
  return (
    `${parts.join(', ')} on ${acting} of ${cs.hosts.length} hosts; ${unchanged} host${unchanged === 1 ? '' : 's'} unchanged` +
    `${blocked ? `, ${blocked} blocked` : ''}${unread ? `, ${unread} not read` : ''}.${asking ? '' : ' Nothing was changed.'}`
  );
}
