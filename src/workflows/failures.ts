/**
 * The failures the workflows throw and the one reader of the failures they catch. Types and the `details` shape come
 * from the catalogue (`src/error-types.ts`); activities map their errors in `src/errors.ts`.
 */
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import type { FailureInfo, Refusal } from '../connection/decisions.js';
import type { Reason } from '../connection/reasons.js';
import { ErrorTypes, readFailureDetails, type FailureDetails } from '../error-types.js';

/** Reads what a caught failure says (an activity's typed failure, or anything else thrown). */
export function failureInfo(err: unknown): FailureInfo {
  const cause = err instanceof ActivityFailure ? (err.cause ?? err) : err;
  if (cause instanceof ApplicationFailure) {
    return {
      type: cause.type ?? null,
      nonRetryable: cause.nonRetryable === true,
      reason: (readFailureDetails(cause.details).reason as Reason | undefined) ?? null,
      message: cause.message,
    };
  }
  return {
    type: null,
    nonRetryable: false,
    reason: null,
    message: cause instanceof Error ? cause.message : String(cause),
  };
}

/** Bad workflow, update or signal input: the message names the field. */
export const invalidInput = (message: string) => ApplicationFailure.nonRetryable(message, ErrorTypes.InvalidInput);

export const reauthorizationRequired = (workflowId: string, reason: string) =>
  ApplicationFailure.create({
    type: ErrorTypes.ReauthorizationRequired,
    message: `connection ${workflowId} is not connected (${reason}); the tenant must authorize again`,
    nonRetryable: true,
    details: [{ reason } satisfies FailureDetails],
  });

export const tokenUnavailable = (message: string) =>
  ApplicationFailure.create({ type: ErrorTypes.TokenUnavailable, nonRetryable: true, message });

export const reconsentRefused = (message: string, details: FailureDetails) =>
  ApplicationFailure.create({ type: ErrorTypes.ReconsentRefused, nonRetryable: true, message, details: [details] });

/** A sync run in which a partition failed: the details are the run's per-partition summaries (as its result would be). */
export const syncFailed = (message: string, partitions: unknown) =>
  ApplicationFailure.nonRetryable(message.slice(0, 2000), ErrorTypes.SyncFailed, partitions);

/** The failure an update validator throws for a refusal decided by the machine (`src/connection/decisions.ts`). */
export function refusalFailure(workflowId: string, r: Refusal): ApplicationFailure {
  switch (r.kind) {
    case 'reauthorize':
      return reauthorizationRequired(workflowId, r.reason);
    case 'invalidState':
      return ApplicationFailure.nonRetryable(r.message, ErrorTypes.InvalidState);
    case 'retryLater':
      return ApplicationFailure.create({ type: ErrorTypes.RetryLater, message: r.message });
  }
}
