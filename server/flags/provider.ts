import {
  ErrorCode,
  GeneralError,
  StandardResolutionReasons,
  OpenFeatureEventEmitter,
  ProviderEvents,
  ProviderStatus,
  type EvaluationContext,
  type EventDetails,
  type FlagValue,
  type FlagValueType,
  type JsonValue,
  type Logger as OpenFeatureLogger,
  type Provider,
  type ResolutionDetails,
} from '@openfeature/server-sdk';
import { flipStep } from '../observability/flip-trace.js';
import type { Logger } from '../observability/logger.js';
import { FlagdEngine } from './engine.js';
import type { FlagRepository, RepositoryStatus } from './repository.js';

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

/**
 * Reasons that, by the OpenFeature spec, give the same value whatever the context: one
 * evaluation answers for every viewer. FLAG_NOT_FOUND and PARSE_ERROR likewise (the code default
 * for all).
 */
export function isContextFree(details: ResolutionDetails<FlagValue>): boolean {
  return (
    details.reason === StandardResolutionReasons.STATIC ||
    details.reason === StandardResolutionReasons.DISABLED ||
    details.errorCode === ErrorCode.FLAG_NOT_FOUND ||
    details.errorCode === ErrorCode.PARSE_ERROR
  );
}

/** A resolution's value, or the flag's safe default when it failed or gave none. */
export function valueOrSafeDefault<T extends FlagValue>(details: ResolutionDetails<T>, safeDefault: T): T {
  return details.errorCode || details.value === undefined ? safeDefault : details.value;
}

/**
 * What the app needs of a flag provider, whatever it is (our repository, LaunchDarkly): an
 * OpenFeature provider with the fast path, its events (ConfigurationChanged with the changed
 * keys; Ready, Stale and Error for its status, which OpenFeature tracks and readiness reads), and
 * each flag's version.
 */
export interface FlagsProvider extends Provider, FlagEvaluator {
  readonly events: OpenFeatureEventEmitter;
  readonly kind: 'file' | 'redis' | 'launchdarkly';
  /** The version pushed with flag_update; it grows with every change of the flag. */
  versionOf(key: string): number;
  /** The flags it holds but cannot serve (they answer their safe default), and why. */
  flagProblems(): ReadonlyMap<string, string>;
}

/**
 * The keys a ConfigurationChanged event names; every key the caller follows when it names none
 * (OpenFeature makes `flagsChanged` optional: a provider may only say that something changed).
 */
export function changedKeys(details: EventDetails | undefined, all: readonly string[]): readonly string[] {
  const changed = details?.flagsChanged;
  return Array.isArray(changed) ? (changed as string[]) : all;
}

export function openFeatureLogger(logger: Logger): OpenFeatureLogger {
  return {
    error: (...args: unknown[]) => logger.error({ args }, 'openfeature'),
    warn: (...args: unknown[]) => logger.warn({ args }, 'openfeature'),
    info: (...args: unknown[]) => logger.debug({ args }, 'openfeature'),
    debug: (...args: unknown[]) => logger.trace({ args }, 'openfeature'),
  };
}

/**
 * Our OpenFeature provider: the app's flagd engine serving the repository's flags. It takes the
 * repository's changes as they are: the changed flags are compiled again (only they), and their
 * keys go out as PROVIDER_CONFIGURATION_CHANGED, the event any OpenFeature provider
 * (LaunchDarkly's) emits, so the push cannot tell them apart. The repository's status is the
 * provider's, told as Ready, Stale and Error events. Initialize fails when nothing could be loaded
 * (OpenFeature's status is then ERROR; every flag serves its safe default) and Ready follows once
 * the flags load.
 */
export class FlagRepositoryProvider implements FlagsProvider {
  readonly metadata = { name: 'flag repository (flagd-core)' } as const;
  readonly runsOn = 'server' as const;
  readonly events = new OpenFeatureEventEmitter();
  readonly kind: FlagsProvider['kind'];
  private readonly engine: FlagdEngine;
  private subscriptions: (() => void)[] = [];

  constructor(
    private readonly repository: FlagRepository,
    private readonly logger: Logger,
  ) {
    this.kind = repository.kind;
    this.engine = new FlagdEngine(openFeatureLogger(logger));
  }

  async initialize(): Promise<void> {
    if (this.subscriptions.length === 0) {
      this.report(this.engine.load(this.repository.document()));
      this.subscriptions = [
        this.repository.onChange((changes) => {
          const keys = changes.map((change) => change.key);
          this.report(this.engine.update(this.repository.document(), keys));
          flipStep('compiled');
          this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: keys });
        }),
        this.repository.onStatus((status) => this.emitStatus(status)),
      ];
    }
    const { status, message } = this.repository.status();
    if (status === ProviderStatus.ERROR) throw new GeneralError(message);
  }

  private emitStatus({ status, message }: RepositoryStatus): void {
    if (status === ProviderStatus.READY) this.events.emit(ProviderEvents.Ready);
    else if (status === ProviderStatus.STALE) this.events.emit(ProviderEvents.Stale, { message });
    else if (status === ProviderStatus.ERROR) this.events.emit(ProviderEvents.Error, { message });
  }

  async onClose(): Promise<void> {
    for (const unsubscribe of this.subscriptions) unsubscribe();
    this.subscriptions = [];
  }

  flagProblems(): ReadonlyMap<string, string> {
    return this.engine.problems();
  }

  private report(problems: Map<string, string>): void {
    for (const [key, problem] of problems) {
      this.logger.error(
        { flag: key, problem },
        `flag "${key}" ${problem}: it is not served, and answers its safe default (PARSE_ERROR)`,
      );
    }
  }

  versionOf(key: string): number {
    return this.repository.versionOf(key);
  }

  resolve<T extends FlagValue>(type: FlagValueType, key: string, defaultValue: T, context: EvaluationContext) {
    return this.engine.resolve(type, key, defaultValue, context);
  }

  async resolveBooleanEvaluation(key: string, defaultValue: boolean, context: EvaluationContext) {
    return this.engine.resolve('boolean', key, defaultValue, context);
  }

  async resolveStringEvaluation(key: string, defaultValue: string, context: EvaluationContext) {
    return this.engine.resolve('string', key, defaultValue, context);
  }

  async resolveNumberEvaluation(key: string, defaultValue: number, context: EvaluationContext) {
    return this.engine.resolve('number', key, defaultValue, context);
  }

  async resolveObjectEvaluation<T extends JsonValue>(key: string, defaultValue: T, context: EvaluationContext) {
    return this.engine.resolve('object', key, defaultValue, context);
  }
}
