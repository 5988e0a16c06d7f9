/** What `recover` shows the agent: the account's 2FA summary before confirming, then the result and the reply. */
import type { RecoveryDone, NothingToRecover, RecoveryResult, RecoverySummary } from '../core/recover.js';
import { escapeControl } from '../text.js';
import { customerReply, recoveredReply } from './customer-reply-render.js';

const LABEL_WIDTH = 22;
const label = (name: string, value: string) => `  ${name.padEnd(LABEL_WIDTH - 2)}${value}`;
const attempts = (n: number) => `${n} wrong attempt${n === 1 ? '' : 's'}`;

/**
 * Wraps one line at `width` on word boundaries (a terminal would cut words mid-way); continuation lines are
 * indented by `hang`. A word longer than the room left is cut, as nothing else can be done.
 */
export function wrapLine(line: string, width: number, hang: number): string {
  if (line.length <= width) return line;
  const indent = ' '.repeat(Math.min(hang, Math.floor(width / 2)));
  const lead = /^\s*/.exec(line)![0];
  const out: string[] = [];
  let current = lead;
  let empty = true;
  for (const word of line.slice(lead.length).split(/ +/)) {
    let rest = word;
    while (true) {
      const sep = empty ? '' : ' ';
      if (current.length + sep.length + rest.length <= width) {
        current += sep + rest;
        empty = false;
        break;
      }
      if (!empty) {
        out.push(current);
        current = indent;
        empty = true;
        continue;
      }
      // An empty line and still too long: cut the word.
      const room = width - current.length;
      out.push(current + rest.slice(0, room));
      rest = rest.slice(room);
      current = indent;
    }
  }
  out.push(current);
  return out.join('\n');
}

/** Wraps every line of `text` (already escaped) when a terminal width is given; plain text otherwise. */
function fit(text: string, width: number | undefined, hang: (line: string) => number = () => 0): string {
  if (!width) return text;
  const room = Math.max(width, 40);
  return text
    .split('\n')
    .map((l) => wrapLine(l, room, hang(l)))
    .join('\n');
}
const labelHang = (l: string) => (l.startsWith('  ') ? LABEL_WIDTH : 0);

function twoFactorLine(summary: RecoverySummary): string {
  if (summary.method === 'totp') return 'on: authenticator app';
  if (summary.method === 'sms') return `on: text messages to ${summary.phone ?? '(phone not recorded)'}`;
  if (summary.temporaryCode)
    return `required, no factor: temporary access code ${summary.temporaryCode.state} (expires ${summary.temporaryCode.expiresAt})`;
  return summary.stores.some((v) => v.status?.activated) ? "off in mail2fa's own store" : 'off';
}

/** One line per foreign store: what it holds for the account (no secrets). */
function storeLine(view: RecoverySummary['stores'][number]): string {
  if (view.error) return `could not be read (${view.error.message}); recover will try to reset it`;
  const st = view.status;
  if (!st?.activated) return 'off';
  const factors = st.factors.filter((f) => f.active).map((f) => `${f.kind}${f.weak ? ' (weak secret)' : ''}`);
  const notes = [
    st.enforced ? 'enforced at sign-in' : `not enforced: ${(st.notEnforced ?? []).join('; ')}`,
    ...(st.problems ?? []),
  ];
  return `on: ${factors.join(', ') || 'a factor'}; ${notes.join('; ')}`;
}

/**
 * The summary the agent confirms (no secrets: masked phone, counts only). `width`: the terminal's, to wrap on word
 * boundaries; undefined (not a terminal): no wrapping.
 */
export function summaryText(
  summary: RecoverySummary,
  plan: { ticket: string; reason: string | null; actor: string; temporaryCodeTtlMs: number | null },
  width?: number,
): string {
  const lines = [
    `2FA summary of ${summary.email}`,
    label('mailbox', summary.active ? 'active' : 'INACTIVE (its active flag is off)'),
    label('2FA', twoFactorLine(summary)),
    ...summary.stores.map((v) => label(`store ${v.store}`, `(${v.kind}) ${storeLine(v)}`)),
  ];
  if (summary.method) {
    lines.push(
      label('enrolled', summary.enrolledAt ?? '-'),
      label('last used', summary.lastUsedAt ?? 'never'),
      label('recovery codes left', String(summary.recoveryCodesLeft ?? 0)),
    );
  }
  lines.push(
    label(
      'lock',
      summary.lockedUntil
        ? `LOCKED until ${summary.lockedUntil} (${attempts(summary.failedAttempts)})`
        : summary.failedAttempts
          ? `not locked (${attempts(summary.failedAttempts)} in a row)`
          : 'not locked',
    ),
  );
  if (summary.alternateEmail) lines.push(label('alternate address', summary.alternateEmail));
  lines.push(label('ticket', plan.ticket), label('reason', plan.reason ?? '-'), label('acting as', plan.actor));
  const steps: string[] = [];
  if (summary.method)
    steps.push(`remove the ${summary.method === 'totp' ? 'authenticator app' : 'SMS phone'} and its recovery codes`);
  for (const view of summary.stores) {
    if (!view.error && !view.status?.activated) continue;
    steps.push(
      view.oneLoginBypass && plan.temporaryCodeTtlMs !== null
        ? `let the next sign-in through without a code in store ${view.store} (${view.kind}'s own one-login bypass: its factors stay and are asked for again from the sign-in after)`
        : `reset 2FA in store ${view.store} (${view.kind})`,
    );
  }
  steps.push('delete pending codes and enrolments');
  if (summary.lockedUntil) steps.push('clear the lock');
  else if (summary.failedAttempts) steps.push('reset the count of wrong attempts');
  steps.push('sign the user out everywhere');
  if (plan.temporaryCodeTtlMs !== null)
    steps.push(
      `issue a temporary access code valid for ${humanDuration(plan.temporaryCodeTtlMs)} (2FA stays required)`,
    );
  else steps.push('leave 2FA OFF (the user signs in with the password alone)');
  lines.push('', `This will: ${steps.join('; ')}.`);
  return `${fit(lines.map(escapeControl).join('\n'), width, labelHang)}\n`;
}

