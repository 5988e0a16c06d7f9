/**
 * Start-up time: `mail2fa <command> …` loads only that command's module; anything else loads them all, in the
 * order help lists them.
 */
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/program.js';

const ALL = [
  'enable',
  'disable',
  'status',
  'recover',
  'verify',
  'send-code',
  'codes',
  'audit',
  'keys',
  'doctor',
  'migrate',
  'migrate-from',
  'demo',
  'serve',
];
const names = async (...args: string[]) =>
  (await buildProgram(['node', 'mail2fa', ...args])).commands.map((c) => c.name());

describe('buildProgram', () => {
  it.each([
    [['status', 'a@example.com'], ['status']],
    [['--db', 'sqlite:/tmp/x.sqlite', 'verify', 'a@example.com'], ['verify']],
    [['--db=sqlite:/tmp/x.sqlite', '--json', 'send-code', 'a@example.com'], ['send-code']],
    [['--actor', 'status', 'recover', 'a@example.com'], ['recover']],
    [['--config', 'c.yaml', '--verbose', '--no-color', 'migrate-from'], ['migrate-from']],
  ])('%j loads only %j', async (args, expected) => {
    expect(await names(...args)).toEqual(expected);
  });

  it.each([
    [[]],
    [['--help']],
    [['--version']],
    [['help', 'status']],
    [['statsu']],
    [['--', 'status']],
    [['--db', 'sqlite:/tmp/x.sqlite']],
  ])('%j loads every command, in help order', async (args) => {
    expect(await names(...args)).toEqual(ALL);
  });
});
