// What the LMTP session asks of the mail store: whether a recipient can receive mail (RCPT), and, once the
// content is synced in the spool, one result per recipient (RFC 2033: one reply each after the final
// dot). A recipient resolves to a user's Maildir folder (`+detail` -> `.detail` when it exists); its
// Maildir is created on first use. Quota is checked at RCPT (with the SIZE the client declared) and again
// with the real size. Replies with the codes the issue names: 550 5.1.1 unknown user, 552 5.2.2 over
// quota, 451 4.3.0 for a local failure (the client tries again). Touches the Maildirs under the mail root.

import type { LdaConfig } from "../../config/types.ts";
import { reply, type SmtpReply } from "../mail/reply.ts";
import { log } from "../util/log.ts";
import { deliverInto, ensureMaildir, folderFor, maildirOf, type UniqueNames } from "./maildir.ts";
import type { QuotaTracker } from "./quota.ts";
import type { Spool } from "./spool.ts";
import { isFolderDetail, type LocalUser, type LocalUsers } from "./users.ts";

const COMPONENT = "lda";

export interface StoreEnv {
  lda: LdaConfig;
  users: LocalUsers;
  names: UniqueNames;
  quota: QuotaTracker;
}

/** A recipient accepted at RCPT, with where its copy goes. */
export interface Accepted {
  address: string;
  user: LocalUser;
  maildir: string;
  /** The folder directory (the Maildir itself for the inbox). */
  dir: string;
  /** "INBOX" or ".detail", for logs. */
  folder: string;
}

export const LR = {
  rcptOk: (a: string) => reply(250, "2.1.5", `<${a}> Recipient ok`),
  delivered: (a: string) => reply(250, "2.0.0", `<${a}> Delivered`),
  unknownUser: (a: string) => reply(550, "5.1.1", `<${a}> User unknown`),
  overQuota: (a: string) => reply(552, "5.2.2", `<${a}> Mailbox full: quota exceeded`),
  tooBig: (a: string) => reply(552, "5.3.4", `<${a}> Message size exceeds fixed maximum message size`),
  localError: (a: string) => reply(451, "4.3.0", `<${a}> Local delivery failed, try again later`),
};

/** The local part of a canonical recipient (`postmaster` for a bare postmaster). */
export function localPartOf(recipient: string): string {
  const at = recipient.lastIndexOf("@");
  return at < 0 ? recipient : recipient.slice(0, at);
}

export class MailStore {
  readonly #ready = new Set<string>();

  constructor(public env: StoreEnv) {}

  /** Takes a reloaded lda section and users (SIGHUP); sessions in progress finish with what they had. */
  update(lda: LdaConfig, users: LocalUsers): void {
    this.env = { ...this.env, lda, users };
  }

  /** Creates the Maildir of `user` unless this process already did. */
  async ensure(user: string): Promise<string> {
    const dir = maildirOf(this.env.lda.mail_root, user);
    if (!this.#ready.has(user)) {
      await ensureMaildir(dir);
      this.#ready.add(user);
    }
    return dir;
  }

  /** Checks one RCPT: the accepted recipient, or the reply refusing it. `size` is MAIL's SIZE (or 0). */
  async check(
    address: string,
    size: number,
  ): Promise<{ ok: true; rcpt: Accepted } | { ok: false; reply: SmtpReply }> {
    try {
      const target = await this.env.users.resolve(localPartOf(address));
      if (!target) return { ok: false, reply: LR.unknownUser(address) };
      const { user } = target;
      const maildir = await this.ensure(user.name);
      const detail = target.detail !== undefined && isFolderDetail(target.detail) ? target.detail : undefined;
      const { dir, folder } = await folderFor(maildir, detail);
      if (!(await this.env.quota.fits(user.name, maildir, user.quota, Math.max(size, 1)))) {
        log.info(COMPONENT, `reject: RCPT to=<${address}> user=${user.name}: over quota`);
        return { ok: false, reply: LR.overQuota(address) };
      }
      return { ok: true, rcpt: { address, user, maildir, dir, folder } };
    } catch (err) {
      log.error(COMPONENT, `check recipient <${address}>: ${(err as Error).message}`);
      return { ok: false, reply: LR.localError(address) };
    }
  }

  /** Delivers the synced spool to each recipient; one reply per recipient, in order. */
  async deliver(spool: Spool, sender: string, rcpts: Accepted[]): Promise<SmtpReply[]> {
    const size = spool.size;
    const done = new Map<string, SmtpReply>(); // folder dir -> result: one copy per mailbox folder
    const replies: SmtpReply[] = [];
    for (const rcpt of rcpts) {
      const same = done.get(rcpt.dir);
      if (same) {
        replies.push(same.code === 250 ? LR.delivered(rcpt.address) : { ...same });
        continue;
      }
      const result = await this.#deliverOne(spool.path, size, sender, rcpt);
      done.set(rcpt.dir, result);
      replies.push(result);
    }
    return replies;
  }

  async #deliverOne(spool: string, size: number, sender: string, rcpt: Accepted): Promise<SmtpReply> {
    const { quota, names } = this.env;
    const who = `from=<${sender}> to=<${rcpt.address}> user=${rcpt.user.name} folder=${rcpt.folder}`;
    try {
      if (!(await quota.fits(rcpt.user.name, rcpt.maildir, rcpt.user.quota, size))) {
        log.info(COMPONENT, `bounced: ${who} size=${size}: over quota`);
        return LR.overQuota(rcpt.address);
      }
      const path = await deliverInto(rcpt.dir, spool, size, names);
      quota.add(rcpt.user.name, size);
      log.info(COMPONENT, `delivered: ${who} size=${size} file=${path.slice(path.lastIndexOf("/") + 1)}`);
      return LR.delivered(rcpt.address);
    } catch (err) {
      log.error(COMPONENT, `deferred: ${who}: ${(err as Error).message}`);
      return LR.localError(rcpt.address);
    }
  }
}
