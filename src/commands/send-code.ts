// PLACEHOLDER (being written in this session): replaced by the real command before it lands.
import { Command } from 'commander';
import { internalError } from '../core/errors.js';

export function sendCodeCommand(): Command {
  return new Command('send-code').description('(not yet implemented)').allowUnknownOption().action(() => {
    throw internalError('send-code is not implemented yet');
  });
}
