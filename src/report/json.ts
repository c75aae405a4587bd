import type { HostOutcome, PairOutcome, RunResult } from '../apply/outcome.js';
import type { Changeset, HostPlan, PairPlan } from '../plan/types.js';
import { countLine } from './plan-counts.js';
import { shownContent } from './plan-text.js';
import { resultLine } from './summary.js';

/** The version of the JSON shape (docs/provision.schema.json); a saved plan carries it too. */
const JSON_VERSION = 2;

function hostJson(h: HostPlan, outcome?: HostOutcome): object {
  return {
    name: h.host,
    address: h.address,
    ...(outcome ?? { status: h.status }),
    ...(h.problems.length ? { problems: h.problems } : {}),
    backend: h.backend,
    install: h.install ?? null,
    files: h.files.map((f) => ({
      path: f.path,
      mode: f.mode,
      action: f.action,
      kind: f.kind,
      ...(f.pair ? { pair: f.pair } : {}),
      ...(f.keyState ? { key: f.keyState } : {}),
      ...(f.why ? { why: f.why } : {}),
      content: shownContent(f),
    })),
    includes: h.includes,
    service: h.service,
    serviceReason: h.serviceReason,
    reload: h.reload.map((c) => c.name),
    unload: h.unload,
    legacy: h.legacy,
    ...(h.guard ? { guard: h.guard } : {}),
  };
}

function pairJson(p: PairPlan, outcome?: PairOutcome): object {
  const {
    name: _n,
    initiator: _i,
    responder: _r,
    ...o
  } = outcome ?? { name: '', initiator: '', responder: '', status: p.skipped ? 'skipped' : 'planned', ...(p.skipped ? { reason: p.skipped } : {}) };
  return {
    name: p.name,
    hosts: p.hosts,
    initiator: p.initiator,
    responder: p.responder,
    responderMode: p.responderMode,
    key: p.key,
    agreement: p.agreement,
    changed: p.changed,
    upBefore: p.upBefore,
    ...(p.notRotated ? { notRotated: p.notRotated } : {}),
    ...(p.keyAgeSec !== undefined ? { keyAgeSec: p.keyAgeSec } : {}),
    ...(p.rotateWhy ? { rotateWhy: p.rotateWhy } : {}),
    ...(p.rotateMode ? { rotateMode: p.rotateMode, rotateModeWhy: p.rotateModeWhy } : {}),
    ...(p.probeBy ? { probeBy: p.probeBy } : {}),
    ...o,
  };
}

/**
 * The plan or the result as data, in one shape (docs/provision.schema.json) for offline
 * plans, dry runs and applies. Keys appear only as the redacted marker.
 */
export function toJson(cs: Changeset, result?: RunResult): object {
  const mode = cs.mode === 'offline' ? 'offline' : result?.dryRun === false ? 'apply' : 'dry-run';
  const outcomes = new Map(result?.pairs.map((p) => [p.name, p]) ?? []);
  return {
    version: JSON_VERSION,
    tool: cs.tool,
    mode,
    inventory: cs.inventory,
    hosts: cs.hosts.filter((h) => !result || result.hosts.has(h.host) || h.status === 'unread').map((h) => hostJson(h, result?.hosts.get(h.host))),
    pairs: cs.pairs.map((p) => pairJson(p, outcomes.get(p.name))),
    retired: cs.retired,
    warnings: cs.warnings,
    summary: result && !result.dryRun ? resultLine(result) : countLine(cs),
    ...(result ? { interrupted: result.interrupted, stats: result.stats } : {}),
  };
}
