// PLACEHOLDER (being written in this session): replaced by the real command before it lands.
import { Command } from 'commander';
import { internalError } from '../core/errors.js';

export function auditCommand(): Command {
  return new Command('audit').description('(not yet implemented)').allowUnknownOption().action(() => {
    throw internalError('audit is not implemented yet');
  });
}
