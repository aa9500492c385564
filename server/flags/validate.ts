import { MemoryStorage } from '@openfeature/flagd-core';
import type { FlagValueType, JsonValue } from '@openfeature/server-sdk';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { FlagValidationError } from '../errors.js';
import { compileFlag, expandRefs, FLAG_KEY_PATTERN, ruleProblem, targetingUnparsable } from './engine.js';
import { MAX_FLAG_DEPTH, nestsDeeperThan } from './json-depth.js';
import type { FlagDefinition, FlagdDocument } from './types.js';

export { FLAG_KEY_PATTERN };

const jsonObject = z.record(z.string(), z.json());

// A flag's members, as flagd defines them. Anything else is refused: a misspelt "targetting"
// would otherwise be kept and silently do nothing.
const flagSchema = z.strictObject({
  state: z.enum(['ENABLED', 'DISABLED'], { error: 'must be "ENABLED" or "DISABLED"' }),
  variants: z
    .record(z.string(), z.json(), { error: 'must be an object of variant name to value' })
    .refine((variants) => Object.keys(variants).length > 0, 'must name at least one variant')
    .refine((variants) => !Object.hasOwn(variants, ''), 'variant names must not be empty'),
  // Absent or null: the code's default value (flagd's own meaning).
  defaultVariant: z.string({ error: 'must be the name of one of the variants, or null' }).nullable().optional(),
  targeting: jsonObject.optional().or(z.undefined()),
  metadata: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean()]), {
      error: 'must be an object of strings, numbers and booleans',
    })
    .optional(),
});

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
      'unknown member; a flag has only state, variants, defaultVariant, targeting and metadata',
    );
  }
  if (issue.path.length === 0) return new FlagValidationError('', 'a flag definition must be a JSON object');
  const field = issue.path.map(String).join('.');
  if (valueAt(candidate, issue.path) === undefined) return new FlagValidationError(field, 'is required');
  return new FlagValidationError(field, issue.message);
}

const silent = { error() {}, warn() {}, info() {}, debug() {} };

/**
 * flagd's own JSON schema (the one flagd-core ships, checked by its strict parse): a document this
 * passes reads the same in flagd. The deepest error is the one that names the field.
 */
function checkFlagdSchema(document: unknown, prefix: string): void {
  try {
    new MemoryStorage(silent).setConfigurations(JSON.stringify(document), true);
  } catch (error) {
    const text = (error as Error).message;
    const issues = schemaIssues(text);
    // Not a schema error (a value JSON cannot hold): the candidate as a whole is at fault.
    if (issues.length === 0) throw new FlagValidationError('', `is not valid flagd (${text})`);
    const deepest = issues.reduce((a, b) => (b.instancePath.length > a.instancePath.length ? b : a));
    const field = deepest.instancePath
      .split('/')
      .slice(1)
      .map((step) => step.replace(/~1/g, '/').replace(/~0/g, '~'))
      .join('.');
    throw new FlagValidationError(
      field.startsWith(prefix) ? field.slice(prefix.length) : field,
      `does not follow flagd's schema: ${deepest.message}`,
    );
  }
}

/** The issues flagd-core's schema error lists (a JSON array after its text); none for any other error. */
function schemaIssues(text: string): { instancePath: string; message: string }[] {
  try {
    return JSON.parse(text.slice(text.indexOf('['))) as { instancePath: string; message: string }[];
  } catch {
    return [];
  }
}

/**
 * What flagd's schema cannot say: every variant a rule can return by name exists (otherwise the
 * viewers it picks get an ERROR, not a value), and a rollout's literal weights are whole,
 * non-negative numbers. A variant or weight may also be a rule of its own (flagd's nested
 * `fractional`): it is walked like the rest.
 */
