import { FlagdCore } from '@openfeature/flagd-core';
import type { FlagValueType, JsonValue } from '@openfeature/server-sdk';
import { z } from 'zod';
import { FlagValidationError } from '../errors.js';
import { flagCatalog } from './catalog.js';
import type { FlagDefinition, FlagdDocument } from './types.js';

/** flagd flag keys: what flagd's schema allows, and safe in a URL path segment. */
export const FLAG_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const jsonObject = z.record(z.string(), z.json());

const flagSchema = z.strictObject(
  {
    state: z.enum(['ENABLED', 'DISABLED'], { error: 'must be "ENABLED" or "DISABLED"' }),
    variants: z
      .record(z.string().min(1, 'variant names must not be empty'), z.json(), {
        error: 'must be an object of variant name to value',
      })
      .refine((variants) => Object.keys(variants).length > 0, 'must name at least one variant'),
    defaultVariant: z.string({ error: 'must be the name of one of the variants' }),
    targeting: jsonObject.optional().or(z.undefined()),
  },
);

function typeOf(value: JsonValue): FlagValueType | 'null' {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number') return 'number';
  return 'object';
}

function valueAt(candidate: unknown, path: readonly PropertyKey[]): unknown {
  let value = candidate;
  for (const step of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[step];
  }
  return value;
}

function firstIssue(error: z.ZodError, candidate: unknown): FlagValidationError {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const [member] = issue.keys;
    return new FlagValidationError(
      String(member),
      'unknown member; a flag has only state, variants, defaultVariant and targeting',
    );
  }
  if (issue.path.length === 0) return new FlagValidationError('', 'a flag definition must be a JSON object');
  const field = issue.path.map(String).join('.');
  if (valueAt(candidate, issue.path) === undefined) return new FlagValidationError(field, 'is required');
  return new FlagValidationError(field, issue.message);
}

/** A scratch engine, used only to ask flagd-core whether a targeting rule compiles. */
let probeEngine: FlagdCore | undefined;

function checkTargetingCompiles(key: string, definition: FlagDefinition): void {
  if (!definition.targeting || Object.keys(definition.targeting).length === 0) return;
  probeEngine ??= new FlagdCore(undefined, { error() {}, warn() {}, info() {}, debug() {} });
  try {
    probeEngine.setConfigurations(JSON.stringify({ flags: { [key]: definition } }));
  } catch {
    throw new FlagValidationError('targeting', 'is not a valid flagd targeting rule');
  }
  const probe = probeEngine.resolve('object', key, null as unknown as JsonValue, { targetingKey: 'validation-probe' });
  if (probe.errorCode === 'PARSE_ERROR') {
    throw new FlagValidationError('targeting', 'is not valid JsonLogic (an unknown operator or a malformed rule)');
  }
}

/**
 * Checks one flag definition strictly and returns it typed. `expectedType` is the type the
 * flag must keep (from its previous definition or the app's catalog); without one, the
 * variants must simply agree with each other.
 */
export function validateFlagDefinition(key: string, candidate: unknown, expectedType?: FlagValueType): FlagDefinition {
  const parsed = flagSchema.safeParse(candidate);
  if (!parsed.success) throw firstIssue(parsed.error, candidate);
  const definition = parsed.data as FlagDefinition;
  if (definition.targeting === undefined) delete definition.targeting;

  const entries = Object.entries(definition.variants);
  const type = expectedType ?? typeOf(entries[0]![1]);
  for (const [name, value] of entries) {
    const actual = typeOf(value);
    if (actual !== type) {
      throw new FlagValidationError(
        `variants.${name}`,
        `must be a ${type} like the flag's other variants (got ${actual === 'object' && Array.isArray(value) ? 'array' : actual})`,
      );
    }
  }
  if (!Object.hasOwn(definition.variants, definition.defaultVariant)) {
    throw new FlagValidationError(
      'defaultVariant',
      `"${definition.defaultVariant}" is not one of the variants (${entries.map(([name]) => name).join(', ')})`,
    );
  }
  checkTargetingCompiles(key, definition);
  return definition;
}

/** The type a flag's values have, judged by its first variant. */
export function flagType(definition: FlagDefinition): FlagValueType {
  const first = Object.values(definition.variants)[0];
  const type = first === undefined ? 'null' : typeOf(first);
  return type === 'null' ? 'object' : type;
}

const documentSchema = z.looseObject({
  $schema: z.string().optional(),
  flags: z.record(z.string(), z.unknown(), { error: 'the document must have a "flags" object' }),
});

/**
 * Checks a whole flagd document (a hand-edited FLAGS_FILE, a Redis value). Flags the app knows
 * must keep the type its code expects; others need only be valid.
 */
export function validateFlagDocument(candidate: unknown): FlagdDocument {
  const parsed = documentSchema.safeParse(candidate);
  if (!parsed.success) {
    throw new FlagValidationError('flags', parsed.error.issues[0]!.message);
  }
  const flags: Record<string, FlagDefinition> = {};
  for (const [key, raw] of Object.entries(parsed.data.flags)) {
    if (!FLAG_KEY_PATTERN.test(key)) {
      throw new FlagValidationError(`flags.${key}`, 'is not a valid flag key (letters, digits, "_", "." and "-")');
    }
    try {
      flags[key] = validateFlagDefinition(key, raw, flagCatalog[key]?.type);
    } catch (error) {
      if (error instanceof FlagValidationError) {
        throw new FlagValidationError(`flags.${key}${error.field ? `.${error.field}` : ''}`, error.reason);
      }
      throw error;
    }
  }
  const document: FlagdDocument = { flags };
  if (parsed.data.$schema) document.$schema = parsed.data.$schema;
  return document;
}
