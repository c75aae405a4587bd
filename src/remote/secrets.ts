// What leaves a host of its keys: never a key. Secrets are masked on the host (MASK_SECRETS)
// and again on the controller (maskSecrets); keys are compared by MACs of a fresh challenge.

/**
 * A key as the controller knows it: never the key, nor a plain hash of it. `mac` is a MAC of
 * the run's fresh challenge and the key, computed on the host; two ends hold the same key
 * when their MACs are equal.
 */
export interface KeyFact {
  mac: string;
}

/** The secret kinds of ipsec.secrets whose values are masked before anything leaves a host. */
const SECRET_KINDS = 'PSK|EAP|XAUTH|NTLM|PIN';

/**
 * sed that masks every secret in its input, byte for byte (LC_ALL=C), so sizes do not change:
 * what follows `: PSK ` becomes '*' except a leading 0s/0x and '=' padding. A \x01 marks
 * where masking starts (glibc's regex would otherwise take a 0s prefix for key material).
 */
export const MASK_SECRETS = `sed -E '/:[[:space:]]*(${SECRET_KINDS})[[:space:]]/{
s/(:[[:space:]]*(${SECRET_KINDS})[[:space:]]+(0[sSxX])?)/\\1\\x01/
:m
s/(\\x01[*=]*)[^*=]/\\1*/
tm
s/\\x01//
}'`;

/**
 * Shell printing "path mac" for each secrets file among "$@" that has a PSK line: the MAC is
 * the first 32 hex digits of SHA-256("challenge\nkey"), the key being the value of the file's
 * first PSK line exactly as written. One awk reads every file and one sed tidies the output;
 * each key costs one sha256sum. No key is ever on a command line: it goes from awk through a
 * pipe to the shell's own read and printf, and into sha256sum's stdin.
 */
export function keyMacs(challenge: string): string {
  if (!/^[0-9a-f]{32,64}$/.test(challenge)) throw new Error('the key challenge must be hex');
  const keys = `awk 'FILENAME ~ /[.]secrets$/ && !(FILENAME in seen) && match($0, /:[ \t]*PSK[ \t]+/) { k = substr($0, RSTART + RLENGTH); if (k != "") { seen[FILENAME] = 1; print FILENAME; print k } }' "$@" 2>/dev/null`;
  const macs = `while IFS= read -r f && IFS= read -r k; do printf '%s ' "$f"; printf '%s\\n%s' '${challenge}' "$k" | sha256sum; done`;
  return `{ [ $# -eq 0 ] || ${keys}; } | ${macs} | sed -E 's/^([^ ]+) ([0-9a-f]{32})[0-9a-f]*  -$/\\1 \\2/'`;
}

/** The MAC of each secrets file's key, by path ("path mac" lines). */
export function parseKeys(lines: readonly string[]): Map<string, KeyFact> {
  return new Map(
    lines
      .map((l) => /^(\S+) ([0-9a-f]{32})$/.exec(l))
      .filter((m): m is RegExpExecArray => Boolean(m))
      .map((m) => [m[1]!, { mac: m[2]! }]),
  );
}

/** What MASK_SECRETS does on the host, for content read here. */
export function maskSecrets(text: string): string {
  return text.replace(
    new RegExp(`(:[ \\t\\f\\v\\r]*(?:${SECRET_KINDS})[ \\t\\f\\v\\r]+(?:0[sSxX])?)([^\\n]*)`, 'g'),
    (_, head: string, value: string) => head + value.replace(/[^*=]/g, '*'),
  );
}
