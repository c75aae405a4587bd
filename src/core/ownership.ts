/**
 * Who wrote a file. Every file provision writes starts with a header line naming the fleet
 * (the inventory) it belongs to; the whole line must match, so an operator's
 * "# managed by provisioning team" is the operator's. Files written before fleets existed
 * carry the old, fleet-less header: "legacy".
 */
export type Owner = { kind: 'operator' } | { kind: 'legacy' } | { kind: 'shared' } | { kind: 'fleet'; fleet: string };

/** The header of a file every fleet on a host shares (the guard's boot unit): written the same by each. */
export const SHARED_HEADER = '# managed by provision for every fleet on this host: edits are overwritten';

const FLEET_HEADER = /^# managed by provision for fleet ([A-Za-z0-9][A-Za-z0-9_.-]{0,39}): edits are overwritten$/;
const LEGACY_HEADER = /^# managed by provision: edits are overwritten\. Pair [A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+; [A-Za-z0-9_.-]+ initiates\.$/;

/** The shell `case` patterns that pick out the files whose content the facts script reads. */
export const HEADER_CASE_PATTERNS = `'# managed by provision for fleet '*': edits are overwritten'|'# managed by provision: edits are overwritten. Pair '*' initiates.'|'${SHARED_HEADER}'`;

export function headerLine(fleet: string): string {
  return `# managed by provision for fleet ${fleet}: edits are overwritten`;
}

export function ownerOf(firstLine: string): Owner {
  const m = FLEET_HEADER.exec(firstLine);
  if (m) return { kind: 'fleet', fleet: m[1]! };
  if (LEGACY_HEADER.test(firstLine)) return { kind: 'legacy' };
  if (firstLine === SHARED_HEADER) return { kind: 'shared' };
  return { kind: 'operator' };
}

export function ownerWord(o: Owner): string {
  return o.kind === 'fleet'
    ? `fleet ${o.fleet}`
    : o.kind === 'legacy'
      ? 'provision, before fleets (no identity)'
      : o.kind === 'shared'
        ? 'provision (every fleet)'
        : 'the operator';
}
