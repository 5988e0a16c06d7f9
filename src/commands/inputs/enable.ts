/** `enable`: the flag combinations of the interactive flow and of the two-step form (--start, --confirm, --cancel). */
import * as z from 'zod/mini';
import { dataError, usageError } from '../../errors.js';
import { GLOBALS, flag, resolve, rule, text } from './parse.js';

export const ENABLE_METHODS = ['app', 'sms'] as const;

const flags = z.object({
  email: z.string(),
  method: z.optional(z.enum(ENABLE_METHODS)),
  phone: text(),
  passwordStdin: flag(),
  force: flag(),
  currentCode: text(),
  start: flag(),
  confirm: flag(),
  cancel: flag(),
  code: text(),
  enrolment: text(),
  store: text(),
  ...GLOBALS,
});
type Flags = z.output<typeof flags>;

const STEPS = ['start', 'confirm', 'cancel'] as const;
const steps = (f: Flags) => STEPS.filter((step) => f[step]);
type Mode = 'interactive' | (typeof STEPS)[number];
const modeOf = (f: Flags): Mode => steps(f)[0] ?? 'interactive';

/** Flags that only starting an enrolment takes; --store goes with --confirm too (where the factor is written). */
function startOnly(flagSet: Flags, mode: Mode): string[] {
  if (mode !== 'confirm' && mode !== 'cancel') return [];
  const given = [
    flagSet.method !== undefined && '--method',
    flagSet.phone !== undefined && '--phone',
    flagSet.passwordStdin && '--password-stdin',
    flagSet.force && '--force',
    flagSet.currentCode !== undefined && '--current-code',
    mode === 'cancel' && flagSet.store !== undefined && '--store',
  ];
  return given.filter((name): name is string => Boolean(name));
}

export const enableInput = z.pipe(
  flags.check(
    rule((f) => (steps(f).length > 1 ? usageError(`--${steps(f).join(' and --')} exclude each other`) : undefined)),
    rule((f) => {
      const names = startOnly(f, modeOf(f));
      return names.length
        ? usageError(`${names.join(', ')}: only when starting (the pending enrolment already knows them)`)
        : undefined;
    }),
    rule((f) =>
      f.code !== undefined && !f.confirm
        ? usageError('--code goes with --confirm', 'Example: mail2fa enable jane@example.com --confirm --code 123456')
        : undefined,
    ),
    rule((f) =>
      f.enrolment !== undefined && !f.confirm && !f.cancel
        ? usageError('--enrolment goes with --confirm or --cancel')
        : undefined,
    ),
    rule((f) =>
      f.enrolment !== undefined && !/^[0-9a-f]{24}$/.test(f.enrolment)
        ? dataError(
            'bad_enrolment_id',
            'malformed enrolment id',
            'Use the enrolmentId that --start printed (24 hex digits).',
          )
        : undefined,
    ),
    rule((f) => (f.method === 'app' && f.phone !== undefined ? usageError('--phone is for --method sms') : undefined)),
    rule((f) =>
      modeOf(f) === 'interactive' && f.passwordStdin
        ? usageError(
            '--password-stdin goes with --start: the interactive flow reads the password and the code from the terminal',
            'Two steps without a terminal: … --start --password-stdin, then … --confirm --code CODE',
          )
        : undefined,
    ),
  ),
  resolve((flagSet: Flags) => {
    const { start: _start, confirm: _confirm, cancel: _cancel, method, ...rest } = flagSet;
    // --phone alone means SMS.
    const sms = method === 'sms' || (method === undefined && rest.phone !== undefined);
    return { ...rest, mode: modeOf(flagSet), method: sms ? ('sms' as const) : ('totp' as const) };
  }),
);
export type EnableInput = z.output<typeof enableInput>;
