// PLACEHOLDER (being written in this session): replaced by the real command before it lands.
import { Command } from 'commander';
import { internalError } from '../core/errors.js';

export function verifyCommand(): Command {
  return new Command('verify').description('(not yet implemented)').allowUnknownOption().action(() => {
    throw internalError('verify is not implemented yet');
  });
}
