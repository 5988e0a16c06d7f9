/** Human rendering of a `doctor` report, and its `--json` document. */
import type { Check } from '../core/doctor.js';
import { escapeControl } from '../text.js';

const MARK: Record<Check['status'], string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };
const NAME_WIDTH = 17;
/** Where a check's continuation lines start: under its detail, past the mark and the name. */
const CONTINUATION = `      ${''.padEnd(NAME_WIDTH)} `;

/** The `--json` document: ok when the exit code is 0 (warnings allowed), and every check. */
export function doctorDocument(checks: Check[], exitCode: number): Record<string, unknown> {
  return { ok: exitCode === 0, exitCode, checks };
}

/**
 * One line per check (a multi-line detail continues under itself; a hint follows anything not ok), then a total.
 * Details and hints are escaped: they quote configuration values and server answers.
 */
export function doctorText(checks: Check[]): string {
  const lines: string[] = [];
  for (const check of checks) {
    // Split at the detail's own line breaks, then escape each line: a line break inside a quoted value that the
    // check escaped already (an account name, say) stays on its line as the text `\n`.
    const [first, ...rest] = check.detail.split('\n').map(escapeControl);
    lines.push(`${MARK[check.status]}  ${check.name.padEnd(NAME_WIDTH)} ${first}`);
    for (const line of rest) lines.push(`${CONTINUATION}${line}`);
    if (check.hint && check.status !== 'ok') lines.push(`${CONTINUATION}hint: ${escapeControl(check.hint)}`);
  }
  const failed = checks.filter((check) => check.status === 'fail').length;
  const warned = checks.filter((check) => check.status === 'warn').length;
  lines.push(
    failed
      ? `${failed} check(s) failed, ${warned} warning(s)`
      : `all checks passed${warned ? `, ${warned} warning(s)` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}
