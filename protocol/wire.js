// @ts-check
/**
 * What travels between the server and the pages, typed once: the Socket.IO events' payloads, the
 * flag definition as flagd writes it, the headers of a turn. The pages load this module as it is;
 * the server imports it (its build compiles it beside the server), so the two never disagree.
 */

/** What an avatar shows when the third party is not called (killed, failed, not yet fetched). */
export const FALLBACK_AVATAR = '/static/img/fallback-avatar.svg';
/** A fragment's turn: when to come back (the page catches up at the third party's pace). */
export const REFETCH_TURN_HEADER = 'Refetch-Turn';
export const REFETCH_AFTER_HEADER = 'Refetch-After-Ms';

/**
 * @typedef {{ [member: string]: JsonValue }} JsonObject
 * @typedef {JsonValue[]} JsonArray
 * @typedef {null | boolean | number | string | JsonArray | JsonObject} JsonValue
 *
 * One flag in flagd's format. `defaultVariant` absent or null: the code's default value (flagd's
 * own meaning). `targeting` is JsonLogic. `metadata` is kept as written, never read by the app.
 * @typedef {object} FlagDefinition
 * @property {'ENABLED' | 'DISABLED'} state
 * @property {Record<string, JsonValue>} variants
 * @property {string | null} [defaultVariant]
 * @property {Record<string, JsonValue>} [targeting]
 * @property {Record<string, string | number | boolean>} [metadata]
 */

/**
 * `flag_snapshot`, on every (re)connect: the page's flags as this viewer gets them.
 * @typedef {Record<string, JsonValue>} FlagSnapshot
 *
 * `flag_update`, to each browser whose own value changed. `refetchWithinMs`: the new value makes
 * the page fetch its live content again, at a random moment in this window (sized by the server to
 * the third party's measured capacity).
 * @typedef {{ key: string, value: JsonValue, version: number, refetchWithinMs?: number }} FlagUpdate
 */

/**
 * The cap on one service's calls in flight, and how it stands. `scope`: `cluster` when the cap holds
 * for every instance together (with Redis), `instance` when for this one. `held`: the slice of it
 * this instance may use now; `inUse`: calls in flight across the scope, as last known; `instances`:
 * those sharing the cap, as last seen (1 without Redis).
 * @typedef {{ scope: 'cluster' | 'instance', cap: number, held: number, inUse: number, instances: number }} BudgetState
 */

/**
 * What the launch-control page is sent (`admin_state`, and its initial state in the page).
 * `problem`: why the server cannot serve a flag as written (it answers its safe default).
 * @typedef {{ key: string, version: number, description: string, definition: FlagDefinition | null, problem?: string }} AdminFlag
 * @typedef {{ source: string, name: string, note?: string, address?: string }} AdminActor
 * @typedef {{ id: string, at: string, key: string, version: number, summary: string, actor: AdminActor }} AdminAuditEntry
 * `breakerSince`: when the breaker took its present state (ISO 8601); `timeoutMs`: the limit on one call.
 * @typedef {{ service: string, breaker: string, breakerSince: string, timeoutMs: number, calls: Record<string, number>, skipped: Record<string, number>, budget: BudgetState }} UpstreamState
 * @typedef {{ kind: string, writable: boolean, ready: boolean, detail: string }} SourceState
 * `ramp`: the running guarded restore, or the last one (absent when there never was one).
 * @typedef {{ source: SourceState, flags: AdminFlag[], audit: AdminAuditEntry[], browsers: number, upstream: UpstreamState[], theme: string, ramp?: import('./ramp.js').Ramp }} AdminState
 */

/**
 * `admin_stats`: one second of the launch, what the dashboard's charts plot. `t`: Unix time in
 * seconds, to the millisecond, when the second ended (the flips marked carry their exact time);
 * `calls`: third-party calls made in that second by outcome; `latencyMs`: their mean duration (null
 * when none); `browsers`: connected across every instance; `pageViews`: pages and fragments rendered.
 * `budget`: each service's calls in flight and cap at that moment (see BudgetState). `services`:
 * that second per service, calls made by outcome, calls not made by reason (the kill's savings
 * among them) and their mean duration.
 * @typedef {{ ok: number, error: number, timeout: number, invalid: number }} CallsByOutcome
 * @typedef {{ killed: number, breaker_open: number, over_capacity: number, deferred: number }} SkipsByReason
 * @typedef {{ calls: CallsByOutcome, skipped: SkipsByReason, latencyMs: number | null }} ServiceSecond
 * @typedef {{ t: number, calls: CallsByOutcome, latencyMs: number | null, browsers: number, pageViews: number, budget: Record<string, { inUse: number, cap: number }>, services: Record<string, ServiceSecond> }} StatsSample
 */

export {};
