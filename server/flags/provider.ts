import { FlagdCore } from '@openfeature/flagd-core';
import {
  OpenFeatureEventEmitter,
  ProviderEvents,
  type EvaluationContext,
  type FlagValue,
  type FlagValueType,
  type JsonValue,
  type Logger as OpenFeatureLogger,
  type Provider,
  type ResolutionDetails,
} from '@openfeature/server-sdk';
import type { Logger } from '../observability/logger.js';
import type { FlagStore } from './store.js';

/**
 * The fast path of evaluation, for the push layer: the provider's own resolve, without the
 * OpenFeature client's hooks and context merging (about 25 µs a call against 0.1-1.4 µs here).
 * May answer synchronously; a remote provider answers with a promise.
 */
export interface FlagEvaluator {
  resolve<T extends FlagValue>(
    type: FlagValueType,
    key: string,
    defaultValue: T,
    context: EvaluationContext,
  ): ResolutionDetails<T> | Promise<ResolutionDetails<T>>;
}

/** A resolution's value, or the flag's safe default when it failed or gave none. */
export function valueOrSafeDefault<T extends FlagValue>(details: ResolutionDetails<T>, safeDefault: T): T {
  return details.errorCode || details.value === undefined ? safeDefault : details.value;
}

export type EvaluatingProvider = Provider & FlagEvaluator & { readonly events: OpenFeatureEventEmitter };

export function openFeatureLogger(logger: Logger): OpenFeatureLogger {
  return {
    error: (...args: unknown[]) => logger.error({ args }, 'openfeature'),
    warn: (...args: unknown[]) => logger.warn({ args }, 'openfeature'),
    info: (...args: unknown[]) => logger.debug({ args }, 'openfeature'),
    debug: (...args: unknown[]) => logger.trace({ args }, 'openfeature'),
  };
}

/**
 * Our OpenFeature provider: flagd-core evaluating the store's flagd document. When the store
 * announces a change, the document is handed to flagd-core, which answers with the keys whose
 * definitions changed; those go out as PROVIDER_CONFIGURATION_CHANGED, the same event any other
 * OpenFeature provider (LaunchDarkly's) emits, so the push layer cannot tell them apart.
 */
export class FlagStoreProvider implements EvaluatingProvider {
  readonly metadata = { name: 'flag-store (flagd-core)' } as const;
  readonly runsOn = 'server' as const;
  readonly events = new OpenFeatureEventEmitter();
  private readonly core: FlagdCore;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly store: FlagStore,
    logger: Logger,
  ) {
    this.core = new FlagdCore(undefined, openFeatureLogger(logger));
  }

  async initialize(): Promise<void> {
    this.sync();
    this.unsubscribe ??= this.store.onChange(() => this.sync());
  }

  async onClose(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private sync(): void {
    const changed = this.core.setConfigurations(JSON.stringify(this.store.document()));
    if (changed.length > 0) this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: changed });
  }

  resolve<T extends FlagValue>(type: FlagValueType, key: string, defaultValue: T, context: EvaluationContext) {
    return this.core.resolve(type, key, defaultValue, context) as ResolutionDetails<T>;
  }

  async resolveBooleanEvaluation(key: string, defaultValue: boolean, context: EvaluationContext) {
    return this.core.resolveBooleanEvaluation(key, defaultValue, context);
  }

  async resolveStringEvaluation(key: string, defaultValue: string, context: EvaluationContext) {
    return this.core.resolveStringEvaluation(key, defaultValue, context);
  }

  async resolveNumberEvaluation(key: string, defaultValue: number, context: EvaluationContext) {
    return this.core.resolveNumberEvaluation(key, defaultValue, context);
  }

  async resolveObjectEvaluation<T extends JsonValue>(key: string, defaultValue: T, context: EvaluationContext) {
    return this.core.resolveObjectEvaluation(key, defaultValue, context);
  }
}
