// PLACEHOLDER (being written in this session): replaced by the real command before it lands.
import { Command } from 'commander';
import { internalError } from '../core/errors.js';

export function migrateFromCommand(): Command {
  return new Command('migrate-from').description('(not yet implemented)').allowUnknownOption().action(() => {
    throw internalError('migrate-from is not implemented yet');
  });
}
