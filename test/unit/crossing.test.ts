import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strayDecision } from '../../src/apply/steps/crossing.js';
import { libreswanDropStates, libreswanReauth, libreswanStates } from '../../src/backends/pluto.js';
import { negotiating, parseStates, strayStates } from '../../src/backends/pluto-states.js';

const conn = 'server-01--server-02';

// Recorded on the lab (2026-11-28) a second after a rotation's re-authentication of a
// libreswan 4.3 (server-01, 10.77.0.11) / 5.2 (server-02, 10.77.0.12) pair under 20 pings/s
// each way: both ends started an IKE SA at once; server-02 gave up its own (#4, "dropping
// negotiation as superseeded by established IKE SA #6") after server-01 had answered it, so
// server-01 holds a second IKE SA (#5) and Child SA (#7) that server-02 never had, and sends
// into #7. The SPIs are the ones the daemons logged.
const server01 = `000 #3: "${conn}":500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); EVENT_SA_REKEY in 28169s; idle;
000 #6: "${conn}":500 STATE_V2_ESTABLISHED_CHILD_SA (IPsec SA established); EVENT_SA_REKEY in 28046s; isakmp#3; idle;
000 #6: "${conn}" esp.45037d21@10.77.0.12 esp.cce75ebe@10.77.0.11 Traffic: ESPin=52KB ESPout=2KB! ESPmax=0B
000 #5: "${conn}":500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); EVENT_SA_REKEY in 28170s; newest ISAKMP; idle;
000 #7: "${conn}":500 STATE_V2_ESTABLISHED_CHILD_SA (IPsec SA established); EVENT_SA_REKEY in 28047s; newest IPSEC; eroute owner; isakmp#5; idle;
000 #7: "${conn}" esp.54d9cabe@10.77.0.12 esp.79a2f6e1@10.77.0.11 Traffic: ESPin=0B ESPout=101KB! ESPmax=0B
000 #9: "other": 500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); idle;
`;
const server02 = `#6: "${conn}":500 ESTABLISHED_IKE_SA (established IKE SA); REKEY in 28445s; REPLACE in 28715s; newest; idle;
#7: "${conn}":500 ESTABLISHED_CHILD_SA (established Child SA); REKEY in 28445s; REPLACE in 28715s; newest; eroute owner; IKE SA #6; idle;
#7: "${conn}" esp.cce75ebe@10.77.0.11 esp.45037d21@10.77.0.12 Traffic: ESPin=2KiB ESPout=54KiB ESPmax=2^63B
`;

