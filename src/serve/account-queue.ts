/**
 * Requests for one account run one after another inside the service. The database serialises them anyway (the
 * account's state row is locked by every change); queueing them here first means a burst for one account (a
 * double-clicked sign-in, a script hammering codes) waits in memory instead of holding every pooled connection
 * in lock waits, and never turns into a storm of deadlock retries on MariaDB.
 */
export class AccountQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(account: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(account) ?? Promise.resolve();
    const current = previous.catch(() => {}).then(work);
    const tail = current.catch(() => {});
    this.tails.set(account, tail);
    try {
      return await current;
    } finally {
      if (this.tails.get(account) === tail) this.tails.delete(account);
    }
  }
}
