/**
 * SMS transports: `outbox` (appends to a local file: the development/test stand-in for a gateway), `webhook`
 * (POST of JSON {to, text}) and `twilio` (Twilio's Messages API). Gateway failures are exit 69, missing credentials
 * exit 78. No error message ever holds the text, the code, the full number or a credential.
 */
import { constants as fsConstants, existsSync, readFileSync } from 'node:fs';
import { access, mkdir, open, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config.js';
import { configError, dataError, unavailable } from '../errors.js';
import { maskPhone } from './phone.js';

export type SmsTransport = 'outbox' | 'webhook' | 'twilio';

export interface SmsMessage {
  /** E.164, e.g. "+4520123456" */
  to: string;
  text: string;
}

export interface SmsDelivery {
  transport: SmsTransport;
  /** The outbox file the message was appended to, for the "written to …" message. */
  where?: string;
}

export interface SmsSender {
  readonly transport: SmsTransport;
  send(message: SmsMessage): Promise<SmsDelivery>;
  /** For `doctor`: checks the gateway is configured and reachable, without sending a message. */
  check(): Promise<{ ok: boolean; detail: string }>;
}

export interface SmsSenderOptions {
  /** Where the default outbox lives. */
  dataDir: string;
  env?: NodeJS.ProcessEnv;
}

/** The SMS body: the issuer, the code and how long it is valid; nothing else. */
export function smsText(issuer: string, code: string): string {
  return `Your ${issuer} verification code is ${code}. It expires in 10 minutes.`;
}

const GATEWAY_HINT =
  'Check that the SMS gateway is up and the sms settings of the config file (`mail2fa doctor` checks both), then retry.';

export function createSmsSender(sms: Config['sms'], opts: SmsSenderOptions): SmsSender {
  const env = opts.env ?? process.env;
  switch (sms.transport) {
    case 'outbox':
      return outboxSender(resolve(sms.outbox.path ?? join(opts.dataDir, 'sms-outbox.ndjson')));
    case 'webhook':
      return webhookSender(sms, env);
    case 'twilio':
      return twilioSender(sms, env);
    default:
      throw configError(
        'config_invalid',
        `unknown SMS transport "${String(sms.transport)}"`,
        'Set sms.transport to outbox, webhook or twilio.',
      );
  }
}

function assertE164(to: string): void {
  if (!/^\+[1-9][0-9]{5,14}$/.test(to))
    throw dataError('bad_phone', 'cannot send an SMS: the recipient is not an E.164 phone number');
}

// ---------------------------------------------------------------------------------------------------------------
// outbox

function outboxSender(path: string): SmsSender {
  return {
    transport: 'outbox',
    async send(message) {
      assertE164(message.to);
      const line = `${JSON.stringify({ at: new Date().toISOString(), to: message.to, text: message.text })}\n`;
      try {
        await mkdir(dirname(path), { recursive: true, mode: 0o700 });
        // 0600: the outbox holds codes. O_APPEND keeps concurrent writers' lines whole.
        const file = await open(path, 'a', 0o600);
        try {
          const { mode } = await file.stat();
          if (mode & 0o077) await file.chmod(0o600);
          await file.appendFile(line, 'utf8');
        } finally {
          await file.close();
        }
      } catch (err) {
        throw unavailable(
          'sms_unavailable',
          `cannot write the SMS outbox ${path}: ${errnoCode(err)}`,
          'Check sms.outbox.path (or MAIL2FA_HOME) and its permissions.',
        );
      }
      return { transport: 'outbox', where: path };
    },
    async check() {
      // The nearest existing directory must be writable: missing ones are created on the first send.
      let dir = dirname(path);
      while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
      try {
        if (!(await stat(dir)).isDirectory())
          return { ok: false, detail: `outbox ${path} cannot be created: ${dir} is not a directory` };
        await access(dir, fsConstants.W_OK | fsConstants.X_OK);
        if (existsSync(path)) await access(path, fsConstants.W_OK);
      } catch (err) {
        return { ok: false, detail: `outbox ${path} is not writable (${errnoCode(err)})` };
      }
      return { ok: true, detail: `outbox: messages are appended to ${path} (no SMS is sent)` };
    },
  };
}

function errnoCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? 'error';
}

