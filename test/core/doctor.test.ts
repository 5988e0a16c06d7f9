/** `doctor` as a library call: it returns a report and never throws, whatever is broken. */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { doctor, doctorExitCode, type Check } from '../../src/core/doctor.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { testEnv } from '../helpers/context.js';

it('doctorExitCode: 0 without failures, 69 when anything is unavailable, else 78', () => {
  const c = (status: Check['status'], exitCode?: number): Check => ({
    name: 'x',
    status,
    detail: '',
    ...(exitCode ? { exitCode } : {}),
  });
  expect(doctorExitCode([c('ok'), c('warn'), c('skip')])).toBe(0);
  expect(doctorExitCode([c('fail', 78)])).toBe(78);
  expect(doctorExitCode([c('fail', 78), c('fail', 69)])).toBe(69);
});

describeEachDb('doctor (library)', (kind) => {
  const scratch = useTestDb(kind);

  it('reports a healthy install, with no stored secret yet to sample', async () => {
    const report = await doctor({ dbUrl: scratch.tdb.url, env: { ...process.env, ...testEnv(scratch.tdb) } });
    expect(doctorExitCode(report.checks)).toBe(0);
    const by = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    expect(by.key!.detail).toMatch(/^key [0-9a-f]{16} from MAIL2FA_KEY \(environment\); no stored secrets yet/);
    expect(by.schema!.status).toBe('ok');
    expect(by['status summary']).toMatchObject({
      status: 'ok',
      detail: 'matches the 2FA tables in all 0 account state row(s)',
    });
  });

  it('an unreadable config file is a failed check, not an exception', async () => {
    const report = await doctor({
      dbUrl: scratch.tdb.url,
      configPath: join(scratch.tdb.dir, 'missing.yaml'),
      env: { ...process.env, ...testEnv(scratch.tdb) },
    });
    expect(report.checks[0]).toMatchObject({ name: 'config', status: 'fail' });
    expect(report.checks[0]!.detail).toContain('cannot read config file');
    expect(report.checks.slice(1).every((c) => c.status === 'skip')).toBe(true);
    expect(doctorExitCode(report.checks)).toBe(78);
  });
});