describe('crossed negotiations of a libreswan pair', () => {
  test('the states of one conn, from 4.x and 5.x listings', () => {
    expect(parseStates(server01, conn)).toEqual([
      { serial: 3, kind: 'ike', established: true, spis: [] },
      { serial: 6, kind: 'child', established: true, parent: 3, spis: ['esp.45037d21@10.77.0.12', 'esp.cce75ebe@10.77.0.11'] },
      { serial: 5, kind: 'ike', established: true, spis: [] },
      { serial: 7, kind: 'child', established: true, parent: 5, spis: ['esp.54d9cabe@10.77.0.12', 'esp.79a2f6e1@10.77.0.11'] },
    ]);
    expect(parseStates(server02, conn)).toEqual([
      { serial: 6, kind: 'ike', established: true, spis: [] },
      { serial: 7, kind: 'child', established: true, parent: 6, spis: ['esp.cce75ebe@10.77.0.11', 'esp.45037d21@10.77.0.12'] },
    ]);
  });

  test('the end holding an IKE SA and Child SA its peer lacks deletes that IKE SA (its Child SA goes with it); the peer deletes nothing', () => {
    const [a, b] = [parseStates(server01, conn), parseStates(server02, conn)];
    expect(strayStates(a, b)).toEqual({ serials: [5], sas: ['esp.54d9cabe@10.77.0.12', 'esp.79a2f6e1@10.77.0.11'] });
    expect(strayStates(b, a)).toEqual({ serials: [], sas: [] });
  });

  test('a stray Child SA of an IKE SA that also has a good one is deleted alone; a childless IKE SA is left', () => {
    const a = parseStates(
      `#1: "c":500 ESTABLISHED_IKE_SA (established IKE SA);
#2: "c":500 ESTABLISHED_CHILD_SA (established Child SA); IKE SA #1;
#2: "c" esp.0a@10.0.0.2 esp.0b@10.0.0.1 Traffic:
#3: "c":500 ESTABLISHED_CHILD_SA (established Child SA); IKE SA #1;
#3: "c" esp.0c@10.0.0.2 esp.0d@10.0.0.1 Traffic:
#4: "c":500 ESTABLISHED_IKE_SA (established IKE SA);
`,
      'c',
    );
    const b = parseStates(
      `#8: "c":500 ESTABLISHED_IKE_SA (established IKE SA);
#9: "c":500 ESTABLISHED_CHILD_SA (established Child SA); IKE SA #8;
#9: "c" esp.0b@10.0.0.1 esp.0a@10.0.0.2 Traffic:
`,
      'c',
    );
    expect(strayStates(a, b)).toEqual({ serials: [3], sas: ['esp.0c@10.0.0.2', 'esp.0d@10.0.0.1'] });
  });

  test('negotiations under way on either end (4.x and 5.x state names) are seen', () => {
    expect(negotiating(parseStates(`000 #5: "c":500 STATE_PARENT_R1 (received IKE_SA_INIT);`, 'c'))).toBe(true);
    expect(negotiating(parseStates(`#4: "c":500 IKE_AUTH_I (sent IKE_AUTH request);`, 'c'))).toBe(true);
    expect(negotiating(parseStates(`000 #36: "c":500 STATE_V2_NEW_CHILD_I1 (sent CREATE_CHILD_SA request); isakmp#33;`, 'c'))).toBe(true);
    expect(negotiating(parseStates(server01, conn))).toBe(false);
  });

  test('deleting strays: their kernel SAs at once, then the states without waiting for the peer; nothing else reaches the shell', () => {
    expect(libreswanDropStates({ serials: [5], sas: ['esp.54d9cabe@10.77.0.12', 'esp.79a2f6e1@fd77::11', 'esp.1@10.0.0.1;reboot'] }).split('\n')).toEqual([
      'ip xfrm state delete dst 10.77.0.12 proto esp spi 0x54d9cabe 2>/dev/null || true',
      'ip xfrm state delete dst fd77::11 proto esp spi 0x79a2f6e1 2>/dev/null || true',
      'ipsec whack --asynchronous --deletestate 5 >/dev/null 2>&1 || true',
    ]);
    // An address pluto never prints is not taken for an SA.
    expect(parseStates(`#7: "c":500 ESTABLISHED_CHILD_SA (x); IKE SA #6;\n#7: "c" esp.0a@10.0.0.2;reboot esp.0b@10.0.0.1\n`, 'c')[0]!.spis).toEqual([]);
  });
});

