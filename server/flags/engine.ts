import { LRUCache } from 'lru-cache';
import { FlagdCore, MemoryStorage, type FeatureFlag, type Storage } from '@openfeature/flagd-core';
import {
  ErrorCode,
  type EvaluationContext,
  type FlagValue,
  type FlagValueType,
  type Logger as OpenFeatureLogger,
  type ResolutionDetails,
} from '@openfeature/server-sdk';
import { LogicEngine } from 'json-logic-engine';
import { MAX_FLAG_DEPTH, nestsDeeperThan } from './json-depth.js';
import type { FlagDefinition, FlagdDocument } from './types.js';

const SILENT: OpenFeatureLogger = { error() {}, warn() {}, info() {}, debug() {} };

/** flagd flag keys: what flagd's schema allows, and safe in a URL path segment. */
export const FLAG_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * The operators flagd evaluates: json-logic-engine's own and flagd's four. The engine looks an
 * operator up with `in`, through Object.prototype, so a rule naming `__defineGetter__` would
 * compile into a call of it: only these names, the engine's own properties, may reach it.
 */
const OPERATORS: ReadonlySet<string> = new Set([
  ...Object.keys(new LogicEngine().methods as Record<string, unknown>),
  'fractional',
  'sem_ver',
  'starts_with',
  'ends_with',
]);

/**
 * A rule with its `$ref`s replaced by the document's shared rules (`$evaluators`), exactly as
 * flagd-core does it: a text substitution of `{"$ref":"name"}`, one shared rule after another.
 */
export function expandRefs(rule: unknown, evaluators: unknown): unknown {
  if (!evaluators || typeof evaluators !== 'object') return rule;
  let text = JSON.stringify(rule);
  for (const [name, shared] of Object.entries(evaluators))
    text = text.replaceAll(`{"$ref":${JSON.stringify(name)}}`, JSON.stringify(shared));
  return JSON.parse(text) as unknown;
}

/** Why flagd's evaluator must not compile this rule (an operator it does not have, a `$ref` left over); undefined when it may. */
export function ruleProblem(rule: unknown): string | undefined {
  const pending: unknown[] = [rule];
  while (pending.length > 0) {
    const node = pending.pop();
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      pending.push(...(node as unknown[]));
      continue;
    }
    for (const [operator, args] of Object.entries(node)) {
      if (operator === '$ref')
        return `names the shared rule ${JSON.stringify(args)}, which $evaluators does not define`;
      if (!OPERATORS.has(operator)) return `uses "${operator}", which is not a JsonLogic or flagd operator`;
      pending.push(args);
    }
  }
  return undefined;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Why flagd could not serve this flag as written, checked as flagd checks a flag it loads (its
 * structure; a rule it can compile); undefined when it can. Nothing is evaluated here.
 */
export function servingProblem(key: string, flag: unknown, evaluators: unknown): string | undefined {
  if (!FLAG_KEY_PATTERN.test(key)) return 'is not a valid flag key (letters, digits, "_", "." and "-")';
  if (!isObject(flag)) return 'is not a JSON object';
  if (nestsDeeperThan(flag, MAX_FLAG_DEPTH)) return `nests deeper than ${MAX_FLAG_DEPTH} levels`;
  if (flag.state !== 'ENABLED' && flag.state !== 'DISABLED') return 'state must be "ENABLED" or "DISABLED"';
  if (!isObject(flag.variants) || Object.keys(flag.variants).length === 0)
    return 'variants must be an object naming at least one variant';
  const { defaultVariant } = flag;
  if (
    defaultVariant !== undefined &&
    defaultVariant !== null &&
    (typeof defaultVariant !== 'string' || !Object.hasOwn(flag.variants, defaultVariant))
  ) {
    return 'defaultVariant must name one of the variants, or be null';
  }
  // flagd reads a null targeting as none.
  if (flag.targeting === undefined || flag.targeting === null) return undefined;
  if (!isObject(flag.targeting)) return 'targeting must be a JsonLogic object';
  const problem = ruleProblem(expandRefs(flag.targeting, evaluators));
  return problem && `targeting ${problem}`;
}

/**
 * Some flags of a document, compiled by flagd's own parser: `$ref` resolved against the document's
 * `$evaluators`, flag-set `metadata` merged into each flag's, exactly as flagd reads the file.
 * Only the named flags are parsed, so a change of one flag costs one flag, whatever the document
 * holds. The caller has checked each with `servingProblem`.
 */
export function compileFlags(
  document: FlagdDocument,
  keys: Iterable<string>,
  logger: OpenFeatureLogger = SILENT,
): Map<string, FeatureFlag> {
  const flags: Record<string, FlagDefinition> = {};
  for (const key of keys) if (Object.hasOwn(document.flags, key)) flags[key] = document.flags[key]!;
  const storage = new MemoryStorage(logger);
  storage.setConfigurations(JSON.stringify({ ...document, flags }));
  return storage.getFlags();
}

/**
 * One flag that is not served (a candidate being validated, a probe of the explanation),
 * compiled as flagd would read it beside the document's `$evaluators`.
 */
