import type { Backend } from '../backends/types.js';

export type RotateMode = 'reauth' | 'reread';

/** One end of a pair, as a rotation sees it. */
export interface End {
  host: string;
  backend: Backend;
  version: string;
  role: 'initiator' | 'responder';
}

/** How a rotated key is proved, and why that way. */
export interface ModeChoice {
  mode: RotateMode;
  why: string;
  /** The default chose it (no --rotate-mode): the key must be proved now, by a probe or else a re-authentication. */
  chosen: boolean;
}

/**
 * The end that can authenticate a new key with a probe (an IKE SA without a Child SA,
 * beside the running one) and whose peer answers it without giving up its own SAs; or why
 * neither can.
 */
export function prober(ends: readonly [End, End]): { by: string } | { none: string } {
  const refusals: string[] = [];
  for (const [me, peer] of [ends, [ends[1], ends[0]]] as const) {
    if (!me.backend.probe) continue;
    const refusal = peer.backend.probeRefusal ? peer.backend.probeRefusal(peer.version, peer.role) : 'it does not answer one';
    if (!refusal) return { by: me.host };
    refusals.push(`${peer.backend.package} ${peer.version} (${peer.host}, the ${peer.role}): ${refusal}`);
  }
  if (refusals.length) return { none: [...new Set(refusals)].join('; ') };
  const packages = [...new Set(ends.map((e) => e.backend.package))].join(' and ');
  return { none: `${packages} cannot start one (an IKE SA without a Child SA)` };
}

/**
 * The mode of a rotation: the one asked for (--rotate-mode), or by default `reread` where a
 * probe proves the new key (no SA is replaced, so nothing is lost) and `reauth` elsewhere,
 * the only proof left: a new IKE SA that replaces the pair's.
 */
export function chooseMode(ends: readonly [End, End], asked: RotateMode | undefined): ModeChoice {
  if (asked) return { mode: asked, why: `--rotate-mode ${asked}`, chosen: false };
  const p = prober(ends);
  if ('by' in p) return { mode: 'reread', why: `default: ${p.by} can probe its peer`, chosen: true };
  return { mode: 'reauth', why: `default: no probe, ${p.none}`, chosen: true };
}
