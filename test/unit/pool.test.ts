import type { HostSpec } from '../../src/inventory/types.js';
import { SessionPool } from '../../src/remote/pool.js';
import type { Session } from '../../src/remote/session.js';

const host = (name: string): HostSpec => ({
  name,
  address: '192.0.2.1',
  family: 4,
  backend: 'auto',
  guard: true,
  groups: [],
  sshSet: {},
  at: { line: 1, column: 1 },
  ssh: { host: name, port: 22, user: 'root', knownHostsFile: '/dev/null' },
});

function fakeConnect() {
  let open = 0;
  let peak = 0;
  let opened = 0;
  const connect = async (h: HostSpec): Promise<Session> => {
    await new Promise((r) => setTimeout(r, Math.random() * 5));
    open++;
    opened++;
    peak = Math.max(peak, open);
    let commands = 0;
    let alive = true;
    return {
      host: h.name,
      get commands() {
        return commands;
      },
      get connected() {
        return alive;
      },
      async run() {
        commands++;
        await new Promise((r) => setTimeout(r, Math.random() * 5));
        return { code: 0, stdout: h.name, stderr: '', timedOut: false };
      },
      async close() {
        if (alive) open--;
        alive = false;
      },
    };
  };
  return { connect, stats: () => ({ open, peak, opened }) };
}

describe('the session pool: --concurrency bounds open SSH connections', () => {
  test('30 hosts, 3 phases, at most 4 connections open at any time; every step ran on its own host', async () => {
    const fake = fakeConnect();
    const pool = new SessionPool(fake.connect, 4);
    const hosts = Array.from({ length: 30 }, (_, i) => host(`h${i}`));
    for (let phase = 0; phase < 3; phase++) {
      const out = await Promise.all(hosts.map((h) => pool.use(h, async (s) => (await s.run('x')).stdout)));
      expect(out).toEqual(hosts.map((h) => h.name));
    }
    expect(fake.stats().peak).toBeLessThanOrEqual(4);
    expect(pool.peak).toBeLessThanOrEqual(4);
    expect(pool.commands).toBe(90);
    await pool.closeAll();
    expect(fake.stats().open).toBe(0);
  });

  test('with room for every host, each connects once for the whole run', async () => {
    const fake = fakeConnect();
    const pool = new SessionPool(fake.connect, 16);
    const hosts = Array.from({ length: 8 }, (_, i) => host(`h${i}`));
    for (let phase = 0; phase < 3; phase++) await Promise.all(hosts.map((h) => pool.use(h, (s) => s.run('x'))));
    expect(fake.stats().opened).toBe(8);
    await pool.closeAll();
  });

  test('a session that dropped while idle is replaced by a new one at the next step', async () => {
    const fake = fakeConnect();
    const pool = new SessionPool(fake.connect, 2);
    const h = host('a');
    await pool.use(h, async (s) => {
      await s.run('x');
      await s.close();
    });
    expect(await pool.use(h, async (s) => (await s.run('x')).stdout)).toBe('a');
    expect(fake.stats().opened).toBe(2);
    await pool.closeAll();
  });
});
