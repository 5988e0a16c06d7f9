// PLACEHOLDER (being written in this session): replaced by the real command before it lands.
import { Command } from 'commander';
import { internalError } from '../core/errors.js';

export function codesCommand(): Command {
  return new Command('codes').description('(not yet implemented)').allowUnknownOption().action(() => {
    throw internalError('codes is not implemented yet');
  });
}
