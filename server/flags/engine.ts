import { FlagdCore, MemoryStorage, type FeatureFlag, type Storage } from '@openfeature/flagd-core';
import type { EvaluationContext, FlagValue, FlagValueType, Logger as OpenFeatureLogger, ResolutionDetails } from '@openfeature/server-sdk';
import type { FlagDefinition, FlagdDocument } from './types.js';

const SILENT: OpenFeatureLogger = { error() {}, warn() {}, info() {}, debug() {} };

/**
 * Some flags of a document, compiled by flagd's own parser: `$ref` resolved against the document's
 * `$evaluators`, flag-set `metadata` merged into each flag's, exactly as flagd reads the file.
 * Only the named flags are parsed, so a change of one flag costs one flag, whatever the document
 * holds. Throws flagd's ParseError for a flag flagd would refuse.
 */
export function compileFlags(document: FlagdDocument, keys: Iterable<string>, logger: OpenFeatureLogger = SILENT): Map<string, FeatureFlag> {
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
  return compileFlags({ ...(evaluators ? { $evaluators: evaluators as Record<string, unknown> } : {}), flags: { [key]: definition } }, [key]).get(key)!;
}

/**
 * The app's one evaluation engine: flagd-core's evaluator over flags compiled one at a time. The
 * served flags are replaced whole at a load and flag by flag at a change, never re-parsed all
 * together: flagd-core's own `setConfigurations` re-reads and re-hashes the whole document for a
 * change of one flag (0.8 ms of a flip's path, measured, before the first browser hears of it).
 */
export class FlagdEngine {
  private flags = new Map<string, FeatureFlag>();
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

  /** Serves exactly the flags of this document. */
  load(document: FlagdDocument): void {
    this.flags = new Map();
    this.update(document, Object.keys(document.flags));
  }

  /**
   * Serves these flags as the document now defines them (a key it no longer has is removed). A
   * flag flagd refuses is not served (it evaluates to its safe default) and the others still are.
   */
  update(document: FlagdDocument, keys: readonly string[]): void {
    this.metadata = (document.metadata as Record<string, string | number | boolean> | undefined) ?? {};
    let compiled: Map<string, FeatureFlag>;
    try {
      compiled = compileFlags(document, keys, this.logger);
    } catch {
      // One refused flag must not keep the others from being served: compile them one by one.
      compiled = new Map();
      for (const key of keys) {
        try {
          for (const [name, flag] of compileFlags(document, [key], this.logger)) compiled.set(name, flag);
        } catch (error) {
          this.logger.error(`flag "${key}" is not valid flagd and is not served: ${(error as Error).message}`);
        }
      }
    }
    for (const key of keys) {
      const flag = compiled.get(key);
      if (flag) this.flags.set(key, flag);
      else this.flags.delete(key);
    }
  }

  resolve<T extends FlagValue>(type: FlagValueType, key: string, defaultValue: T, context: EvaluationContext): ResolutionDetails<T> {
    return this.core.resolve(type, key, defaultValue, context) as ResolutionDetails<T>;
  }
}
