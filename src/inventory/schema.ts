import { z } from 'zod';
import { BACKEND_CHOICES } from './types.js';

// The shape of an inventory. Types and unknown keys are checked here; meaning (addresses,
// names, references between hosts) is checked in load.ts, where positions are at hand.

export const sshSchema = z.strictObject({
  host: z.string().min(1).optional(),
  port: z.number().int().optional(),
  user: z.string().min(1).optional(),
  identityFile: z.string().min(1).optional(),
  knownHostsFile: z.string().min(1).optional(),
  jump: z.string().min(1).optional(),
});

const responderSchema = z.enum(['route', 'add']);

export const ipsecSchema = z.strictObject({
  backend: z.enum(BACKEND_CHOICES).optional(),
  responder: responderSchema.optional(),
});

export const hostSchema = z.strictObject({
  address: z.string(),
  ssh: sshSchema.optional(),
  ipsec: z.strictObject({ backend: z.enum(BACKEND_CHOICES).optional() }).optional(),
});

export const pairListSchema = z.tuple([z.string(), z.string()]);

export const pairObjectSchema = z.strictObject({
  hosts: pairListSchema,
  name: z.string().optional(),
  initiator: z.string().optional(),
  responder: responderSchema.optional(),
});

export const meshSchema = z.strictObject({
  name: z.string(),
  hosts: z.array(z.string()).min(2),
  responder: responderSchema.optional(),
});

export const inventorySchema = z.strictObject({
  defaults: z
    .strictObject({
      ssh: sshSchema.optional(),
      ipsec: ipsecSchema.optional(),
    })
    .optional(),
  hosts: z.record(z.string(), hostSchema),
  // Each item is checked against the list or the object form in load.ts, so that the
  // message speaks of the form the operator chose rather than of a union.
  pairs: z.array(z.unknown()).optional(),
  meshes: z.array(meshSchema).optional(),
});

export type RawInventory = z.infer<typeof inventorySchema>;
export type RawSsh = z.infer<typeof sshSchema>;
export type RawPairObject = z.infer<typeof pairObjectSchema>;

/** The keys a mapping may hold, by schema, for "did you mean" hints. */
export function keysOf(schema: z.ZodType): string[] {
  const shape = (schema as unknown as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}
