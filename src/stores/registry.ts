/**
 * The store kinds mail2fa knows: kind → its module's StoreDefinition, loaded only when a configuration uses it
 * (start-up time). Adding a store = one module in src/stores/, its tests, and ONE line here.
 */
import type { StoreDefinition, StoreKind } from './types.js';

type Loader = () => Promise<StoreDefinition<unknown>>;

const REGISTRY: Partial<Record<StoreKind, Loader>> = {
  postfixadmin: async () => (await import('./postfixadmin.js')).postfixadminStore as StoreDefinition<unknown>,
  mailcow: async () => (await import('./mailcow.js')).mailcowStore as StoreDefinition<unknown>,
  sogo: async () => (await import('./sogo.js')).sogoStore as StoreDefinition<unknown>,
  roundcube: async () => (await import('./roundcube.js')).roundcubeStore as StoreDefinition<unknown>,
};

/** The foreign store kinds that can be configured (mail2fa's own store is always on and is not listed). */
export function knownStoreKinds(): StoreKind[] {
  return Object.keys(REGISTRY) as StoreKind[];
}

/** The definition of `kind`, or undefined when mail2fa has no such store module. */
export async function storeDefinition(kind: string): Promise<StoreDefinition<unknown> | undefined> {
  const load = (REGISTRY as Record<string, Loader | undefined>)[kind];
  return load ? load() : undefined;
}
