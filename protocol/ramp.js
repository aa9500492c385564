// @ts-check
/**
 * A guarded restore ("ramp"): the kill switch brought back stage by stage, each stage live for a
 * growing share of viewers, watched by a guard that kills it again when the third party suffers.
 * What the server, the command line and the launch-control page share: the defaults, the targeting
 * a stage writes, and the record's shape.
 */

import { KILL_SWITCH } from './flags.js';

/** Where a guarded restore of the kill switch is started (POST) and read (GET). */
export const RAMP_PATH = `/api/flags/${KILL_SWITCH}/ramp`;

/**
 * The defaults, chosen for a third party that has just come back from an outage (the reasoning is
 * in docs/flags.md): four stages, so the first exposes a tenth of the load; 30 s each, long enough
 * for pages to load and their calls to end several times over at a 100-800 ms third party, short
 * enough that a full restore takes two minutes; a rollback past 5 % failed calls over at least 20.
 */
export const RAMP_DEFAULTS = Object.freeze({
  stages: Object.freeze([10, 25, 50, 100]),
  holdMs: 30_000,
  maxErrorRate: 0.05,
  minCalls: 20,
});

/** A stage with too few calls to judge holds at most this many holds, then advances, saying so. */
export const RAMP_SPARSE_HOLDS = 4;

/**
 * The targeting one stage writes: flagd's `fractional` on the viewer key (hashed with the flag's
 * key), live variant first. A viewer's bucket never changes, so a viewer live at one stage stays
 * live at every later one. The editor reads it back as a rollout.
 * @param {string} live the variant that serves `true`
 * @param {string} killed the variant that serves `false`
 * @param {number} percent 1-99
 */
export function rampTargeting(live, killed, percent) {
  return {
    fractional: [
      [live, percent],
      [killed, 100 - percent],
    ],
  };
}

/**
 * @typedef {'running' | 'completed' | 'rolled-back' | 'stopped'} RampStatus
 * @typedef {{ calls: number, failed: number, breakerOpened: number }} ServiceFigures
 * @typedef {{ services: Record<string, ServiceFigures>, verdict: string, enough: boolean }} GuardFigures
 * @typedef {{ source: string, name: string, note?: string, address?: string }} RampActor
 *
 * A ramp as the API and the page show it. `stage` indexes `stages`; `percent` is the share live
 * now (0 until the first stage is written); times are ISO 8601. `guard`: the current stage's calls
 * by service, and what the guard makes of them in words. `nextStageAt`: when the stage may end.
 * @typedef {object} Ramp
 * @property {string} id
 * @property {string} key
 * @property {RampStatus} status
 * @property {number[]} stages
 * @property {number} holdMs
 * @property {number} maxErrorRate
 * @property {number} minCalls
 * @property {number} stage
 * @property {number} percent
 * @property {string} startedAt
 * @property {string} stageStartedAt
 * @property {string} [endedAt]
 * @property {string} [reason]
 * @property {RampActor} actor
 * @property {GuardFigures} [guard]
 * @property {string} [nextStageAt]
 */

export {};
