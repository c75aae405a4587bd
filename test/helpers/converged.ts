import { run } from '../../src/apply/run.js';
import type { Inventory } from '../../src/inventory/types.js';
import { guardTable, renderGuard } from '../../src/plan/guard.js';
import { type FakeFile, fakeFleet, READY_FACTS, withFiles, withGuard, withSas, written } from './fake-session.js';

/** A host's peers' addresses, in the inventory's order of pairs. */
export function peersOf(inv: Inventory, host: string): string[] {
  return inv.pairs.flatMap((p) => (p.left === host ? [p.right] : p.right === host ? [p.left] : [])).map((h) => inv.hosts.get(h)!.address);
}

/**
 * What each host's facts say after a first run of `inv` with keys from `random`: its files as
 * the write left them (`edit` may change them first), its guard loaded with its peers, and
 * SAs up with them unless `saUp` is false. `base` is each host's facts before any file.
 */
export async function convergedFacts(
  inv: Inventory,
  o: {
    random: (n: number) => Uint8Array;
    base?: (host: string) => string;
    saUp?: boolean;
    dropped?: { out: number; in: number };
    edit?: (host: string, files: FakeFile[]) => void;
  },
): Promise<Map<string, string>> {
  const base = o.base ?? (() => READY_FACTS);
  const first = await run(inv, { dryRun: false, verify: false, concurrency: 4, random: o.random, connect: fakeFleet(inv, { facts: base }).connect });
  const key = `0s${Buffer.from(o.random(32)).toString('base64')}`;
  return new Map(
    first.changeset!.hosts.map((h) => {
      const peers = peersOf(inv, h.host);
      const files: FakeFile[] = h.files.map((f) => ({
        path: f.path,
        mode: f.mode.slice(1),
        content: f.kind === 'guard' ? renderGuard(inv.fleet, { peers, ssh: [], sshPort: 22 }) : written(f.content, key),
      }));
      o.edit?.(h.host, files);
      const before = o.saUp === false ? base(h.host) : withSas(base(h.host), inv.hosts.get(h.host)!.address, peers);
      return [h.host, withGuard(withFiles(before, files), guardTable(inv.fleet), peers, o.dropped)];
    }),
  );
}
