// PLACEHOLDER (being written in this session): replaced by the real command before it lands.
import { Command } from 'commander';
import { internalError } from '../core/errors.js';

export function recoverCommand(): Command {
  return new Command('recover').description('(not yet implemented)').allowUnknownOption().action(() => {
    throw internalError('recover is not implemented yet');
  });
}
