// Two fleets that share hosts, for two controllers at once (scale-bench.mjs, BENCH_FLEETS=2),
// from the inventory bench/hosts wrote: east is the first 60 % of the hosts in meshes, west
// the last 60 % (so a fifth of the hosts are in both): its own hosts in meshes, and each
// shared host paired with one of them. No two servers are paired by both fleets.
// Every host's include lines are taken out first, so that both runs add them, at once, on
// the shared hosts.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as yaml from 'js-yaml';

const INCLUDE = /^[ \t]*include[ \t]+\/etc\/ipsec\.d\/\*\.(conf|secrets)[ \t]*$/;

/** Consecutive groups of k (a last group of one joins the one before: a mesh needs two). */
function chunks(names, k) {
  const out = [];
  for (let i = 0; i < names.length; i += k) out.push(names.slice(i, i + k));
  if (out.length > 1 && out.at(-1).length === 1) out.at(-2).push(...out.pop());
  return out.filter((c) => c.length >= 2);
}

export function splitFleets(state, n, k) {
  const bench = yaml.load(readFileSync(join(state, 'inventory.yaml'), 'utf8'));
  const names = Object.keys(bench.hosts);
  const [from, to] = [Math.floor(n * 0.4), Math.ceil(n * 0.6)];
  const shared = names.slice(from, to);
  const westOwn = names.slice(to);
  const inventories = [
    { fleet: 'east', hosts: names.slice(0, to), meshes: chunks(names.slice(0, to), k), pairs: [] },
    { fleet: 'west', hosts: names.slice(from), meshes: chunks(westOwn, k), pairs: shared.map((h, i) => [h, westOwn[i % westOwn.length]]) },
  ];
  for (const root of roots(state, names))
    for (const f of ['ipsec.conf', 'ipsec.secrets']) {
      const path = join(root, 'etc', f);
      writeFileSync(
        path,
        readFileSync(path, 'utf8')
          .split('\n')
          .filter((l) => !INCLUDE.test(l))
          .join('\n'),
      );
    }
  return inventories.map((f) => {
    const file = join(state, `${f.fleet}.yaml`);
    const doc = {
      fleet: f.fleet,
      defaults: bench.defaults,
      hosts: Object.fromEntries(f.hosts.map((h) => [h, bench.hosts[h]])),
      meshes: f.meshes.map((hosts, i) => ({ name: `${f.fleet}${i + 1}`, hosts })),
      ...(f.pairs.length ? { pairs: f.pairs } : {}),
    };
    writeFileSync(file, yaml.dump(doc, { flowLevel: 3, lineWidth: 200 }));
    const pairCount = f.meshes.reduce((t, m) => t + (m.length * (m.length - 1)) / 2, 0) + f.pairs.length;
    return { ...f, file, shared, pairCount };
  });
}

function roots(state, names) {
  return names.map((h) => join(state, 'hosts', h, 'root'));
}

/**
 * After both runs: on every host, each include line once, and each fleet's conns, exactly as
 * many as the fleet pairs the host in.
 */
export function checkShared(state, fleets) {
  const want = new Map();
  for (const f of fleets) {
    const count = (h) => {
      const c = want.get(h) ?? {};
      c[f.fleet] = (c[f.fleet] ?? 0) + 1;
      want.set(h, c);
    };
    for (const m of f.meshes) for (const h of m) for (let i = 1; i < m.length; i++) count(h);
    for (const [a, b] of f.pairs) {
      count(a);
      count(b);
    }
  }
  const problems = [];
  for (const [h, counts] of want) {
    const root = join(state, 'hosts', h, 'root');
    for (const f of ['ipsec.conf', 'ipsec.secrets']) {
      const n = readFileSync(join(root, 'etc', f), 'utf8')
        .split('\n')
        .filter((l) => INCLUDE.test(l)).length;
      if (n !== 1) problems.push(`${h}: ${n} include lines in /etc/${f}`);
    }
    const found = {};
    for (const name of readdirSync(join(root, 'etc', 'ipsec.d')).filter((x) => x.endsWith('.conf'))) {
      const m = /^# managed by provision for fleet (\S+):/.exec(readFileSync(join(root, 'etc', 'ipsec.d', name), 'utf8'));
      if (m) found[m[1]] = (found[m[1]] ?? 0) + 1;
    }
    for (const fleet of new Set([...Object.keys(counts), ...Object.keys(found)]))
      if ((found[fleet] ?? 0) !== (counts[fleet] ?? 0)) problems.push(`${h}: ${found[fleet] ?? 0} conns of fleet ${fleet}, ${counts[fleet] ?? 0} wanted`);
  }
  const both = [...want.values()].filter((c) => Object.keys(c).length === 2).length;
  return {
    hosts: both,
    problems,
    summary: `${both} hosts in both fleets; on all ${want.size} hosts, ${problems.length ? `${problems.length} problems` : "each include line once and each fleet's conns as planned"}`,
  };
}
