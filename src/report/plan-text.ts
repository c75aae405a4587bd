import { createTwoFilesPatch } from 'diff';
import { redacted } from '../core/psk.js';
import { printable, some } from '../core/text.js';
import { type Changeset, CREATED_SLOT, FILE_ACTIONS, type FileChange, KEY_SLOT } from '../plan/types.js';
import { guardLine, hostLine, installLine, serviceLine, sshPathLine } from './host-lines.js';
import { countLine } from './plan-counts.js';
import { trailer } from './plan-trailer.js';

/** How much a plan shows: every file's diff, a line per host, or counts only. */
export type Detail = 'full' | 'hosts' | 'summary';

/** The default: every diff for a handful of hosts, a line per host beyond 10. */
function defaultDetail(cs: Changeset): Detail {
  return cs.hosts.length > 10 ? 'hosts' : 'full';
}

/** A planned file's content as people and JSON see it: the key slot says which key goes there. */
export function shownContent(f: FileChange): string {
  return f.content.replace(KEY_SLOT, redacted(f.keyState === 'unchanged' ? 'current' : (f.keyState ?? 'new'))).replace(CREATED_SLOT, '(when written)');
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