describe('libreswan re-authentication script (run by sh against a fake ipsec)', () => {
  const run = (version: string, states: string[], journal: string, clock = false): { code: number | null; stderr: string; calls: string[] } => {
    const bin = mkdtempSync(join(tmpdir(), 'reauth-bin-'));
    const fake = (name: string, body: string): void => {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    try {
      // Each `--showstates` prints the next listing (the last one repeats).
      for (const [i, s] of states.entries()) writeFileSync(join(bin, `states.${i}`), s);
      fake(
        'ipsec',
        `echo "$*" >> ${bin}/calls
case "$*" in *--showstates*)
  n=$(cat ${bin}/n 2>/dev/null || echo 0); f=${bin}/states.$n; [ -f "$f" ] || f=${bin}/states.${states.length - 1}
  cat "$f"; echo $((n + 1)) > ${bin}/n;;
esac`,
      );
      writeFileSync(join(bin, 'journal'), journal);
      fake('journalctl', `cat ${bin}/journal`);
      fake('sleep', 'exit 0');
      // A clock 20 s further on at each reading, for the 40 s bound.
      if (clock) fake('date', `n=$(cat ${bin}/clock 2>/dev/null || echo 0); echo $((1000 + n * 20)); echo $((n + 1)) > ${bin}/clock`);
      const r = spawnSync('sh', ['-c', libreswanReauth({ version }, conn)], {
        encoding: 'utf8',
        env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` },
        timeout: 20_000,
      });
      return { code: r.status, stderr: r.stderr, calls: readFileSync(join(bin, 'calls'), 'utf8').trim().split('\n') };
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  };

  test('an idle pair: down, then up (nothing else started one), done once a Child SA is established', () => {
    const r = run('4.3', ['', '', `000 #9: "${conn}":500 STATE_V2_ESTABLISHED_CHILD_SA (IPsec SA established); isakmp#8;\n`], '');
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([`auto --down ${conn}`, 'whack --showstates', `auto --asynchronous --up ${conn}`, 'whack --showstates', 'whack --showstates']);
  });

  test('under traffic: a negotiation already started after the down, so no --up (libreswan 5.x verbs)', () => {
    const r = run(
      '5.2',
      [`#4: "${conn}":500 IKE_SA_INIT_I (sent IKE_SA_INIT request);\n`, `#7: "${conn}":500 ESTABLISHED_CHILD_SA (established Child SA); IKE SA #6;\n`],
      '',
    );
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([`down ${conn}`, 'whack --showstates', 'whack --showstates']);
  });

  test("the peer refuses the key: exit 1 with the daemon's AUTHENTICATION_FAILED line, without waiting out the 40 s", () => {
    const r = run('4.10', [''], `"${conn}" #3: IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED\n"other" #1: AUTHENTICATION_FAILED\n`);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`"${conn}" #3: IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED`);
  });

  test('nothing comes up and no journal says why: exit 1 after 40 s, naming the pair', () => {
    const r = run('5.2', [''], '', true);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`no Child SA of ${conn} came up within 40 s`);
  });
});

describe('dropping stray SAs deletes only on evidence', () => {
  const [a, b] = [parseStates(server01, conn), parseStates(server02, conn)];
  test("both listings read, nobody negotiating, both ends holding the pair: each end's strays", () => {
    expect(strayDecision([a, b], false)).toEqual({
      drop: [
        { serials: [5], sas: ['esp.54d9cabe@10.77.0.12', 'esp.79a2f6e1@10.77.0.11'] },
        { serials: [], sas: [] },
      ],
    });
  });
  test('an unread listing, an empty one, or a negotiation still under way: nothing is deleted, and the reason is given', () => {
    expect(strayDecision([a, undefined], false)).toEqual({ leave: 'the states of one end could not be read' });
    expect(strayDecision([a, []], false)).toEqual({ leave: 'one end holds no Child SA of the pair' });
    expect(strayDecision([a, b], true)).toEqual({ leave: 'a negotiation was still under way after 10 s' });
  });
  test('a listing whack cannot give fails (exit 1), rather than reading as an end without states', () => {
    const bin = mkdtempSync(join(tmpdir(), 'states-bin-'));
    try {
      writeFileSync(join(bin, 'ipsec'), '#!/bin/sh\necho "whack: Pluto is not running (no \\"/run/pluto/pluto.ctl\\")"\nexit 1\n');
      chmodSync(join(bin, 'ipsec'), 0o755);
      const down = spawnSync('sh', ['-c', libreswanStates(conn)], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` } });
      expect({ code: down.status, stdout: down.stdout }).toEqual({ code: 1, stdout: '' });
      expect(down.stderr).toMatch(/ipsec whack --showstates failed: whack: Pluto is not running/);
      writeFileSync(join(bin, 'ipsec'), `#!/bin/sh\ncat <<'EOF'\n${server02}EOF\n`);
      const up = spawnSync('sh', ['-c', libreswanStates(conn)], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` } });
      expect({ code: up.status, states: parseStates(up.stdout, conn).length }).toEqual({ code: 0, states: 2 });
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