// ---------------------------------------------------------------------------------------------------------------
// credentials: environment wins over the config file; a value wins over a _FILE path at the same level

interface Secret {
  value: string;
  /** Where it came from, for messages (never the value). */
  source: string;
}

function readSecret(
  env: NodeJS.ProcessEnv,
  envName: string,
  configValue: string | undefined,
  configFile: string | undefined,
  configName: string,
): Secret | undefined {
  const candidates: Array<{ value?: string; file?: string; source: string }> = [
    { value: env[envName] || undefined, source: envName },
    { file: env[`${envName}_FILE`] || undefined, source: `${envName}_FILE` },
    { value: configValue || undefined, source: configName },
    { file: configFile || undefined, source: `${configName}File` },
  ];
  for (const candidate of candidates) {
    if (candidate.value !== undefined) return { value: candidate.value.trim(), source: candidate.source };
    if (candidate.file !== undefined) {
      let text: string;
      try {
        text = readFileSync(resolve(candidate.file), 'utf8');
      } catch (err) {
        throw configError(
          'config_invalid',
          `cannot read ${candidate.source} (${candidate.file}): ${errnoCode(err)}`,
          `Check the file named by ${candidate.source}.`,
        );
      }
      const value = text.trim();
      if (!value)
        throw configError(
          'config_invalid',
          `${candidate.source} (${candidate.file}) is empty`,
          `Put the secret in the file named by ${candidate.source}.`,
        );
      return { value, source: `${candidate.source} (${candidate.file})` };
    }
  }
  return undefined;
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

interface AuthHeader {
  name: string;
  value: string;
  source: string;
}

/** "Name: value"; never echoes the value (nor a would-be name, which may be a pasted token). */
function parseAuthHeader(secret: Secret): AuthHeader {
  const colon = secret.value.indexOf(':');
  const name = colon > 0 ? secret.value.slice(0, colon).trim() : '';
  const value = colon > 0 ? secret.value.slice(colon + 1).trim() : '';
  if (!HEADER_NAME.test(name) || !value || /[\r\n\0]/.test(value)) {
    throw configError(
      'config_invalid',
      `${secret.source}: expected an HTTP header "Name: value", e.g. "Authorization: Bearer …"`,
      'Fix the webhook auth header setting.',
    );
  }
  return { name, value, source: secret.source };
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

/** scheme://host[:port] only: a URL's path or query may carry a token. */
function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

/** Turns a fetch failure (timeout, refused, DNS, TLS) into exit 69 with a reason, never the request. */
function networkError(err: unknown, what: string, url: string, timeoutMs: number) {
  const name = (err as { name?: string } | undefined)?.name;
  const code = causeCode(err);
  let reason: string;
  if (
    name === 'TimeoutError' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'ETIMEDOUT'
  ) {
    reason = `no answer within ${timeoutMs} ms (sms.timeoutMs)`;
  } else if (code === 'ECONNREFUSED') {
    reason = 'connection refused';
  } else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    reason = 'host name not found (DNS)';
  } else if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    reason = 'the connection was closed by the gateway';
  } else if (code && /CERT|SSL|TLS|SELF_SIGNED/i.test(code)) {
    reason = `TLS certificate problem (${code})`;
  } else {
    reason = code ? `network error (${code})` : 'network error';
  }
  return unavailable('sms_unavailable', `${what}: SMS gateway ${origin(url)} unreachable: ${reason}`, GATEWAY_HINT);
}

function causeCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: unknown; errors?: Array<{ code?: unknown }> } } | undefined)?.cause;
  const code = cause?.code ?? cause?.errors?.find((e) => typeof e?.code === 'string')?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A request with the configured timeout; redirects are not followed (they could carry credentials elsewhere). */
async function request(url: string, init: RequestInit, timeoutMs: number, what: string): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw networkError(err, what, url, timeoutMs);
  }
}

