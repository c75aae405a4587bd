import { createTwoFilesPatch } from 'diff';
import type { Changeset, FileChange } from '../apply/changeset.js';
import { FILE_ACTIONS } from '../apply/changeset.js';
import { redacted } from '../psk.js';
import { printable } from '../core/text.js';

const PSK_LINE = /^(\S+\s+\S+\s*:\s*PSK\s+)\S+\s*$/;

/**
 * A secrets file as found on a host, safe to show: the key of a PSK line becomes a marker,
 * and any other line that is not a comment is hidden whole, in case it holds a key too.
 */
export function redactFound(content: string): string {
  return content
    .split('\n')
    .map((l) => {
      const m = PSK_LINE.exec(l);
      if (m) return `${m[1]}${redacted('current')}`;
      return l.trim() === '' || l.trimStart().startsWith('#') ? l : '<redacted line>';
    })
    .join('\n');
}

function fileDiff(f: FileChange): string {
  // A managed file's content on the host may have been edited to hold escape sequences.
  const before = (f.secret ? redactFound(f.before ?? '') : f.before ?? '').split('\n').map(printable).join('\n');
  const after = f.shown;
  const patch = createTwoFilesPatch(f.before === undefined ? '/dev/null' : f.path, f.action === 'delete' ? '/dev/null' : f.path, before, after, '', '', { context: 3 });
  return patch
    .split('\n')
    .filter((l, i, all) => !/^(Index: |====)/.test(l) && !(i === all.length - 1 && l === ''))
    .map((l) => `      ${l}`)
    .join('\n');
}

/** The live dry run for a person: per host the package, a diff per file, and the service action. */
export function renderChanges(cs: Changeset): string {
  const out: string[] = [];
  for (const h of cs.hosts) {
    out.push('');
    out.push(`${h.host}  ${h.address}  ${h.backend.package} ${h.backend.version}${h.backend.assumed ? ' (assumed)' : ''}`);
    if (h.install) out.push(`  install ${h.install.package}${h.install.aptUpdate ? ' (after apt-get update: apt has no candidate yet)' : ''}`);
    const changed = h.files.filter((f) => f.action !== 'noop');
    for (const f of changed) {
      const key = f.secret ? `, key ${f.keyState}` : '';
      out.push(`  ${FILE_ACTIONS[f.action]} ${f.path}  (${f.action}, ${f.mode}${key})`);
      out.push(fileDiff(f));
    }
    for (const inc of h.includes) out.push(`  ~ ${inc.path}  add the line: ${inc.line}`);
    const unchanged = h.files.length - changed.length;
    if (unchanged) out.push(`  ${unchanged} file${unchanged === 1 ? '' : 's'} already as planned`);
    const svc = h.service === 'reload'
      ? [
        h.unload.length ? `take down ${h.unload.join(', ')}` : '',
        h.files.some((f) => f.secret && f.action !== 'noop' && f.action !== 'delete') ? 'reread secrets' : '',
        h.reload.length ? `reload ${h.reload.map((r) => r.name).join(', ')}` : '',
        h.reauth.length ? `re-authenticate ${h.reauth.join(', ')} (new IKE SA with the new key)` : '',
      ].filter(Boolean).join('; ')
      : h.service === 'restart' ? 'restart ipsec' : 'no restart';
    out.push(`  then: ${svc} (${h.serviceReason})`);
  }
  if (cs.retired.length) {
    out.push('');
    out.push('Retired (no longer in the inventory: files deleted, conns taken down)');
    for (const r of cs.retired) out.push(`  ${r.name}: on ${r.hosts.join(', ')}`);
  }
  const keys = cs.pairs.filter((p) => p.key !== 'unchanged' || p.notRotated);
  if (keys.length) {
    out.push('');
    out.push('Keys');
    for (const p of keys) out.push(`  ${p.name}: ${keyLine(p)}`);
  }
  return out.join('\n') + '\n';
}

function keyLine(p: Changeset['pairs'][number]): string {
  if (p.notRotated) return `${p.notRotated}; run without --rotate-psk to see why it is down`;
  switch (p.key) {
    case 'new': return 'new pair, new key';
    case 'repaired': return `peers disagree or one lacks the key: repaired with a new key; ${p.initiator} re-authenticates`;
    case 'rotated': return `rotate: new key on both peers, ${p.initiator} re-authenticates (its SAs are replaced), then ESP is verified; the old key comes back if that fails`;
    default: return 'key kept';
  }
}
