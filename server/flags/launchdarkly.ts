import type { LDOptions } from '@launchdarkly/node-server-sdk';
import { LaunchDarklyProvider } from '@launchdarkly/openfeature-node-server';
import {
  OpenFeatureEventEmitter,
  ProviderEvents,
  type EvaluationContext,
  type FlagValue,
  type FlagValueType,
  type JsonValue,
  type Logger as OpenFeatureLogger,
  type ResolutionDetails,
} from '@openfeature/server-sdk';
import type { Logger } from '../observability/logger.js';
import { pageFlagKeys } from './catalog.js';
import type { EvaluatingProvider } from './provider.js';
import type { FlagSource } from './source.js';

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
  resolveBooleanEvaluation(key: string, defaultValue: boolean, context: EvaluationContext): Promise<ResolutionDetails<boolean>>;
  resolveStringEvaluation(key: string, defaultValue: string, context: EvaluationContext): Promise<ResolutionDetails<string>>;
  resolveNumberEvaluation(key: string, defaultValue: number, context: EvaluationContext): Promise<ResolutionDetails<number>>;
  resolveObjectEvaluation<T extends JsonValue>(key: string, defaultValue: T, context: EvaluationContext): Promise<ResolutionDetails<T>>;
};

/**
 * LaunchDarkly's OpenFeature provider behind our seam. Its `initialize` waits for the SDK; here
 * that wait is bounded and never fails the start: past the bound the app serves every flag at
 * its safe default (the kill switch killed, which is what LaunchDarkly's SDK answers before it
 * is ready) with /readyz at 503, and keeps waiting in the background. When LaunchDarkly answers,
 * every page flag is announced as changed, so open browsers move from the safe defaults to the
 * real values. LaunchDarkly's `update` events say which flag's configuration changed, never
 * whether anyone's value did: the push layer re-evaluates per viewer and compares.
 */
class BoundedLaunchDarklyProvider implements EvaluatingProvider {
  readonly metadata = { name: 'launchdarkly (OpenFeature)' } as const;
  readonly runsOn = 'server' as const;
  readonly events = new OpenFeatureEventEmitter();
  ready = false;
  problem = 'waiting for LaunchDarkly';
  private readonly inner: LaunchDarklyOpenFeatureProvider;

  constructor(private readonly options: LaunchDarklySourceOptions) {
    const log = options.logger.child({ component: 'launchdarkly' });
    this.inner = new (LaunchDarklyProvider as new (key: string, options: LDOptions, timeout: number) => LaunchDarklyOpenFeatureProvider)(
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
    this.inner.events.addHandler(ProviderEvents.ConfigurationChanged, (details) => {
      this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: details?.flagsChanged ?? [] });
    });
  }

  async initialize(): Promise<void> {
    const log = this.options.logger;
    const initialized = this.inner.initialize().then(
      () => {
        const late = this.problem !== 'waiting for LaunchDarkly';
        this.ready = true;
        log.info('LaunchDarkly connected: flags come from LaunchDarkly');
        // After a late start, browsers hold the safe defaults: announce every page flag.
        if (late) this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: pageFlagKeys });
      },
      (error: unknown) => {
        this.problem = `LaunchDarkly failed to initialize: ${(error as Error).message}`;
        log.error({ err: error }, `${this.problem}; serving the safe defaults (kill switch killed)`);
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.initTimeoutMs);
    });
    await Promise.race([initialized, bound]);
    clearTimeout(timer);
    if (!this.ready && this.problem === 'waiting for LaunchDarkly') {
      this.problem = `LaunchDarkly has not answered after ${this.options.initTimeoutMs} ms`;
      log.warn(`${this.problem}: serving the safe defaults (kill switch killed) until it does; /readyz answers 503`);
    }
  }

  async onClose(): Promise<void> {
    await this.inner.onClose();
  }

  resolve<T extends FlagValue>(type: FlagValueType, key: string, defaultValue: T, context: EvaluationContext): Promise<ResolutionDetails<T>> {
    switch (type) {
      case 'boolean':
        return this.inner.resolveBooleanEvaluation(key, defaultValue as boolean, context) as Promise<ResolutionDetails<T>>;
      case 'string':
        return this.inner.resolveStringEvaluation(key, defaultValue as string, context) as Promise<ResolutionDetails<T>>;
      case 'number':
        return this.inner.resolveNumberEvaluation(key, defaultValue as number, context) as Promise<ResolutionDetails<T>>;
      default:
        return this.inner.resolveObjectEvaluation(key, defaultValue as JsonValue, context) as Promise<ResolutionDetails<T>>;
    }
  }

  resolveBooleanEvaluation(key: string, defaultValue: boolean, context: EvaluationContext, _logger?: OpenFeatureLogger) {
    return this.inner.resolveBooleanEvaluation(key, defaultValue, context);
  }
  resolveStringEvaluation(key: string, defaultValue: string, context: EvaluationContext, _logger?: OpenFeatureLogger) {
    return this.inner.resolveStringEvaluation(key, defaultValue, context);
  }
  resolveNumberEvaluation(key: string, defaultValue: number, context: EvaluationContext, _logger?: OpenFeatureLogger) {
    return this.inner.resolveNumberEvaluation(key, defaultValue, context);
  }
  resolveObjectEvaluation<T extends JsonValue>(key: string, defaultValue: T, context: EvaluationContext, _logger?: OpenFeatureLogger) {
    return this.inner.resolveObjectEvaluation(key, defaultValue, context);
  }
}

/** Flags from LaunchDarkly: read-only here, flipped in LaunchDarkly's dashboard. */
export function createLaunchDarklySource(options: LaunchDarklySourceOptions): FlagSource {
  const provider = new BoundedLaunchDarklyProvider(options);
  // LaunchDarkly's versions are per environment and not given to the provider; count changes here.
  const versions = new Map<string, number>();
  provider.events.addHandler(ProviderEvents.ConfigurationChanged, (details) => {
    const changed = details?.flagsChanged;
    for (const key of Array.isArray(changed) ? (changed as string[]) : []) versions.set(key, (versions.get(key) ?? 1) + 1);
  });
  return {
    kind: 'launchdarkly',
    provider,
    store: undefined,
    versionOf: (key) => versions.get(key) ?? 1,
    readiness: () =>
      provider.ready
        ? { ready: true, detail: 'flags from LaunchDarkly' }
        : { ready: false, detail: `${provider.problem}; serving safe defaults` },
    // The provider's initialize (called by OpenFeature) does the bounded wait.
    start: async () => undefined,
    close: async () => undefined,
  };
}