/** Reads (or discards) the body within the timeout; a timeout while reading is still a gateway failure. */
async function readBody(res: Response, what: string, url: string, timeoutMs: number): Promise<string> {
  try {
    return await res.text();
  } catch (err) {
    throw networkError(err, what, url, timeoutMs);
  }
}

/** The status code only: a gateway's reason phrase could quote what it was sent. */
function statusText(res: Response): string {
  return `HTTP ${res.status}`;
}

// ---------------------------------------------------------------------------------------------------------------
// webhook

function webhookSender(sms: Config['sms'], env: NodeJS.ProcessEnv): SmsSender {
  const url = sms.webhook.url;
  const timeoutMs = sms.timeoutMs;
  const header = (): AuthHeader | undefined => {
    const secret = readSecret(
      env,
      'MAIL2FA_SMS_WEBHOOK_AUTH_HEADER',
      sms.webhook.authHeader,
      sms.webhook.authHeaderFile,
      'sms.webhook.authHeader',
    );
    return secret ? parseAuthHeader(secret) : undefined;
  };
  const needUrl = (): string => {
    if (!url)
      throw configError(
        'config_invalid',
        'sms.webhook.url: required when sms.transport is "webhook"',
        'Set sms.webhook.url in the config file.',
      );
    return url;
  };
  return {
    transport: 'webhook',
    async send(message) {
      assertE164(message.to);
      const target = needUrl();
      const auth = header();
      const what = `cannot send the SMS to ${maskPhone(message.to)}`;
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        accept: 'application/json, text/plain, */*',
      };
      if (auth) headers[auth.name] = auth.value;
      const res = await request(
        target,
        { method: 'POST', headers, body: JSON.stringify({ to: message.to, text: message.text }) },
        timeoutMs,
        what,
      );
      // The body may echo the number or the text: read it to free the connection, never show it.
      await readBody(res, what, target, timeoutMs);
      if (res.status < 200 || res.status > 299) {
        throw unavailable(
          'sms_unavailable',
          `${what}: SMS gateway ${origin(target)} answered ${statusText(res)}`,
          hintForStatus(res.status, 'the webhook auth header'),
        );
      }
      return { transport: 'webhook' };
    },
    async check() {
      let target: string;
      let auth: AuthHeader | undefined;
      try {
        target = needUrl();
        auth = header();
      } catch (err) {
        return { ok: false, detail: (err as Error).message };
      }
      const headers: Record<string, string> = {};
      if (auth) headers[auth.name] = auth.value;
      try {
        const res = await request(target, { method: 'HEAD', headers }, timeoutMs, 'webhook');
        await res.body?.cancel().catch(() => undefined);
        // Any answer means reachable (HEAD on a POST endpoint is often 404/405), except a refused credential.
        if (res.status === 401 || res.status === 403) {
          return {
            ok: false,
            detail: `webhook ${origin(target)} reachable but answered ${statusText(res)}: check the auth header${auth ? '' : ' (none configured)'}`,
          };
        }
        return {
          ok: true,
          detail: `webhook ${origin(target)} reachable (HEAD answered ${statusText(res)})${auth ? `, auth header from ${auth.source}` : ''}`,
        };
      } catch (err) {
        return { ok: false, detail: (err as Error).message };
      }
    },
  };
}

function hintForStatus(status: number, credential: string): string {
  if (status === 401 || status === 403) return `The gateway refused the credentials: check ${credential}.`;
  if (status === 429) return 'The gateway is rate limiting: retry later.';
  return GATEWAY_HINT;
}

// ---------------------------------------------------------------------------------------------------------------
// twilio

