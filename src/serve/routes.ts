/**
 * The `/v1` endpoints (docs/serve.md): each one a zod schema for its body and a call into the core. Rules
 * (lockout, replay, rate limits, audit) live in the core; this file only shapes answers.
 */
import { isIP } from 'node:net';
import * as z from 'zod';
import type { Context } from '../context.js';
import { canonicalAddress } from '../core/address.js';
import { disableTwoFactor } from '../core/disable.js';
import { regenerateRecoveryCodes } from '../core/recovery-codes.js';
import { confirmEnrolment, startEnrolment } from '../core/enrolment.js';
import { Mail2faError } from '../errors.js';
import { factorSummary, sendOwnerSmsCode, summaryRequiresCode } from '../core/owner.js';
import { sendSignInCode } from '../core/send-code.js';
import { statusBatches, type StatusRow } from '../core/status.js';
import { parseCodeInput } from '../core/factor-check.js';
import { sessionsRevokedAt } from '../core/sign-in.js';
import { formatSecretForManualEntry } from '../totp/totp.js';
import { verifyCodeAnswer } from '../verify-answer.js';
import { answerForError, badRequest, errorAnswer, NEGATIVE, ok, type Answer } from './answers.js';
import { qrSvg } from './qr.js';

const email = z.string().max(1024);
const ip = z
  .string()
  .max(64)
  .refine((v) => isIP(v) !== 0, 'must be an IPv4 or IPv6 address');
const userAgent = z.string().max(512).optional();
const code = z.string().max(256);
const password = z.string().max(4096);
const origin = { ip, userAgent };
const readOrigin = { ip: ip.optional(), userAgent };

const EmailOnly = z.strictObject({ email, ...readOrigin });
const Verify = z.strictObject({ email, code, ...origin });
const SendCode = z.strictObject({ email, ...origin });
const EnrolStart = z
  .strictObject({
    email,
    password,
    method: z.enum(['app', 'totp', 'sms']),
    phone: z.string().max(64).optional(),
    currentCode: code.optional(),
    ...origin,
  })
  .superRefine((value, issue) => {
    if (value.method === 'sms' && value.phone === undefined)
      issue.addIssue({ code: 'custom', path: ['phone'], message: 'is required for method "sms"' });
    if (value.method !== 'sms' && value.phone !== undefined)
      issue.addIssue({ code: 'custom', path: ['phone'], message: 'is only for method "sms"' });
  });
const EnrolConfirm = z.strictObject({
  email,
  enrolmentId: z.string().regex(/^[0-9a-f]{24}$/, 'must be the 24 hex digits enrol/start returned'),
  code,
  ...origin,
});
const PasswordAndCode = z.strictObject({ email, password, code, ...origin });
const PasswordOnly = z.strictObject({ email, password, ...origin });

interface Route {
  schema: z.ZodType;
  /** The request field a malformed code came from. */
  codeField?: string;
  handle(input: never, ctx: Context): Promise<Answer>;
}

const route = <S extends z.ZodType>(
  schema: S,
  handle: (input: z.infer<S>, ctx: Context) => Promise<Answer>,
  codeField?: string,
): Route => ({ schema, handle: handle as Route['handle'], codeField });

/** The status row of one address (the library's `status()`), or null if the address is not one account. */
async function statusRow(ctx: Context, address: string): Promise<StatusRow | null> {
  const db = await ctx.db();
  for await (const batch of statusBatches(
    { db, tables: ctx.tables, mapping: ctx.mapping, now: ctx.now, stores: await ctx.stores() },
    { kind: 'emails', emails: [address] },
  )) {
    if (batch[0]) return batch[0];
  }
  return null;
}

/** After a refusal: when the account is locked (null if not), for the answer's `lockedUntil`. */
async function lockedUntil(ctx: Context, address: string): Promise<string | null> {
  const row = await statusRow(ctx, address).catch(() => null);
  return row?.lockedUntil ? ms(row.lockedUntil) : null;
}

/** Times in answers: ISO-8601 UTC with milliseconds (the core writes whole seconds in some places). */
function ms(iso: string): string;
function ms(iso: string | null): string | null;
function ms(iso: string | null): string | null {
  return iso === null ? null : new Date(iso).toISOString();
}

function safeAddress(input: string): string {
  try {
    return canonicalAddress(input);
  } catch {
    return input;
  }
}

