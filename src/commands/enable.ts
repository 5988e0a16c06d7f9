/**
 * `mail2fa enable <email>`: the user's enrolment, interactive on a terminal, or in two steps for scripts
 * and web front ends (`--start`, then `--confirm`). Heavy modules (prompts, QR, TOTP, phone numbers) load only
 * when the command runs.
 */
import { Command, Option } from 'commander';
import type { Context } from '../context.js';
import { withContext } from '../context.js';
import type { CompletedEnrolment, FactorMethod, StartedEnrolment } from '../core/enrolment.js';
import { usageError } from '../errors.js';
import type { Output } from '../ui/output.js';
import { ENABLE_METHODS, enableInput, type EnableInput } from './inputs/enable.js';
import { parseInput } from './inputs/parse.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

/** The interactive flow without a terminal: what it would have needed the terminal for, and the two-step form. */
function noTerminal(method: FactorMethod): Error {
  const what =
    method === 'sms'
      ? 'ask for the password, the phone number and the texted code'
      : 'show the QR code and ask for the password and the codes';
  const phone = method === 'sms' ? ' --method sms --phone 011-45-20123456' : '';
  return usageError(
    `enable needs an interactive terminal to ${what} (prompts are off with --json and without a TTY)`,
    `Use the two-step form: printf "%s" "$PASSWORD" | mail2fa enable EMAIL${phone} --start --password-stdin --json, then mail2fa enable EMAIL --confirm --code CODE --json`,
  );
}

export function enableCommand(): Command {
  return new Command('enable')
    .description('turn two-factor authentication on for a mailbox: authenticator app (QR code) or SMS')
    .argument('<email>', 'the mailbox address')
    .addOption(new Option('--method <method>', 'app (authenticator app, the default) or sms').choices(ENABLE_METHODS))
    .option(
      '--phone <number>',
      'for sms: 011-<country code>-<number> (e.g. 011-45-20123456) or +<country code><number>',
    )
    .option('--password-stdin', 'read the current password from standard input (with --start)')
    .option(
      '--force',
      'replace an existing factor (the old one stays until the new one is confirmed); needs --current-code',
    )
    .option(
      '--current-code <code>',
      "when 2FA is already required: a code of the current factor (app, SMS or recovery code), or customer service's temporary code",
    )
    .option('--start', 'two-step form, step 1: check the password and start a pending enrolment (valid 10 minutes)')
    .option('--confirm', 'two-step form, step 2: confirm the pending enrolment with a code')
    .option('--code <code>', 'with --confirm: the 6-digit code (else read from stdin, or asked for on a terminal)')
    .option('--enrolment <id>', 'with --confirm/--cancel: act only on this pending enrolment (the id --start printed)')
    .option('--cancel', 'drop the pending enrolment; nothing else changes')
    .option('--store <name>', 'the store to enrol into (default: mail2fa, the first writable one; see docs/stores.md)')
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa enable jane@example.com                       # authenticator app: password, QR code, code',
        'mail2fa enable jane@example.com --method sms --phone 011-45-20123456',
        '',
        '# two steps, without a terminal (web front ends, scripts):',
        'printf "%s" "$PASSWORD" | mail2fa enable jane@example.com --start --password-stdin --json',
        '    # → {"ok":true,"enrolmentId":"…","otpauthUri":"otpauth://totp/…","secret":"…","expiresAt":"…",…}',
        'mail2fa enable jane@example.com --confirm --code 123456 --json',
        '    # → {"ok":true,"method":"totp","recoveryCodes":["…",…],"sessionsRevokedAt":"…",…}',
        'printf "%s" "$PASSWORD" | mail2fa enable jane@example.com --method sms --phone +4520123456 --start --password-stdin',
        'echo 123456 | mail2fa enable jane@example.com --confirm',
        'mail2fa enable jane@example.com --cancel',
        '',
        '# replace an authenticator app with SMS (after the password check):',
        'mail2fa enable jane@example.com --force --current-code 123456 --method sms --phone 011-45-20123456',
      ]),
    )
    .action(
      action(async (email: string, _flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, enableInput, { email });
        const { mode, method } = input;
        const out = makeOutput(input);
        const needsTerminal = mode === 'interactive' && !out.interactive;
        if (mode === 'start' && !out.interactive) {
          // Refused before the database is touched: without a terminal nothing can be asked.
          if (!input.passwordStdin)
            (await import('../ui/prompts.js')).requireTerminal(out, 'asking for the password', '--password-stdin');
          if (method === 'sms' && input.phone === undefined)
            throw usageError(
              '--method sms needs --phone without a terminal',
              'Example: --phone 011-45-20123456 (or +4520123456)',
            );
        }
        return withContext(contextOptions(input), async (ctx) => {
          if (needsTerminal) {
            // A refusal the terminal would not change (inactive, already enabled: 65) is said first, and audited
            // by the preflight; otherwise nothing is read or written beyond the lookup.
            const core = await import('../core/enrolment.js');
            const target = { email: input.email, force: input.force, store: input.store };
            if (await core.enrolmentWouldBeRefused(ctx, target)) await core.enrolmentPreflight(ctx, target);
            throw noTerminal(method);
          }
          try {
            if (mode === 'start') await start(ctx, out, input);
            else if (mode === 'confirm') await confirm(ctx, out, input);
            else if (mode === 'cancel') await cancel(ctx, out, input);
            else await interactive(ctx, out, input);
          } finally {
            for (const n of ctx.notices) out.note(n);
          }
        });
      }),
    );
}

