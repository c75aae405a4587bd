import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { run } from '../../src/apply/run.js';
import { loadInventory } from '../../src/inventory/load.js';
import { toJson } from '../../src/report/json.js';
import { fakeFleet } from '../helpers/fake-session.js';
import { planInventory } from '../helpers/plan.js';

// Every --json output matches the one documented shape: docs/provision.schema.json.

const ajv = new Ajv2020({ allErrors: true, strict: false });
const validate = ajv.compile(JSON.parse(readFileSync('docs/provision.schema.json', 'utf8')));
const inv = loadInventory(
  'hosts:\n  a: {address: 10.0.0.1}\n  b: {address: 10.0.0.2, ipsec: {backend: strongswan}}\n  c: {address: 10.0.0.3}\npairs: [[a, b]]\nmeshes: [{name: m, hosts: [a, c], guard: off}]\n',
  'inv.yaml',
);

function valid(value: unknown): void {
  const ok = validate(JSON.parse(JSON.stringify(value)));
  expect({ ok, errors: validate.errors?.slice(0, 3) ?? null }).toEqual({ ok: true, errors: null });
}

test('the offline plan, a live dry run and a result all match the schema', async () => {
  valid(toJson(planInventory(inv)));
  const fake = fakeFleet(inv);
  const dry = await run(inv, { dryRun: true, verify: true, concurrency: 4, random: () => new Uint8Array(32), connect: fake.connect });
  valid(toJson(dry.changeset!, dry));
  const applied = await run(inv, { dryRun: false, verify: true, concurrency: 4, random: () => new Uint8Array(32), connect: fakeFleet(inv).connect });
  valid(toJson(applied.changeset!, applied));
});

test('the schema rejects what it should (the check can fail)', () => {
  const j = toJson(planInventory(inv)) as { hosts: { status: string }[] };
  j.hosts[0]!.status = 'exploded';
  expect(validate(j)).toBe(false);
});

test('each guarded host carries its guard (table, members, joins, ssh exemptions) in the JSON', () => {
  const j = toJson(planInventory(inv)) as { hosts: { name: string; guard?: { table: string; joins: { address: string }[] } }[] };
  const a = j.hosts.find((h) => h.name === 'a')!;
  expect(a.guard).toMatchObject({ table: 'provision_inv', joins: [{ address: '10.0.0.2' }] });
  valid(j);
});