/** Runs `work`; a refusal (wrong password/code, locked) becomes its answer with `email` and `lockedUntil`. */
async function refusable(
  ctx: Context,
  input: { email: string },
  codeField: string,
  work: () => Promise<Answer>,
): Promise<Answer> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof Mail2faError && (NEGATIVE.has(err.code) || err.code === 'locked')) {
      const address = safeAddress(input.email);
      return answerForError(err, codeField, { email: address, lockedUntil: await lockedUntil(ctx, address) });
    }
    throw err;
  }
}

/** The SMS-only pre-check of the ownership sends: 409 instead of a usage error from the core. */
async function requireSms(ctx: Context, address: string): Promise<Answer | null> {
  const summary = await factorSummary(ctx, address);
  if (summary.method === 'sms') return null;
  return summary.method === 'totp'
    ? errorAnswer(409, 'not_sms', `${summary.email} uses an authenticator app, not SMS: there is no code to send`)
    : errorAnswer(409, 'not_enabled', `two-factor authentication is not enabled for ${summary.email}`);
}

async function sendOwnerCode(
  ctx: Context,
  input: { email: string; password: string },
  action: string,
): Promise<Answer> {
  const notSms = await requireSms(ctx, input.email);
  if (notSms) return notSms;
  return refusable(ctx, input, 'code', async () => {
    const sent = await sendOwnerSmsCode(ctx, { email: input.email, password: input.password, action });
    return ok({ email: canonicalAddress(input.email), phoneMasked: sent.maskedPhone, expiresAt: ms(sent.expiresAt) });
  });
}

