/**
 * libreswan's states of one conn, as `ipsec whack --showstates` lists them (4.x prefixes
 * each line with `000 ` and spells states `STATE_V2_...`; 5.x does neither), and the SAs one
 * end holds that its peer does not: what crossed negotiations leave behind.
 *
 * Under traffic both ends of a libreswan pair start a new IKE SA at once when the old one
 * is deleted (each trap policy catches a packet). libreswan 5.x gives up its own negotiation
 * at its first retransmit once the peer's has established, without telling the peer
 * (`dropping negotiation as superseeded`, programs/pluto/ikev2_retransmit.c); a slower peer
 * may still answer it and install a Child SA whose outbound SA the other end never had.
 * That end then sends into nothing while the other end's pings get no reply ("SAs out of
 * step"), for as long as the stray lasts.
 */
export interface PlutoState {
  serial: number;
  kind: 'ike' | 'child';
  established: boolean;
  /** A Child SA's IKE SA. */
  parent?: number;
  /** A Child SA's kernel SAs, `esp.SPI@DESTINATION` as whack prints them: the peer holds the same two. */
  spis: string[];
}

const STATE_LINE = /^(?:000 )?#(\d+): "([^"]+)":\d+ (?:STATE_V2_)?([A-Z0-9_]+)/;
const SA = 'esp\\.[0-9a-f]+@[0-9a-fA-F.:]+';
const SPI_LINE = new RegExp(`^(?:000 )?#(\\d+): "([^"]+)" (${SA})(?: (${SA}))?(?:\\s|$)`);
const PARENT = /(?:isakmp|IKE SA )#(\d+)/;

export function parseStates(text: string, conn: string): PlutoState[] {
  const states = new Map<number, PlutoState>();
  for (const line of text.split('\n')) {
    const s = STATE_LINE.exec(line);
    if (s && s[2] === conn) {
      const name = s[3]!;
      const kind = /CHILD|IPSEC|QUICK/.test(name) || PARENT.test(line) ? 'child' : 'ike';
      const parent = PARENT.exec(line);
      states.set(Number(s[1]), {
        serial: Number(s[1]),
        kind,
        established: /^ESTABLISHED_(IKE|CHILD)_SA$/.test(name),
        ...(parent ? { parent: Number(parent[1]) } : {}),
        spis: [],
      });
      continue;
    }
    const t = SPI_LINE.exec(line);
    if (t && t[2] === conn) states.get(Number(t[1]))?.spis.push(...[t[3]!, t[4]].filter((x): x is string => Boolean(x)));
  }
  return [...states.values()];
}

/** Whether a negotiation of the conn is still under way on this end. */
export function negotiating(states: readonly PlutoState[]): boolean {
  return states.some((s) => !s.established);
}

export interface Strays {
  /** States to delete: each IKE SA all of whose Child SAs are strays (its Child SAs go with it), and the other stray Child SAs. */
  serials: number[];
  /**
   * The strays' kernel SAs (`esp.SPI@DESTINATION`), to delete at once: libreswan 5.x deletes
   * an established IKE SA or Child SA only once the peer answers the delete, or after 60 s,
   * and meanwhile the kernel may send on the stray's outbound SA, the newest.
   */
  sas: string[];
}

/**
 * What `mine` holds that `theirs` does not: each established Child SA whose SAs the peer
 * does not hold. An IKE SA without Child SAs is left alone: nothing says the peer lacks it.
 */
export function strayStates(mine: readonly PlutoState[], theirs: readonly PlutoState[]): Strays {
  const held = new Set(theirs.flatMap((s) => s.spis));
  const children = mine.filter((s) => s.kind === 'child' && s.established && s.spis.length);
  const stray = new Set(children.filter((c) => !c.spis.every((x) => held.has(x))).map((c) => c.serial));
  const strayIkes = new Set(
    mine
      .filter((i) => i.kind === 'ike' && i.established)
      .filter((i) => {
        const own = children.filter((c) => c.parent === i.serial);
        return own.length > 0 && own.every((c) => stray.has(c.serial));
      })
      .map((i) => i.serial),
  );
  return {
    serials: [...strayIkes, ...children.filter((c) => stray.has(c.serial) && !strayIkes.has(c.parent ?? -1)).map((c) => c.serial)],
    sas: children.filter((c) => stray.has(c.serial)).flatMap((c) => c.spis),
  };
}
