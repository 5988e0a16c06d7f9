/** The "code sent" line of `enable --method sms` and `send-code`. */
import type { SentSignInCode } from '../core/send-code.js';

/** "A code was sent to …", saying where the outbox put it when no real gateway is configured. */
export function smsSentText(sent: { phone: string; delivery: SentSignInCode['delivery'] }, what: string): string {
  const lines = [`${what} was sent by text message to ${sent.phone}.`, 'It is valid for 10 minutes.'];
  if (sent.delivery.transport === 'outbox') {
    lines.push(
      '(SMS transport "outbox": no text message leaves this machine;',
      ` the message was appended to ${sent.delivery.where ?? 'the outbox file'})`,
    );
  }
  return `${lines.join('\n')}\n`;
}