export function humanDuration(ms: number): string {
  const units: Array<[number, string]> = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
  ];
  for (const [size, name] of units) if (ms % size === 0) return `${ms / size} ${name}${ms / size === 1 ? '' : 's'}`;
  return `${Math.round(ms / 1000)} seconds`;
}

/** Indents the reply between rulers so the agent sees exactly what to paste. Escaped: it quotes stored values. */
function replyBlock(reply: string, width: number | undefined): string {
  const rule = '-'.repeat(Math.min(72, width ?? 72));
  return `Reply for the customer (copy between the lines):\n${rule}\n${fit(reply.split('\n').map(escapeControl).join('\n'), width)}\n${rule}\n`;
}

/** Per store: what was and was not reset. */
function storeOutcomes(result: RecoveryDone): string {
  return result.stores
    .map(
      (c) =>
        `  ${`store ${c.store}`.padEnd(20)}${c.outcome === 'failed' ? `NOT RESET: ${c.error?.message ?? c.detail}` : c.outcome === 'changed' ? `reset: ${c.detail}` : `nothing to reset (${c.detail})`}`,
    )
    .map(escapeControl) // per line: the lines' own breaks must stay breaks
    .join('\n');
}

export function recoveredText(result: RecoveryDone, width?: number): string {
  if (!result.complete) {
    const failed = result.stores.filter((c) => c.outcome === 'failed').map((c) => c.store);
    const head = `INCOMPLETE recovery of ${result.email} (ticket ${result.ticket}): 2FA was NOT reset in ${failed.join(', ')}; everything else below was done. Sign-in there still asks for a code.`;
    return `${fit(`${escapeControl(head)}\n${storeOutcomes(result)}\n\nRun the same recover command again once ${failed.length === 1 ? 'that store is' : 'those stores are'} reachable: it completes the rest. The reply for the customer is shown when the recovery is complete.`, width, labelHang)}\n`;
  }
  const did = [
    result.removed.method ? `${result.removed.method === 'totp' ? 'authenticator app' : 'SMS phone'} removed` : null,
    ...result.stores
      .filter((c) => c.kind !== 'mail2fa' && c.outcome === 'changed')
      .map((c) => `2FA reset in store ${c.store}`),
    result.removed.method
      ? `${result.removed.recoveryCodes} recovery code${result.removed.recoveryCodes === 1 ? '' : 's'} deleted`
      : null,
    result.removed.challenges
      ? `${result.removed.challenges} pending code${result.removed.challenges === 1 ? '' : 's'} deleted`
      : null,
    result.removed.enrolment ? 'pending enrolment deleted' : null,
    result.lockCleared ? (result.before.lockedUntil ? 'lock cleared' : 'wrong-attempt count reset') : null,
    `sessions revoked at ${result.sessionsRevokedAt}`,
  ].filter((x): x is string => x !== null);
  const head = result.temporaryCode
    ? `Recovered ${result.email} (ticket ${result.ticket}): ${did.join(', ')}. 2FA stays required: a temporary access code was issued, valid until ${result.temporaryCode.expiresAt}; it appears only in the reply below and is never shown again.`
    : `Recovered ${result.email} (ticket ${result.ticket}): ${did.join(', ')}. 2FA is now off for this address.`;
  return `${fit(escapeControl(head), width)}\n${result.stores.length > 1 ? `${fit(storeOutcomes(result), width, labelHang)}\n` : ''}\n${replyBlock(recoveredReply(result), width)}`;
}

export function nothingText(result: NothingToRecover, width?: number): string {
  const head = `Nothing to recover: 2FA is not on for ${result.email}. The lookup was recorded in the audit log (ticket ${result.ticket}).`;
  const reply = customerReply(result);
  return `${fit(escapeControl(head), width)}\n${reply ? `\n${replyBlock(reply, width)}` : ''}`;
}

/**
 * The `recover --json` document: ok unless the recovery is incomplete (then an error naming the stores that were
 * not reset), the result, and the reply for the customer (null while incomplete).
 */
export function recoverDocument(result: RecoveryResult): Record<string, unknown> {
  const incomplete = result.outcome === 'recovered' && !result.complete;
  const failedStores = incomplete ? result.stores.filter((change) => change.outcome === 'failed') : [];
  return {
    ok: !incomplete,
    ...result,
    reply: customerReply(result),
    ...(incomplete
      ? {
          error: {
            code: 'recover_incomplete',
            message: `2FA was not reset in every store: ${failedStores.map((change) => change.store).join(', ')}`,
            hint: 'Run the same recover command again: it completes the rest.',
          },
        }
      : {}),
  };
}
