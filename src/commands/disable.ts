// PLACEHOLDER (being written in this session): replaced by the real command before it lands.
import { Command } from 'commander';
import { internalError } from '../core/errors.js';

export function disableCommand(): Command {
  return new Command('disable').description('(not yet implemented)').allowUnknownOption().action(() => {
    throw internalError('disable is not implemented yet');
  });
}
