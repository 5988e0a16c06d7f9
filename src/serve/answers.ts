/**
 * Typed errors of the core → HTTP answers (docs/serve.md, "Status codes"). Negative answers about a password or
 * a code are data (200, ok:false), like the library; everything the webmail cannot fix is a 503 without details
 * (those go to the service's log line).
 */
import { Mail2faError } from '../errors.js';
import { mapDbError } from '../db/connection.js';

export interface Answer {
  status: number;
  body: Record<string, unknown>;
  /** For the log line: the outcome or error code. */
  outcome: string;
  /** For the log line only (never sent): what went wrong behind a 5xx. */
  logError?: string;
  headers?: Record<string, string>;
  /** Things the core wanted said once (e.g. a sign-out command that failed): logged, not sent. */
  notices?: string[];
  /** The database connection was lost: the service starts a fresh pool for the next request. */
  connectionLost?: boolean;
}

export const ok = (body: Record<string, unknown>, outcome = 'ok'): Answer => ({
  status: 200,
  body: { ok: true, ...body },
  outcome,
});

export function errorAnswer(
  status: number,
  code: string,
  message: string,
  extra: Record<string, unknown> = {},
): Answer {
  return {
    status,
    body: {
      ok: false,
      ...extra,
      error: { code, message, ...(typeof extra.field === 'string' ? { field: extra.field } : {}) },
    },
    outcome: code,
  };
}

export const badRequest = (field: string | undefined, message: string, code = 'bad_request'): Answer => ({
  status: 400,
  body: { ok: false, error: { code, message, ...(field ? { field } : {}) } },
  outcome: code,
});

export function unavailableAnswer(logError: string): Answer {
  return {
    status: 503,
    body: { ok: false, error: { code: 'unavailable', message: 'service temporarily unavailable' } },
    outcome: 'unavailable',
    logError,
    headers: { 'Retry-After': '1' },
  };
}

/** Input errors of the core and the request field each one is about. */
const FIELD_OF: Record<string, string> = {
  bad_address: 'email',
  bad_phone: 'phone',
  bad_enrolment_id: 'enrolmentId',
  invalid_password: 'password',
};

/** The account is not in a state for this request. */
const CONFLICTS = new Set([
  'already_enabled',
  'not_enabled',
  'not_sms',
  'no_pending_enrolment',
  'enrolment_expired',
  'enrolment_superseded',
  'temporary_code_expired',
  'mailbox_inactive',
  'ambiguous_account',
  'current_code_required',
]);

/** Wrong password or code: a negative answer, not an error. */
export const NEGATIVE = new Set(['wrong_password', 'wrong_code', 'enrolment_cancelled']);

/**
 * Maps anything a route threw. `codeField` names the request field a malformed code came from. Locked and
 * negative answers get their `lockedUntil` from the caller (`extra`).
 */
export function answerForError(raw: unknown, codeField = 'code', extra: Record<string, unknown> = {}): Answer {
  const driverCode = (raw as { code?: unknown } | null)?.code;
  // A database that cannot write or read (disk full, I/O error, file gone or locked) is unavailable, not a bug.
  if (
    !(raw instanceof Mail2faError) &&
    typeof driverCode === 'string' &&
    /^SQLITE_(IOERR|FULL|CANTOPEN|READONLY|CORRUPT|NOTADB|BUSY|LOCKED|PERM)/.test(driverCode)
  ) {
    return unavailableAnswer(`database: ${driverCode}`);
  }
  const err = raw instanceof Mail2faError ? raw : mapDbError(raw, 'database');
  if (!(err instanceof Mail2faError)) return internal(raw);
  if (err.code === 'bad_code') return badRequest(codeField, err.message);
  const field = FIELD_OF[err.code];
  if (field) return badRequest(field, err.message);
  if (err.code === 'unknown_account') return errorAnswer(404, 'unknown_account', err.message);
  if (CONFLICTS.has(err.code)) return errorAnswer(409, err.code, err.message);
  if (NEGATIVE.has(err.code))
    return { status: 200, body: { ok: false, outcome: err.code, message: err.message, ...extra }, outcome: err.code };
  if (err.code === 'locked')
    return errorAnswer(429, 'locked', err.message, { outcome: 'locked', message: err.message, ...extra });
  if (err.code === 'rate_limited') {
    const at = /after (\S+Z)/.exec(err.message)?.[1];
    const retryAfter = at && !Number.isNaN(Date.parse(at)) ? new Date(at).toISOString() : null;
    return errorAnswer(429, 'rate_limited', err.message, { outcome: 'rate_limited', message: err.message, retryAfter });
  }
  // 69 (database, gateway), 75 busy/changed, 78 (key, schema, integrity): the webmail can only retry later.
  if (err.exitCode === 69 || err.exitCode === 75 || err.exitCode === 78) {
    return { ...unavailableAnswer(`${err.code}: ${err.message}`), connectionLost: err.code === 'db_unavailable' };
  }
  return internal(err);
}

function internal(raw: unknown): Answer {
  const message = raw instanceof Error ? `${raw.name}: ${raw.message.split('\n')[0]}` : String(raw);
  return {
    status: 500,
    body: { ok: false, error: { code: 'internal', message: 'internal error (a bug: see the service log)' } },
    outcome: 'internal',
    logError: message,
  };
}