function checkTargetingVariants(definition: FlagDefinition): void {
  const variants = new Set(Object.keys(definition.variants));
  const named = (value: unknown, field: string) => {
    if (typeof value === 'string' && !variants.has(value)) {
      throw new FlagValidationError(
        field,
        `names the variant "${value}", which the flag does not have (${[...variants].join(', ')})`,
      );
    }
  };
  // A list is walked as an object of its indexes: its items' fields are `rule.0`, `rule.1`, ...
  const walk = (node: unknown, field: string): void => {
    if (node === null || typeof node !== 'object') return;
    for (const [operator, args] of Object.entries(node)) {
      const at = `${field}.${operator}`;
      if (operator === 'fractional' && Array.isArray(args)) {
        args.forEach((bucket, index) => {
          // A bucket is [variant, weight]; the first argument may instead be the bucketing expression.
          if (!Array.isArray(bucket)) return walk(bucket, `${at}.${index}`);
          named(bucket[0], `${at}.${index}.0`);
          walk(bucket[0], `${at}.${index}.0`);
          const weight: unknown = bucket[1];
          if (weight !== null && typeof weight === 'object') return walk(weight, `${at}.${index}.1`);
          if (bucket.length > 1 && !(Number.isInteger(weight) && (weight as number) >= 0)) {
            throw new FlagValidationError(
              `${at}.${index}.1`,
              `must be a whole number of 0 or more (a rollout's weights are relative shares), not ${JSON.stringify(weight)}`,
            );
          }
        });
      } else if (operator === 'if' && Array.isArray(args)) {
        // [condition, then, condition, then, ..., else]: the results are at the odd places and the last.
        args.forEach((arg, index) => {
          const result = index % 2 === 1 || index === args.length - 1;
          if (result && index > 0) named(arg, `${at}.${index}`);
          walk(arg, `${at}.${index}`);
        });
      } else {
        walk(args, at);
      }
    }
  };
  walk(definition.targeting, 'targeting');
}

/** The shared rules (`$evaluators`) a rule names with `$ref`, directly or through another one. */
function usedEvaluators(rule: unknown, evaluators: unknown): Record<string, unknown> | undefined {
  if (rule === undefined || !evaluators || typeof evaluators !== 'object') return undefined;
  const shared = evaluators as Record<string, unknown>;
  const used: Record<string, unknown> = {};
  let texts = [JSON.stringify(rule)];
  while (texts.length > 0) {
    const found = Object.keys(shared).filter(
      (name) => !Object.hasOwn(used, name) && texts.some((text) => text.includes(`{"$ref":${JSON.stringify(name)}}`)),
    );
    for (const name of found) used[name] = shared[name];
    texts = found.map((name) => JSON.stringify(shared[name]));
  }
  return Object.keys(used).length > 0 ? used : undefined;
}

/**
 * Whether flagd's evaluator may compile the rule and does: only its own operators (checked before
 * anything compiles), every `$ref` defined, and a rule flagd-core can build. Compiled on its own:
 * no engine serves it.
 */
function checkTargetingCompiles(key: string, definition: FlagDefinition, evaluators: unknown): void {
  if (!definition.targeting || Object.keys(definition.targeting).length === 0) return;
  const problem = ruleProblem(expandRefs(definition.targeting, evaluators));
  if (problem) throw new FlagValidationError('targeting', problem);
  if (targetingUnparsable(compileFlag(key, definition, evaluators))) {
    throw new FlagValidationError('targeting', 'is not valid JsonLogic (a malformed rule)');
  }
}

/**
 * Checks one flag definition strictly and returns it typed. `expectedType` is the type the
 * flag must keep (from its previous definition or the app's catalog); without one, the
 * variants must simply agree with each other.
 */
export function validateFlagDefinition(
  key: string,
  candidate: unknown,
  expectedType?: FlagValueType,
  evaluators?: unknown,
): FlagDefinition {
  // A definition validated before (a kill and a restore go back and forth between two) is valid
  // again: validation reads nothing but these inputs. Only successes are kept, and a copy is given.
  // Depth first: nothing deeper than the limit is ever turned into a key.
  if (nestsDeeperThan(candidate, MAX_FLAG_DEPTH))
    throw new FlagValidationError('', `nests deeper than ${MAX_FLAG_DEPTH} levels`);
  const memo = `${key}\u0000${expectedType ?? ''}\u0000${JSON.stringify(candidate)}\u0000${JSON.stringify(evaluators ?? null)}`;
  const known = validated.get(memo);
  if (known) return structuredClone(known);
  const definition = validateAfresh(key, candidate, expectedType, evaluators);
  validated.set(memo, structuredClone(definition));
  return definition;
}

