/**
 * Canonical account addresses: no trimming (surrounding whitespace is an input error), domain
 * lower-cased and IDNA-encoded, local part NFC. Matching against the mailbox table is then exact, byte for byte.
 */
import { domainToASCII } from 'node:url';
import { dataError } from '../errors.js';
import { escapeControl } from '../text.js';

export const MAX_ADDRESS_LENGTH = 320;

/** Returns the canonical form of `input`, or throws a data error (exit 65) saying what is wrong. */
export function canonicalAddress(input: string): string {
  const problem = addressProblem(input);
  if (problem)
    throw dataError(
      'bad_address',
      `invalid email address "${preview(input)}": ${problem}`,
      'Give the full address, e.g. jane@example.com, with no spaces around it.',
    );
  return canonicalise(input);
}

/**
 * Like canonicalAddress but returns the problem instead of throwing (bulk lists report such rows as invalid).
 * The problem never quotes the input: a bulk row echoes only a short prefix of it (invalidEcho).
 */
export function tryCanonicalAddress(input: string): { address: string } | { problem: string } {
  const problem = addressProblem(input, false);
  return problem ? { problem } : { address: canonicalise(input) };
}

/** How much of an invalid line a bulk row shows: enough to find the line, too little to print a file's contents. */
export const INVALID_ECHO_CHARS = 20;

/** An invalid bulk input as a row shows it: a short escaped prefix that says how long the line was. */
export function invalidEcho(input: string): string {
  return preview(input, INVALID_ECHO_CHARS);
}

function canonicalise(input: string): string {
  const at = input.lastIndexOf('@');
  const local = input.slice(0, at).normalize('NFC');
  const domain = domainToASCII(input.slice(at + 1).toLowerCase());
  return `${local}@${domain}`;
}

function addressProblem(input: string, echo = true): string | undefined {
  if (input.length === 0) return 'empty';
  if (input.length > MAX_ADDRESS_LENGTH) return `longer than ${MAX_ADDRESS_LENGTH} characters`;
  if (/^\s|\s$/u.test(input)) return 'leading or trailing whitespace';

  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u.test(input)) return 'contains control characters';
  // Zero-width spaces, bidi overrides, soft hyphens, BOMs: an address that looks like another one on screen.
  if (/\p{Cf}/u.test(input)) return 'contains invisible or bidirectional formatting characters';
  if (/\s/u.test(input)) return 'contains whitespace';
  const at = input.lastIndexOf('@');
  if (at < 0) return 'no "@"';
  const local = input.slice(0, at);
  const domain = input.slice(at + 1);
  if (local.length === 0) return 'nothing before "@"';
  if (local.length > 64) return 'local part longer than 64 characters';
  if (local.includes('@')) return 'more than one "@"';
  if (domain.length === 0) return 'nothing after "@"';
  const ascii = domainToASCII(domain.toLowerCase());
  const badDomain = echo ? `"${preview(domain)}" is not a valid domain name` : 'not a valid domain name';
  if (!ascii) return badDomain;
  if (ascii.length > 253) return 'domain longer than 253 characters';
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/.test(ascii)) {
    return badDomain;
  }
  return undefined;
}

/** A short, control-character-safe rendering of user input for messages. */
export function preview(input: string, max = 80): string {
  const cut = input.length > max ? `${input.slice(0, max)}…(${input.length} chars)` : input;
  return escapeControl(cut);
}