export const ROUTES: Readonly<Record<string, Route>> = {
  '/v1/requires-code': route(EmailOnly, async (input, ctx) => {
    const summary = await factorSummary(ctx, input.email);
    return ok({ email: summary.email, requiresCode: summaryRequiresCode(summary) });
  }),

  '/v1/verify': route(Verify, async (input, ctx) => {
    const answer = await verifyCodeAnswer(ctx, input.email, input.code);
    const body = JSON.parse(JSON.stringify(answer)) as Record<string, unknown>;
    switch (answer.outcome) {
      case 'accepted':
      case 'rejected':
        return { status: 200, body, outcome: answer.outcome === 'rejected' ? `rejected:${answer.reason}` : 'accepted' };
      case 'locked':
        return {
          status: 429,
          body: { ...body, error: { code: 'locked', message: answer.message } },
          outcome: 'locked',
        };
      case 'malformed': {
        const field = isAddress(input.email) ? 'code' : 'email';
        return {
          status: 400,
          body: { ...body, error: { code: 'bad_request', field, message: answer.message } },
          outcome: 'malformed',
        };
      }
      case 'unknown_account':
        return {
          status: 404,
          body: { ...body, error: { code: 'unknown_account', message: answer.message } },
          outcome: 'unknown_account',
        };
    }
  }),

  '/v1/send-code': route(SendCode, async (input, ctx) =>
    refusable(ctx, input, 'code', async () => {
      const sent = await sendSignInCode(ctx, { email: input.email });
      return ok({ email: sent.email, phoneMasked: sent.phone, expiresAt: ms(sent.expiresAt) });
    }),
  ),

  '/v1/enrol/start': route(
    EnrolStart,
    async (input, ctx) =>
      refusable(ctx, input, 'currentCode', async () => {
        let started;
        try {
          started = await startEnrolment(ctx, {
            email: input.email,
            password: input.password,
            method: input.method === 'sms' ? 'sms' : 'totp',
            phone: input.phone,
            currentCode: input.currentCode,
          });
        } catch (err) {
          // The only usage error of a start without `force`: customer service's temporary code is pending.
          if (err instanceof Mail2faError && err.code === 'usage')
            return errorAnswer(409, 'current_code_required', err.message);
          throw err;
        }
        const base = {
          email: started.email,
          method: started.method,
          enrolmentId: started.enrolmentId,
          expiresAt: ms(started.expiresAt),
        };
        if (started.totp) {
          return ok(
            {
              ...base,
              otpauthUri: started.totp.otpauthUri,
              secretGroups: formatSecretForManualEntry(started.totp.secret).split(' '),
              qrSvg: await qrSvg(started.totp.otpauthUri),
            },
            'started',
          );
        }
        return ok({ ...base, phoneMasked: started.sms?.phone ?? null }, 'started');
      }),
    'currentCode',
  ),

  '/v1/enrol/confirm': route(EnrolConfirm, async (input, ctx) =>
    refusable(ctx, input, 'code', async () => {
      const done = await confirmEnrolment(ctx, {
        email: input.email,
        code: input.code,
        enrolmentId: input.enrolmentId,
      });
      return ok(
        {
          email: done.email,
          method: done.method,
          phoneMasked: done.phone,
          recoveryCodes: done.recoveryCodes,
          sessionsRevokedAt: ms(done.sessionsRevokedAt),
        },
        'enabled',
      );
    }),
  ),

  '/v1/disable': route(PasswordAndCode, async (input, ctx) => {
    const parsed = parseCodeInput(input.code);
    return refusable(ctx, input, 'code', async () => {
      const result = await disableTwoFactor(ctx, { email: input.email, password: input.password, code: parsed });
      if (!result.changed) return ok({ email: result.email, changed: false }, 'unchanged');
      return ok(
        {
          email: result.email,
          changed: true,
          method: result.method,
          codeKind: result.codeKind,
          sessionsRevokedAt: ms(result.sessionsRevokedAt),
        },
        'disabled',
      );
    });
  }),

  '/v1/disable/send-code': route(PasswordOnly, async (input, ctx) => sendOwnerCode(ctx, input, 'disable')),

  '/v1/recovery-codes/send-code': route(PasswordOnly, async (input, ctx) =>
    sendOwnerCode(ctx, input, 'codes-regenerate'),
  ),

  '/v1/recovery-codes/regenerate': route(PasswordAndCode, async (input, ctx) => {
    const parsed = parseCodeInput(input.code);
    return refusable(ctx, input, 'code', async () => {
      const result = await regenerateRecoveryCodes(ctx, { email: input.email, password: input.password, code: parsed });
      return ok(
        {
          email: result.email,
          method: result.method,
          codeKind: result.codeKind,
          recoveryCodes: result.recoveryCodes,
          createdAt: ms(result.createdAt),
        },
        'regenerated',
      );
    });
  }),

  '/v1/status': route(EmailOnly, async (input, ctx) => {
    const address = canonicalAddress(input.email);
    const row = await statusRow(ctx, address);
    if (!row || row.state === 'unknown') return errorAnswer(404, 'unknown_account', `unknown account: ${address}`);
    if (row.state === 'ambiguous')
      return errorAnswer(409, 'ambiguous_account', row.problem ?? 'more than one mailbox row has this address');
    if (row.state === 'invalid') return badRequest('email', row.problem ?? 'malformed address');
    return ok({
      ...row,
      enrolledAt: ms(row.enrolledAt),
      lastUsedAt: ms(row.lastUsedAt),
      lockedUntil: ms(row.lockedUntil),
      temporaryCode: row.temporaryCode && { ...row.temporaryCode, expiresAt: ms(row.temporaryCode.expiresAt) },
    });
  }),

  '/v1/sessions-revoked-at': route(EmailOnly, async (input, ctx) => {
    const mailbox = await (await ctx.accounts()).findExact(canonicalAddress(input.email));
    const at = await sessionsRevokedAt(ctx, mailbox.email);
    return ok({
      email: mailbox.email,
      sessionsRevokedAt: at,
      sessionsRevokedAtMs: at === null ? null : Date.parse(at),
    });
  }),
};

function isAddress(input: string): boolean {
  try {
    canonicalAddress(input);
    return true;
  } catch {
    return false;
  }
}

/** Validates the body against the route's schema: the first problem, naming its field. */
export function parseBody(spec: Route, body: unknown): { input: unknown } | { answer: Answer } {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return { answer: badRequest(undefined, 'the body must be a JSON object') };
  const parsed = spec.schema.safeParse(body);
  if (parsed.success) return { input: parsed.data };
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const key = String(issue.keys[0]);
    return { answer: badRequest(key, `unknown field "${key.slice(0, 64)}"`) };
  }
  const field = issue.path.map(String).join('.');
  const missing = issue.code === 'invalid_type' && (body as Record<string, unknown>)[field] === undefined;
  return { answer: badRequest(field, missing ? `"${field}" is required` : `"${field}" ${issue.message}`) };
}

export async function runRoute(spec: Route, input: unknown, ctx: Context): Promise<Answer> {
  try {
    return await spec.handle(input as never, ctx);
  } catch (err) {
    return answerForError(err, spec.codeField);
  }
}
