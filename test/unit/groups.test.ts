import { UsageError } from '../../src/cli/flags.js';
import { resolveLimit } from '../../src/cli/scope.js';
import { InventoryError } from '../../src/inventory/errors.js';
import { loadInventory } from '../../src/inventory/load.js';

// Host groups: settings for their members, meshes over them, --limit by group and glob.

const text = `defaults:
  ssh: {user: root}
groups:
  web: {hosts: [web-1, web-2], ssh: {user: deploy, port: 2222}, ipsec: {backend: libreswan}}
  db: {hosts: [db-1], ipsec: {backend: strongswan, guard: off}}
hosts:
  web-1: {address: 192.0.2.1}
  web-2: {address: 192.0.2.2, ssh: {user: root}}
  db-1: {address: 192.0.2.3}
  lb-1: {address: 192.0.2.4}
meshes:
  - {name: app, hosts: [lb-1], groups: [web, db]}
`;

describe('groups', () => {
  const inv = loadInventory(text, 'fleet.yaml');

  test("members take the group settings; the host's own win; defaults come last", () => {
    expect(inv.hosts.get('web-1')!.ssh).toMatchObject({ user: 'deploy', port: 2222 });
    expect(inv.hosts.get('web-2')!.ssh).toMatchObject({ user: 'root', port: 2222 });
    expect(inv.hosts.get('lb-1')!.ssh).toMatchObject({ user: 'root', port: 22 });
    expect(inv.hosts.get('db-1')).toMatchObject({ backend: 'strongswan', guard: false, groups: ['db'] });
  });

  test('a mesh over groups pairs every member with every other, hosts first', () => {
    expect(inv.pairs.map((p) => `${p.initiator}>${p.responder}`)).toEqual(['lb-1>web-1', 'lb-1>web-2', 'lb-1>db-1', 'web-1>web-2', 'web-1>db-1', 'web-2>db-1']);
  });

  test('--limit takes host names, group names and globs; each must match something', () => {
    expect([...resolveLimit(['db,web-1'], inv)!].sort()).toEqual(['db-1', 'web-1']);
    expect([...resolveLimit(['web'], inv)!].sort()).toEqual(['web-1', 'web-2']);
    expect([...resolveLimit(['*-1'], inv)!].sort()).toEqual(['db-1', 'lb-1', 'web-1']);
    expect(() => resolveLimit(['cache-*'], inv)).toThrow(UsageError);
    expect(() => resolveLimit(['wbe'], inv)).toThrow(/wbe \(did you mean web\?\)/);
  });

  test('two groups that set one key differently for a host are a mistake, with its position', () => {
    try {
      loadInventory(text.replace('db: {hosts: [db-1],', 'db: {hosts: [db-1, web-1], ssh: {user: dba},'), 'fleet.yaml');
      throw new Error('expected an InventoryError');
    } catch (err) {
      expect(err).toBeInstanceOf(InventoryError);
      expect((err as InventoryError).problems[0]).toMatchObject({ line: 5, message: 'host web-1 is in groups web and db, which set ssh.user differently' });
    }
  });

  test('an unknown group in a mesh, and a group named like a host, are mistakes', () => {
    expect(() => loadInventory(text.replace('groups: [web, db]', 'groups: [web, dbs]'), 'f.yaml')).toThrow(/unknown group "dbs"[\s\S]*Did you mean db\?/);
    expect(() => loadInventory(text.replace('  db: {hosts', '  lb-1: {hosts'), 'f.yaml')).toThrow(/names both a group and a host/);
  });
});