/** The definitions validated lately, by everything their validation read. */
const validated = new LRUCache<string, FlagDefinition>({ max: 256 });

function validateAfresh(
  key: string,
  candidate: unknown,
  expectedType?: FlagValueType,
  /** The document's shared rules (`$evaluators`), which a targeting rule may name with `$ref`. */
  evaluators?: unknown,
): FlagDefinition {
  if (nestsDeeperThan(candidate, MAX_FLAG_DEPTH))
    throw new FlagValidationError('', `nests deeper than ${MAX_FLAG_DEPTH} levels`);
  const parsed = flagSchema.safeParse(candidate);
  if (!parsed.success) throw firstIssue(parsed.error, candidate);
  const definition = parsed.data;
  if (definition.targeting === undefined) delete definition.targeting;
  if (definition.metadata === undefined) delete definition.metadata;
  if (definition.defaultVariant === undefined) delete definition.defaultVariant;

  const entries = Object.entries(definition.variants);
  const type = expectedType ?? typeOf(entries[0]![1]);
  for (const [name, value] of entries) {
    const actual = typeOf(value);
    if (actual !== type) {
      throw new FlagValidationError(
        `variants.${name}`,
        `must be a ${type} like the flag's other variants (got ${Array.isArray(value) ? 'array' : actual})`,
      );
    }
  }
  if (typeof definition.defaultVariant === 'string' && !Object.hasOwn(definition.variants, definition.defaultVariant)) {
    throw new FlagValidationError(
      'defaultVariant',
      `"${definition.defaultVariant}" is not one of the variants (${entries.map(([name]) => name).join(', ')})`,
    );
  }
  checkTargetingVariants(definition);
  // flagd's own schema before anything compiles: what passes it, flagd reads the same way.
  // With the shared rules it uses, and only those: one adopted from a hand-edited file that no
  // flag uses does not block a write.
  const used = usedEvaluators(definition.targeting, evaluators);
  checkFlagdSchema({ ...(used ? { $evaluators: used } : {}), flags: { [key]: definition } }, `flags.${key}.`);
  checkTargetingCompiles(key, definition, evaluators);
  return definition;
}

/** The type a flag's values have, judged by its first variant; undefined for a flag with no variants to judge by. */
export function flagType(definition: FlagDefinition): FlagValueType | undefined {
  const { variants } = definition as { variants?: unknown };
  if (variants === null || typeof variants !== 'object' || Array.isArray(variants)) return undefined;
  const first = Object.values(variants)[0] as JsonValue | undefined;
  if (first === undefined) return undefined;
  const type = typeOf(first);
  return type === 'null' ? 'object' : type;
}

const documentSchema = z.looseObject({
  $schema: z.string().optional(),
  flags: z.record(z.string(), z.unknown(), { error: 'the document must have a "flags" object' }),
  $evaluators: z.record(z.string(), z.unknown(), { error: 'must be an object of rule name to JsonLogic' }).optional(),
  metadata: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean()]), {
      error: 'must be an object of strings, numbers and booleans',
    })
    .optional(),
});

/**
 * Reads a whole flagd document (a hand-edited FLAGS_FILE) as flagd reads it. A document whose
 * shape is wrong as a whole (not an object, no `flags` object, `$evaluators` or flag-set
 * `metadata` not what flagd's schema says) is refused; its flags are taken as written, each
 * judged on its own by the engine, so that one flag flagd cannot serve (it answers its safe
 * default) never keeps a kill written beside it from being taken. Every member is kept as
 * written: the app changes flags, never the rest, and a write must not drop what someone put there.
 */
export function readFlagDocument(candidate: unknown): FlagdDocument {
  const parsed = documentSchema.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.path.length === 0)
      throw new FlagValidationError('', 'a flag document must be a JSON object with a "flags" object');
    // The document's own members are checked one level deep: the member is the field.
    throw new FlagValidationError(String(issue.path[0]), issue.message);
  }
  const { flags, ...rest } = parsed.data;
  return { ...rest, flags: flags as Record<string, FlagDefinition> };
}
