import type { Problem } from './errors.js';
import type { HostSpec, PairDecl, PlannedPair, ResponderMode } from './types.js';
import type { Position } from './yaml.js';

/** A derived conn name: both host names in sorted order, so listing order never renames it. */
export function connName(a: string, b: string): string {
  return a < b ? `${a}--${b}` : `${b}--${a}`;
}

export interface MeshSpec {
  name: string;
  hosts: string[];
  responder?: ResponderMode;
  guard?: boolean;
  at: Position;
}

interface Merged {
  at: Position;
  left: string;
  right: string;
  name?: { value: string; at: Position };
  initiator?: { value: string; at: Position };
  responder?: { value: ResponderMode; at: Position };
  guard?: { value: boolean; at: Position };
}

/**
 * Expands meshes into pairs and merges them with `pairs:`. A pair written in `pairs:` keeps
 * its order (first host initiates); options given twice must agree; conn names are unique.
 */
export function expandPairs(
  file: string,
  hosts: ReadonlyMap<string, HostSpec>,
  decls: readonly PairDecl[],
  meshes: readonly MeshSpec[],
  defaults: { responder: ResponderMode; guard: boolean },
): { pairs: PlannedPair[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const merged = new Map<string, Merged>();
  const conflict = (at: Position, what: string, a: string, b: string, first: Position): void => {
    problems.push({
      file,
      ...at,
      message: `conflicting ${what} for this pair: ${a} here, ${b} at line ${first.line}`,
      hint: `Give the pair one ${what}: change or remove one of the two.`,
    });
  };

  const add = (x: string, y: string, decl: Pick<PairDecl, 'name' | 'initiator' | 'responder' | 'guard'>, at: Position): void => {
    const key = x < y ? `${x}\n${y}` : `${y}\n${x}`;
    let m = merged.get(key);
    if (!m) {
      m = { left: x, right: y, at };
      merged.set(key, m);
    }
    if (decl.name !== undefined) {
      if (m.name && m.name.value !== decl.name) conflict(at, 'name', decl.name, m.name.value, m.name.at);
      else m.name ??= { value: decl.name, at };
    }
    if (decl.initiator !== undefined) {
      if (m.initiator && m.initiator.value !== decl.initiator) conflict(at, 'initiator', decl.initiator, m.initiator.value, m.initiator.at);
      else m.initiator ??= { value: decl.initiator, at };
    }
    if (decl.responder !== undefined) {
      if (m.responder && m.responder.value !== decl.responder) conflict(at, 'responder mode', decl.responder, m.responder.value, m.responder.at);
      else m.responder ??= { value: decl.responder, at };
    }
    if (decl.guard !== undefined) {
      if (m.guard && m.guard.value !== decl.guard) conflict(at, 'guard setting', decl.guard ? 'on' : 'off', m.guard.value ? 'on' : 'off', m.guard.at);
      else m.guard ??= { value: decl.guard, at };
    }
  };

  for (const p of decls) {
    const [a, b] = p.hosts;
    const ha = hosts.get(a);
    const hb = hosts.get(b);
    if (ha && hb && ha.family !== hb.family) {
      problems.push({
        file,
        ...p.at,
        message: `pair ${a} (IPv${ha.family}) and ${b} (IPv${hb.family}) mixes address families`,
        hint: 'Both ends of a pair need addresses of the same family; give one host an address of the other family.',
      });
      continue;
    }
    add(a, b, p, p.at);
  }
  for (const mesh of meshes) {
    const opts = { ...(mesh.responder ? { responder: mesh.responder } : {}), ...(mesh.guard !== undefined ? { guard: mesh.guard } : {}) };
    const hs = mesh.hosts;
    for (let i = 0; i < hs.length; i++) {
      for (let j = i + 1; j < hs.length; j++) {
        const a = hs[i]!;
        const b = hs[j]!;
        if (hosts.get(a)?.family !== hosts.get(b)?.family) {
          problems.push({
            file,
            ...mesh.at,
            message: `mesh ${mesh.name} pairs ${a} and ${b}, whose addresses are of different families`,
            hint: 'Put IPv4 and IPv6 hosts in separate meshes.',
          });
          continue;
        }
        add(a, b, opts, mesh.at);
      }
    }
  }

  const pairs: PlannedPair[] = [];
  const names = new Map<string, Merged>();
  for (const m of merged.values()) {
    const name = m.name?.value ?? connName(m.left, m.right);
    const clash = names.get(name);
    if (clash) {
      problems.push({
        file,
        ...(m.name?.at ?? m.at),
        message: `conn name ${name} is used by two pairs: ${clash.left}/${clash.right} and ${m.left}/${m.right}`,
        hint: 'Give one of the pairs a different `name:`.',
      });
      continue;
    }
    names.set(name, m);
    const initiator = m.initiator?.value ?? m.left;
    pairs.push({
      name,
      left: m.left,
      right: m.right,
      initiator,
      responder: initiator === m.left ? m.right : m.left,
      responderMode: m.responder?.value ?? defaults.responder,
      guard: m.guard?.value ?? defaults.guard,
    });
  }
  return { pairs, problems };
}
