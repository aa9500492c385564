import type { LDOptions } from '@launchdarkly/node-server-sdk';
import { LaunchDarklyProvider } from '@launchdarkly/openfeature-node-server';
import {
  GeneralError,
  OpenFeatureEventEmitter,
  ProviderEvents,
  type EvaluationContext,
  type FlagValue,
  type FlagValueType,
  type JsonValue,
  type Logger as OpenFeatureLogger,
  type ResolutionDetails,
} from '@openfeature/server-sdk';
import { within } from '../bounded-wait.js';
import type { Logger } from '../observability/logger.js';
import { pageFlagKeys } from './catalog.js';
import { changedKeys, type FlagsProvider } from './provider.js';

export interface LaunchDarklySourceOptions {
  sdkKey: string;
  logger: Logger;
  /** How long start-up waits for LaunchDarkly before serving the safe defaults. */
  initTimeoutMs: number;
  /** Extra SDK options: the tests pass TestData's data source here. */
  sdkOptions?: LDOptions;
}

/**
 * What we use of LaunchDarkly's provider. Declared here because the package's own .d.ts imports
 * './LaunchDarklyProvider' without an extension, which NodeNext cannot resolve (so it is `any`).
 */
type LaunchDarklyOpenFeatureProvider = {
  readonly events: OpenFeatureEventEmitter;
  initialize(): Promise<void>;
  onClose(): Promise<void>;
  resolveBooleanEvaluation(
    key: string,
    defaultValue: boolean,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<boolean>>;
  resolveStringEvaluation(
    key: string,
    defaultValue: string,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<string>>;
  resolveNumberEvaluation(
    key: string,
    defaultValue: number,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<number>>;
  resolveObjectEvaluation<T extends JsonValue>(
    key: string,
    defaultValue: T,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<T>>;
};

/**
 * LaunchDarkly's OpenFeature provider behind our seam. Its `initialize` waits for the SDK; here
 * that wait is bounded and never fails the start: past the bound the app serves every flag at
 * its safe default (the kill switch killed, which is what LaunchDarkly's SDK answers before it
 * is ready) with /readyz at 503, and keeps waiting in the background. When LaunchDarkly answers,
 * every page flag is announced as changed, so open browsers move from the safe defaults to the
 * real values. LaunchDarkly's `update` events say which flag's configuration changed, never
 * whether anyone's value did: the push layer re-evaluates per viewer and compares. Its health is
 * told as any provider's: initialize fails past the bound (OpenFeature's ERROR), Ready follows
 * when LaunchDarkly answers. Flags are read-only here: they are flipped in LaunchDarkly.
 */
class BoundedLaunchDarklyProvider implements FlagsProvider {
  readonly metadata = { name: 'launchdarkly (OpenFeature)' } as const;
  readonly runsOn = 'server' as const;
  readonly kind = 'launchdarkly' as const;
  readonly events = new OpenFeatureEventEmitter();
  /** How LaunchDarkly's own initialization ended, once it has: why it failed, or nothing. */
  private initialized: { failure: string | undefined } | undefined;
  /** LaunchDarkly's versions are per environment and not given to the provider: changes are counted here. */
  private readonly versions = new Map<string, number>();
  private readonly inner: LaunchDarklyOpenFeatureProvider;

  constructor(private readonly options: LaunchDarklySourceOptions) {
    const log = options.logger.child({ component: 'launchdarkly' });
    this.inner = new (
      LaunchDarklyProvider as new (key: string, options: LDOptions, timeout: number) => LaunchDarklyOpenFeatureProvider
    )(
      options.sdkKey,
      {
        logger: {
          error: (message: unknown) => log.error(String(message)),
          warn: (message: unknown) => log.warn(String(message)),
          info: (message: unknown) => log.info(String(message)),
          debug: (message: unknown) => log.debug(String(message)),
        },
        ...options.sdkOptions,
      },
      // The SDK's own wait runs on in the background for as long as it takes.
      24 * 3600,
    );
    this.inner.events.addHandler(ProviderEvents.ConfigurationChanged, (details) =>
      this.changed([...changedKeys(details, pageFlagKeys)]),
    );
  }

  private changed(keys: string[]): void {
    for (const key of keys) this.versions.set(key, this.versionOf(key) + 1);
    this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: keys });
  }

  /** LaunchDarkly serves what it holds; a flag it cannot evaluate answers its own error per call. */
  flagProblems(): ReadonlyMap<string, string> {
    return new Map();
  }

  versionOf(key: string): number {
    return this.versions.get(key) ?? 1;
  }

  async initialize(): Promise<void> {
    const log = this.options.logger;
    let late = false;
    const initialized = this.inner.initialize().then(
      () => {
        this.initialized = { failure: undefined };
        this.events.emit(ProviderEvents.Ready);
        log.info('LaunchDarkly connected: flags come from LaunchDarkly');
        // After a late start, browsers hold the safe defaults: announce every page flag.
        if (late) this.changed([...pageFlagKeys]);
      },
      (error: unknown) => {
        const problem = `LaunchDarkly failed to initialize: ${(error as Error).message}`;
        log.error({ err: error }, `${problem}; serving the safe defaults (kill switch killed)`);
        this.initialized = { failure: problem };
        this.events.emit(ProviderEvents.Error, { message: problem });
      },
    );
    await within(initialized, this.options.initTimeoutMs);
    if (!this.initialized) {
      late = true;
      const problem = `LaunchDarkly has not answered after ${this.options.initTimeoutMs} ms`;
      log.warn(`${problem}: serving the safe defaults (kill switch killed) until it does; /readyz answers 503`);
      throw new GeneralError(problem);
    }
    if (this.initialized.failure) throw new GeneralError(this.initialized.failure);
  }

  async onClose(): Promise<void> {
    await this.inner.onClose();
  }

  resolve<T extends FlagValue>(
    type: FlagValueType,
    key: string,
    defaultValue: T,
    context: EvaluationContext,
  ): Promise<ResolutionDetails<T>> {
    switch (type) {
      case 'boolean':
        return this.inner.resolveBooleanEvaluation(key, defaultValue as boolean, context) as Promise<
          ResolutionDetails<T>
        >;
      case 'string':
        return this.inner.resolveStringEvaluation(key, defaultValue as string, context) as Promise<
          ResolutionDetails<T>
        >;
      case 'number':
        return this.inner.resolveNumberEvaluation(key, defaultValue as number, context) as Promise<
          ResolutionDetails<T>
        >;
      default: {
        const resolved: Promise<ResolutionDetails<JsonValue>> = this.inner.resolveObjectEvaluation(
          key,
          defaultValue,
          context,
        );
        return resolved as Promise<ResolutionDetails<T>>;
      }
    }
  }

  resolveBooleanEvaluation(
    key: string,
    defaultValue: boolean,
    context: EvaluationContext,
    _logger?: OpenFeatureLogger,
  ) {
    return this.inner.resolveBooleanEvaluation(key, defaultValue, context);
  }
  resolveStringEvaluation(key: string, defaultValue: string, context: EvaluationContext, _logger?: OpenFeatureLogger) {
    return this.inner.resolveStringEvaluation(key, defaultValue, context);
  }
  resolveNumberEvaluation(key: string, defaultValue: number, context: EvaluationContext, _logger?: OpenFeatureLogger) {
    return this.inner.resolveNumberEvaluation(key, defaultValue, context);
  }
  resolveObjectEvaluation<T extends JsonValue>(
    key: string,
    defaultValue: T,
    context: EvaluationContext,
    _logger?: OpenFeatureLogger,
  ) {
    return this.inner.resolveObjectEvaluation(key, defaultValue, context);
  }
}

/** Flags from LaunchDarkly: read-only here, flipped in LaunchDarkly's dashboard. */
export function createLaunchDarklyProvider(options: LaunchDarklySourceOptions): FlagsProvider {
  return new BoundedLaunchDarklyProvider(options);
}
