/** Names of mail2fa's own tables, all under one configurable prefix (default `mail2fa_`). */
export interface Tables {
  factor: string;
  recoveryCode: string;
  enrolment: string;
  challenge: string;
  smsSend: string;
  accountState: string;
  audit: string;
  codeKey: string;
  migrations: string;
  migrationsLock: string;
}

export function tableNames(prefix: string): Tables {
  return {
    factor: `${prefix}factor`,
    recoveryCode: `${prefix}recovery_code`,
    enrolment: `${prefix}enrolment`,
    challenge: `${prefix}challenge`,
    smsSend: `${prefix}sms_send`,
    accountState: `${prefix}account_state`,
    audit: `${prefix}audit`,
    codeKey: `${prefix}code_key`,
    migrations: `${prefix}migrations`,
    migrationsLock: `${prefix}migrations_lock`,
  };
}
