// PLACEHOLDER (being written in this session): replaced by the real command before it lands.
import { Command } from 'commander';
import { internalError } from '../core/errors.js';

export function enableCommand(): Command {
  return new Command('enable').description('(not yet implemented)').allowUnknownOption().action(() => {
    throw internalError('enable is not implemented yet');
  });
}
