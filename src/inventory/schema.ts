import { z } from 'zod';
import { BACKEND_CHOICES } from './types.js';

// The shape of an inventory. Types and unknown keys are checked here; meaning (addresses,
// names, references between hosts) is checked in load.ts, where positions are at hand.
// Each section is checked on its own, so that one wrong type does not hide the rest.

export const sshSchema = z.strictObject({
  host: z.string().min(1).optional(),
  port: z.number().int().optional(),
  user: z.string().min(1).optional(),
  identityFile: z.string().min(1).optional(),
  knownHostsFile: z.string().min(1).optional(),
  jump: z.string().min(1).optional(),
  /** An OpenSSH client config to read (defaults.ssh only). */
  config: z.string().min(1).optional(),
});

const responderSchema = z.enum(['route', 'add']);
/** The fail-closed guard (nftables): on by default; `off` (or false) removes it. */
const guardSchema = z.union([z.enum(['on', 'off']), z.boolean()]).transform((v) => v === true || v === 'on');

export const ipsecSchema = z.strictObject({
  backend: z.enum(BACKEND_CHOICES).optional(),
  responder: responderSchema.optional(),
  guard: guardSchema.optional(),
});

const hostIpsecSchema = z.strictObject({ backend: z.enum(BACKEND_CHOICES).optional(), guard: guardSchema.optional() });

export const hostSchema = z.strictObject({
  address: z.string(),
  ssh: sshSchema.optional(),
  ipsec: hostIpsecSchema.optional(),
});

export const groupSchema = z.strictObject({
  hosts: z.array(z.string()).min(1),
  ssh: sshSchema.omit({ host: true, config: true }).optional(),
  ipsec: hostIpsecSchema.optional(),
});

export const pairListSchema = z.tuple([z.string(), z.string()]);

export const pairObjectSchema = z.strictObject({
  hosts: pairListSchema,
  name: z.string().optional(),
  initiator: z.string().optional(),
  responder: responderSchema.optional(),
  guard: guardSchema.optional(),
});

export const meshSchema = z.strictObject({
  name: z.string(),
  hosts: z.array(z.string()).optional(),
  groups: z.array(z.string()).optional(),
  responder: responderSchema.optional(),
  guard: guardSchema.optional(),
});

export const defaultsSchema = z.strictObject({
  ssh: sshSchema.optional(),
  ipsec: ipsecSchema.optional(),
});

/** How old a pair's key may grow before a plain run rotates it: hours, days or weeks. */
export const rotationSchema = z.strictObject({
  maxAge: z.string().regex(/^[1-9][0-9]{0,4}[hdw]$/, 'a duration such as 90d, 12w or 36h'),
});

/** The top level only: each section below is checked by its own schema. */
export const inventorySchema = z.strictObject({
  fleet: z.string().optional(),
  defaults: z.unknown().optional(),
  groups: z.unknown().optional(),
  hosts: z.unknown(),
  pairs: z.unknown().optional(),
  meshes: z.unknown().optional(),
  rotation: z.unknown().optional(),
});

export type RawSsh = z.infer<typeof sshSchema>;
export type RawHost = z.infer<typeof hostSchema>;
export type RawGroup = z.infer<typeof groupSchema>;
export type RawDefaults = z.infer<typeof defaultsSchema>;

/** The keys a mapping may hold, by schema, for "did you mean" hints. */
export function keysOf(schema: z.ZodType): string[] {
  const shape = (schema as unknown as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}