function twilioSender(sms: Config['sms'], env: NodeJS.ProcessEnv): SmsSender {
  const { baseUrl, accountSid, from } = sms.twilio;
  const timeoutMs = sms.timeoutMs;
  const base = baseUrl.replace(/\/+$/, '');
  const credentials = (): { sid: string; authorization: string } => {
    if (!accountSid)
      throw configError(
        'config_invalid',
        'sms.twilio.accountSid: required when sms.transport is "twilio"',
        'Set sms.twilio.accountSid in the config file.',
      );
    const token = readSecret(
      env,
      'MAIL2FA_TWILIO_AUTH_TOKEN',
      sms.twilio.authToken,
      sms.twilio.authTokenFile,
      'sms.twilio.authToken',
    );
    if (!token) {
      throw configError(
        'config_invalid',
        'no Twilio auth token configured',
        'Set MAIL2FA_TWILIO_AUTH_TOKEN or MAIL2FA_TWILIO_AUTH_TOKEN_FILE, or sms.twilio.authTokenFile in the config file.',
      );
    }
    return {
      sid: accountSid,
      authorization: `Basic ${Buffer.from(`${accountSid}:${token.value}`).toString('base64')}`,
    };
  };
  const accountUrl = (sid: string) => `${base}/2010-04-01/Accounts/${encodeURIComponent(sid)}`;
  return {
    transport: 'twilio',
    async send(message) {
      assertE164(message.to);
      const { sid, authorization } = credentials();
      if (!from)
        throw configError(
          'config_invalid',
          'sms.twilio.from: required when sms.transport is "twilio"',
          'Set sms.twilio.from (the sending number) in the config file.',
        );
      const url = `${accountUrl(sid)}/Messages.json`;
      const what = `cannot send the SMS to ${maskPhone(message.to)}`;
      const res = await request(
        url,
        {
          method: 'POST',
          headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: new URLSearchParams({ To: message.to, From: from, Body: message.text }).toString(),
        },
        timeoutMs,
        what,
      );
      const body = await readBody(res, what, url, timeoutMs);
      if (res.status < 200 || res.status > 299) {
        // Twilio's error JSON has a numeric `code` (safe to show) and a `message` that may quote the number (not shown).
        const twilioCode = twilioErrorCode(body);
        const detail = twilioCode
          ? ` (Twilio error ${twilioCode}, https://www.twilio.com/docs/errors/${twilioCode})`
          : '';
        throw unavailable(
          'sms_unavailable',
          `${what}: Twilio ${origin(url)} answered ${statusText(res)}${detail}`,
          hintForStatus(res.status, 'sms.twilio.accountSid and the auth token'),
        );
      }
      return { transport: 'twilio' };
    },
    async check() {
      let creds: { sid: string; authorization: string };
      try {
        creds = credentials();
        if (!from) throw configError('config_invalid', 'sms.twilio.from: required when sms.transport is "twilio"');
      } catch (err) {
        return { ok: false, detail: (err as Error).message };
      }
      // GET the account resource: proves reachability and the credentials without sending anything.
      const url = `${accountUrl(creds.sid)}.json`;
      try {
        const res = await request(
          url,
          { method: 'GET', headers: { authorization: creds.authorization, accept: 'application/json' } },
          timeoutMs,
          'twilio',
        );
        await readBody(res, 'twilio', url, timeoutMs);
        if (res.status >= 200 && res.status <= 299)
          return { ok: true, detail: `Twilio ${origin(url)} reachable, account credentials accepted` };
        if (res.status === 401 || res.status === 403)
          return {
            ok: false,
            detail: `Twilio ${origin(url)} reachable but refused the credentials (${statusText(res)}): check sms.twilio.accountSid and the auth token`,
          };
        if (res.status === 404)
          return {
            ok: false,
            detail: `Twilio ${origin(url)} reachable but does not know the account (${statusText(res)}): check sms.twilio.accountSid`,
          };
        return { ok: false, detail: `Twilio ${origin(url)} reachable but answered ${statusText(res)}` };
      } catch (err) {
        return { ok: false, detail: (err as Error).message };
      }
    },
  };
}

function twilioErrorCode(body: string): number | undefined {
  try {
    const code = (JSON.parse(body) as { code?: unknown }).code;
    return typeof code === 'number' && Number.isInteger(code) && code > 0 ? code : undefined;
  } catch {
    return undefined;
  }
}
