import { z } from 'zod';
import { CONN_NAME, checkHostRef, checkSsh, HOST_NAME, type Section } from './checks.js';
import { nearest, type Report, shown } from './issues.js';
import type { MeshSpec } from './pairs.js';
import { groupSchema, meshSchema, type RawGroup, type RawSsh } from './schema.js';
import type { BackendChoice } from './types.js';
import type { ParsedYaml } from './yaml.js';

// Groups (name → hosts, with ssh and ipsec defaults for them) and meshes, which may name groups.

export function readGroups(value: unknown, names: ReadonlySet<string>, section: Section, report: Report): Map<string, RawGroup> {
  const out = new Map<string, RawGroup>();
  const raw = section(z.record(z.string(), z.unknown()), value ?? {}, ['groups']) ?? {};
  for (const [g, v] of Object.entries(raw)) {
    if (!HOST_NAME.test(g)) {
      report(['groups', g], `group name ${shown(g)} is not a safe name`, 'Use letters, digits, dot, dash and underscore.', true);
    }
    if (names.has(g))
      report(['groups', g], `${shown(g)} names both a group and a host`, 'Rename the group: --limit and meshes must know which one you mean.', true);
    const group = section(groupSchema, v, ['groups', g]);
    if (!group) continue;
    for (const [j, h] of group.hosts.entries()) checkHostRef(h, ['groups', g, 'hosts', j], names, report);
    checkSsh(group.ssh ?? {}, ['groups', g, 'ssh'], names, report);
    out.set(g, group);
  }
  return out;
}

/** Settings a host takes from its groups; two groups that set one key differently are a mistake. */
export function fromGroups(host: string, groups: [string, RawGroup][], report: Report): { ssh: RawSsh; backend?: BackendChoice; guard?: boolean } {
  const ssh: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  let backend: BackendChoice | undefined;
  let backendFrom = '';
  for (const [g, group] of groups) {
    for (const [k, v] of Object.entries(group.ssh ?? {})) {
      if (k in ssh && ssh[k] !== v) {
        report(
          ['groups', g, 'ssh', k],
          `host ${host} is in groups ${from[k]} and ${g}, which set ssh.${k} differently`,
          `Set ssh.${k} on the host itself, or in one of the two groups only.`,
          true,
        );
      }
      ssh[k] ??= v;
      from[k] ??= g;
    }
    const b = group.ipsec?.backend;
    if (b !== undefined) {
      if (backend !== undefined && backend !== b) {
        report(
          ['groups', g, 'ipsec', 'backend'],
          `host ${host} is in groups ${backendFrom} and ${g}, which set ipsec.backend differently`,
          'Set ipsec.backend on the host itself, or in one of the two groups only.',
          true,
        );
      }
      backend ??= b;
      backendFrom ||= g;
    }
  }
  // Any group that turns the guard off turns it off for its hosts.
  const guards = groups.map(([, g]) => g.ipsec?.guard).filter((g): g is boolean => g !== undefined);
  return { ssh: ssh as RawSsh, ...(backend ? { backend } : {}), ...(guards.length ? { guard: guards.every(Boolean) } : {}) };
}

export function readMeshes(
  yaml: ParsedYaml,
  value: unknown,
  names: ReadonlySet<string>,
  groups: ReadonlyMap<string, RawGroup>,
  section: Section,
  report: Report,
): MeshSpec[] {
  const out: MeshSpec[] = [];
  const raw = section(z.array(z.unknown()), value ?? [], ['meshes']) ?? [];
  raw.forEach((item, i) => {
    const m = section(meshSchema, item, ['meshes', i]);
    if (!m) return;
    if (!CONN_NAME.test(m.name)) {
      report(
        ['meshes', i, 'name'],
        `mesh name ${shown(m.name)} is not a safe name`,
        'Use letters, digits, dot, dash and underscore, starting with a letter or digit.',
      );
    }
    const seen = new Set<string>();
    (m.hosts ?? []).forEach((h, j) => {
      checkHostRef(h, ['meshes', i, 'hosts', j], names, report);
      if (seen.has(h)) report(['meshes', i, 'hosts', j], `host ${shown(h)} is listed twice in mesh ${shown(m.name)}`, 'List each host of a mesh once.');
      seen.add(h);
    });
    (m.groups ?? []).forEach((g, j) => {
      const group = groups.get(g);
      if (!group) {
        const near = nearest(g, [...groups.keys()]);
        report(['meshes', i, 'groups', j], `unknown group ${shown(g)}`, near ? `Did you mean ${near}?` : 'Define it under `groups:` first, or fix the name.');
        return;
      }
      for (const h of group.hosts) seen.add(h);
    });
    if (seen.size < 2) {
      report(
        ['meshes', i, m.hosts ? 'hosts' : 'groups'],
        `mesh ${shown(m.name)} has ${seen.size} host${seen.size === 1 ? '' : 's'}`,
        'A mesh needs at least two hosts: list them under `hosts:` or name groups under `groups:`.',
      );
      return;
    }
    out.push({
      name: m.name,
      hosts: [...seen],
      ...(m.responder ? { responder: m.responder } : {}),
      ...(m.guard !== undefined ? { guard: m.guard } : {}),
      at: yaml.locate(['meshes', i]),
    });
  });
  return out;
}
