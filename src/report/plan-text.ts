import type { Plan } from '../plan/plan.js';
import { confContent, confPath, secretsContent, secretsPath } from '../plan/plan.js';
import { redacted } from '../psk.js';

function indent(content: string): string {
  return content.replace(/\n$/, '').split('\n').map((l) => `      │ ${l}`).join('\n');
}

/** The offline plan for a person: per host, every file in full; then who initiates each pair. */
export function renderPlanText(plan: Plan, inventory: string): string {
  const out: string[] = [];
  const fileCount = plan.hosts.reduce((n, hp) => n + hp.conns.length * 2, 0);
  out.push(`Plan for ${inventory}: ${plan.hosts.length} hosts, ${plan.pairs.length} pairs (offline: no host was contacted)`);
  if (plan.hosts.some((hp) => hp.host.backend === 'auto')) {
    out.push("Backend 'auto' is shown as libreswan, what Debian 12 and current Ubuntu offer; a dry run without --offline asks each host.");
  }
  for (const w of plan.warnings) out.push(`warning: ${w}`);
  for (const hp of plan.hosts) {
    const how = hp.host.backend === 'auto' ? 'auto' : 'from the inventory';
    out.push('');
    out.push(`${hp.host.name}  ${hp.host.address}`);
    out.push(`  package  ${hp.backend.package} ${hp.resolved.version}${hp.resolved.assumed ? ' (assumed)' : ''}, backend ${hp.backend.id} (${how}); installed if missing`);
    if (hp.conns.length === 0) {
      out.push('  no pairs: nothing to write');
      continue;
    }
    for (const c of hp.conns) {
      const auto = c.role === 'initiator' ? 'start' : c.pair.responderMode;
      out.push(`  + ${confPath(c)}  (0644, ${c.role}, auto=${auto})`);
      out.push(indent(confContent(hp, c)));
      out.push(`  + ${secretsPath(c)}  (0600, root only)`);
      out.push(indent(secretsContent(hp, c, redacted('new'))));
    }
    for (const inc of hp.includes) out.push(`  ~ ${inc.path}  ensure the line: ${inc.line}`);
    out.push('  then restart ipsec, and verify ESP with each peer');
  }
  out.push('');
  out.push('Pairs');
  const width = Math.max(...plan.pairs.map((p) => p.name.length), 4);
  for (const p of plan.pairs) {
    out.push(`  ${p.name.padEnd(width)}  ${p.initiator} (auto=start) -> ${p.responder} (auto=${p.responderMode})`);
  }
  out.push('');
  out.push(`${fileCount} files to write on ${plan.hosts.filter((h) => h.conns.length).length} hosts. Nothing was changed.`);
  return out.join('\n') + '\n';
}