export function compileFlag(key: string, definition: FlagDefinition, evaluators?: unknown): FeatureFlag {
  return compileFlags(
    { ...(evaluators ? { $evaluators: evaluators as Record<string, unknown> } : {}), flags: { [key]: definition } },
    [key],
  ).get(key)!;
}

/** Whether flagd-core could not build a compiled flag's rule (it then answers PARSE_ERROR for every context). */
export const targetingUnparsable = (flag: FeatureFlag): boolean =>
  flag.evaluate({}).errorCode === ErrorCode.PARSE_ERROR;

/**
 * The app's one evaluation engine: flagd-core's evaluator over flags compiled one at a time. The
 * served flags are replaced whole at a load and flag by flag at a change, never re-parsed all
 * together: flagd-core's own `setConfigurations` re-reads the whole document for a change of one
 * flag. A flag flagd could not serve answers PARSE_ERROR (its safe default), as flagd does, and
 * never keeps the others from being served.
 */
export class FlagdEngine {
  private flags = new Map<string, FeatureFlag>();
  private unservable = new Map<string, string>();
  /** Flags compiled lately (or found unservable), by everything their compiling read. */
  private readonly compiled = new LRUCache<string, { flag?: FeatureFlag; problem?: string }>({ max: 256 });
  private metadata: Record<string, string | number | boolean> = {};
  private readonly core: FlagdCore;

  constructor(private readonly logger: OpenFeatureLogger = SILENT) {
    const storage: Storage = {
      getFlag: (key) => this.flags.get(key),
      getFlags: () => this.flags,
      getFlagSetMetadata: () => this.metadata,
      setConfigurations: () => {
        throw new Error('the engine is loaded through load() and update()');
      },
    };
    this.core = new FlagdCore(storage, logger);
  }

  /** Serves exactly the flags of this document; returns why each flag it cannot serve is not served. */
  load(document: FlagdDocument): Map<string, string> {
    this.flags = new Map();
    this.unservable = new Map();
    return this.update(document, Object.keys(document.flags));
  }

  /**
   * Serves these flags as the document now defines them (a key it no longer has is removed).
   * Returns, for each of them that cannot be served, why.
   */
  update(document: FlagdDocument, keys: readonly string[]): Map<string, string> {
    this.metadata = isObject(document.metadata) ? (document.metadata as Record<string, string | number | boolean>) : {};
    const problems = new Map<string, string>();
    const servable: string[] = [];
    // What compiling a flag reads besides its definition: the shared rules and the set's metadata.
    const around = `${JSON.stringify(document.$evaluators ?? null)}\u0000${JSON.stringify(document.metadata ?? null)}`;
    const memoOf = (key: string) => `${key}\u0000${JSON.stringify(document.flags[key])}\u0000${around}`;
    for (const key of keys) {
      this.flags.delete(key);
      this.unservable.delete(key);
      if (!Object.hasOwn(document.flags, key)) continue;
      // A definition compiled before (a kill and a restore go back and forth between two) is taken
      // as compiled then: flagd's flags are immutable once built.
      const known = this.compiled.get(memoOf(key));
      if (known?.flag) this.flags.set(key, known.flag);
      else if (known?.problem !== undefined) problems.set(key, known.problem);
      else {
        const problem = servingProblem(key, document.flags[key], document.$evaluators);
        if (problem) problems.set(key, problem);
        else servable.push(key);
      }
    }
    for (const [key, flag] of this.compile(document, servable, problems)) {
      if (targetingUnparsable(flag)) problems.set(key, 'targeting is not a rule flagd can compile');
      else {
        this.flags.set(key, flag);
        this.compiled.set(memoOf(key), { flag });
      }
    }
    for (const [key, problem] of problems) {
      this.unservable.set(key, problem);
      this.compiled.set(memoOf(key), { problem });
    }
    return problems;
  }

  /** The flags of the document that are not served, and why. */
  problems(): ReadonlyMap<string, string> {
    return this.unservable;
  }

  resolve<T extends FlagValue>(
    type: FlagValueType,
    key: string,
    defaultValue: T,
    context: EvaluationContext,
  ): ResolutionDetails<T> {
    const problem = this.unservable.get(key);
    if (problem !== undefined) {
      return {
        value: defaultValue,
        reason: 'ERROR',
        errorCode: ErrorCode.PARSE_ERROR,
        errorMessage: `flag "${key}" ${problem}`,
        flagMetadata: this.metadata,
      };
    }
    return this.core.resolve(type, key, defaultValue, context);
  }

  private compile(document: FlagdDocument, keys: string[], problems: Map<string, string>): Map<string, FeatureFlag> {
    try {
      return compileFlags(document, keys, this.logger);
    } catch {
      // Not expected after servingProblem: compiled one by one, so one surprise costs one flag.
      const compiled = new Map<string, FeatureFlag>();
      for (const key of keys) {
        try {
          for (const [name, flag] of compileFlags(document, [key], this.logger)) compiled.set(name, flag);
        } catch (error) {
          problems.set(key, `could not be compiled by flagd (${(error as Error).message})`);
        }
      }
      return compiled;
    }
  }
}