async function readPassword(out: Output, input: EnableInput): Promise<string> {
  return (await import('./owner-input.js')).readPassword(out, input);
}

async function drawQr(out: Output, started: StartedEnrolment): Promise<string> {
  const { renderQrForTerminal } = await import('../totp/qr.js');
  const qr = renderQrForTerminal(started.totp!.otpauthUri, { colour: out.color });
  if (!out.color && out.stdout.isTTY)
    out.note(
      'The QR code is drawn without colours (--no-color / NO_COLOR): on a dark terminal theme it may not scan; then type the key below.',
    );
  const width = qr.split('\n')[0]!.replace(/\x1b\[[0-9;]*m/g, '').length;
  const columns = (out.stdout as { columns?: number }).columns;
  if (typeof columns === 'number' && columns > 0 && columns < width)
    out.note(
      `warning: the terminal is ${columns} columns wide, the QR code needs ${width}: widen the window (or type the key by hand)`,
    );
  return qr;
}

async function showStarted(out: Output, started: StartedEnrolment): Promise<void> {
  const render = await import('../ui/enrolment-render.js');
  if (started.totp) await out.write(render.appSetupText(started, await drawQr(out, started)));
  else if (started.sms)
    await out.write((await import('../ui/sms-render.js')).smsSentText(started.sms, 'A confirmation code'));
}

async function start(ctx: Context, out: Output, input: EnableInput): Promise<void> {
  const { email, method } = input;
  const core = await import('../core/enrolment.js');
  if (!input.passwordStdin) await core.enrolmentPreflight(ctx, { email, force: input.force, store: input.store });
  const password = await readPassword(out, input);
  const phone = method === 'sms' ? (input.phone ?? (await askPhone(out))) : undefined;
  const started = await core.startEnrolment(ctx, {
    email,
    password,
    method,
    phone,
    force: input.force,
    currentCode: input.currentCode,
    store: input.store,
  });
  if (out.json) {
    await out.document({
      ok: true,
      email: started.email,
      enrolmentId: started.enrolmentId,
      method: started.method,
      expiresAt: started.expiresAt,
      replacing: started.replacing,
      ...(started.totp
        ? {
            otpauthUri: started.totp.otpauthUri,
            secret: started.totp.secret,
            issuer: started.totp.issuer,
            label: started.totp.label,
          }
        : {}),
      ...(started.sms ? { phone: started.sms.phone, sms: started.sms.delivery } : {}),
      ...(started.store ? { store: started.store } : {}),
    });
    return;
  }
  await showStarted(out, started);
  await out.write((await import('../ui/enrolment-render.js')).confirmHint(started));
}

async function readCode(out: Output, input: EnableInput): Promise<string> {
  if (input.code !== undefined) return input.code;
  const prompts = await import('../ui/prompts.js');
  if (out.interactive) return askCode(out);
  if (process.stdin.isTTY)
    throw usageError(
      'no code given',
      'Give it with --code CODE, or on standard input: echo 123456 | mail2fa enable EMAIL --confirm',
    );
  return prompts.readSecretFromStdin('--confirm');
}

async function confirm(ctx: Context, out: Output, input: EnableInput): Promise<void> {
  const { email } = input;
  const { confirmEnrolment } = await import('../core/enrolment.js');
  const code = await readCode(out, input);
  const done = await confirmEnrolment(ctx, { email, code, enrolmentId: input.enrolment, store: input.store });
  await showCompleted(out, done);
}

async function showCompleted(out: Output, done: CompletedEnrolment): Promise<void> {
  if (out.json) {
    await out.document({ ok: true, ...done });
    return;
  }
  await out.write((await import('../ui/enrolment-render.js')).completedText(done));
}

async function cancel(ctx: Context, out: Output, input: EnableInput): Promise<void> {
  const { email } = input;
  const { cancelEnrolment } = await import('../core/enrolment.js');
  const result = await cancelEnrolment(ctx, { email, enrolmentId: input.enrolment });
  if (out.json) await out.document({ ok: true, ...result });
  else
    await out.line(
      result.cancelled
        ? `The pending enrolment of ${result.email} was cancelled; nothing else changed.`
        : `No enrolment${input.enrolment ? ` ${input.enrolment}` : ''} is pending for ${result.email}; nothing changed.`,
    );
}

async function askPhone(out: Output): Promise<string> {
  const [{ promptInput }, { parsePhone }] = await Promise.all([import('../ui/prompts.js'), import('../sms/phone.js')]);
  return promptInput(out, 'Phone number (e.g. 011-45-20123456):', '--phone', (value) => {
    try {
      parsePhone(value);
      return true;
    } catch (err) {
      return (err as Error).message;
    }
  });
}

async function askCode(out: Output): Promise<string> {
  const [{ promptInput }, { isWellFormedCode }] = await Promise.all([
    import('../ui/prompts.js'),
    import('../totp/totp.js'),
  ]);
  // Malformed input is asked again without counting as a try; the core checks strictly anyway.
  return promptInput(
    out,
    'Confirmation code:',
    '--confirm --code CODE',
    (value) => isWellFormedCode(value) || 'type the 6 digits, nothing else (no spaces)',
  );
}

/** The enrolment flow on a terminal: password, QR code or text message, code (3 tries), recovery codes. */
async function interactive(ctx: Context, out: Output, input: EnableInput): Promise<void> {
  const { email, method } = input;
  const core = await import('../core/enrolment.js');
  await out.line(
    `Enable two-factor authentication for ${email} (${method === 'totp' ? 'authenticator app' : 'text message'}).`,
  );
  const pre = await core.enrolmentPreflight(ctx, { email, force: input.force, store: input.store });
  if (pre.replacing)
    await out.line(
      `(--force: the current ${core.methodLabel(pre.replacing)} factor stays until the new one is confirmed.)`,
    );
  const password = await readPassword(out, input);
  let currentCode = input.currentCode;
  if (pre.currentCode && currentCode === undefined) {
    const { promptInput } = await import('../ui/prompts.js');
    currentCode = await promptInput(
      out,
      pre.currentCode === 'temporary'
        ? 'Temporary access code from customer service:'
        : 'Current code (app, SMS or recovery code):',
      '--current-code CODE',
    );
  }
  const phone = method === 'sms' ? (input.phone ?? (await askPhone(out))) : undefined;
  const started = await core.startEnrolment(ctx, {
    email,
    password,
    method,
    phone,
    force: input.force,
    currentCode,
    store: input.store,
  });
  let done: CompletedEnrolment | undefined;
  try {
    await out.line();
    await showStarted(out, started);
    await out.line(
      method === 'totp'
        ? '\nType the 6-digit code the app shows for this account.'
        : '\nType the code from the text message.',
    );
    while (!done) {
      const code = await askCode(out);
      try {
        done = await core.confirmEnrolment(ctx, { email, code, enrolmentId: started.enrolmentId, store: input.store });
      } catch (err) {
        if ((err as { code?: string }).code !== 'wrong_code') throw err;
        out.note((err as Error).message);
      }
    }
  } catch (err) {
    // Cancelled at the prompt, or any failure: the pending enrolment goes too (best effort; it expires anyway).
    await core.cancelEnrolment(ctx, { email, enrolmentId: started.enrolmentId }).catch(() => {});
    throw err;
  }
  await showCompleted(out, done);
}
