// PLACEHOLDER (being written in this session): replaced by the real command before it lands.
import { Command } from 'commander';
import { internalError } from '../core/errors.js';

export function keysCommand(): Command {
  return new Command('keys').description('(not yet implemented)').allowUnknownOption().action(() => {
    throw internalError('keys is not implemented yet');
  });
}
