// The MAIL and RCPT steps once their arguments parsed (arguments.ts): the limits that apply (transactions
// per session, declared size, recipients per transaction and session), then smar's policy verdict, then
// the transaction opened or the recipient added (or what smar expanded it to). A recipient smar refuses
// with 5xx counts as an invalid address. Each check carries the session's context (policy.ts) and the
// session's authorization (AUTH with a trusted mechanism, or a verified client certificate where that
// allows relaying). smar's answers may also say: keep this state, discard the message, drop just this
// recipient (a transaction left with none is received and dropped), refuse at DATA.

import { checkAuth, checkMail, checkRcpt } from "../smar/client.ts";
import { log } from "../util/log.ts";
import { checkSpf, spfTags } from "./mailauth/verify.ts";
import type { RecipientSpec } from "../protocol/messages.ts";
import { tooManyTransactions } from "./limits.ts";
import { checkContext } from "./policy.ts";
import { defaultRefusal, R } from "./replies.ts";
import type { Session } from "./session.ts";
import { type MailParams, Transaction } from "./transaction.ts";
import { milterMail, milterRcpt, milterRefused } from "./milter/stages.ts";
import { policyCheck } from "./policy/stages.ts";

/** MAIL FROM with its parameters: opens a transaction when the limits and smar allow it. */
export async function mailStep(s: Session, mail: MailParams): Promise<void> {
  if (tooManyTransactions(s)) return s.end("MAIL", R.tooManyTransactions(s.host));
  const max = s.env.server.max_message_size;
  if (mail.size !== undefined && max > 0 && mail.size > max) {
    return s.refuse("MAIL", R.tooBig, `from=<${mail.sender}> size=${mail.size}`);
  }
  if (s.env.queue.diskLow || await s.env.queue.space.low()) {
    return s.refuse("MAIL", R.diskFull, `from=<${mail.sender}>`);
  }
  const v = await checkMail(s.env.endpoint, s.ip, mail.sender, undefined, checkContext(s, s.policyState));
  if (v.action !== "accept") {
    return s.refuse("MAIL", v.reply ?? defaultRefusal(v.action), `from=<${mail.sender}>`);
  }
  let state = v.state;
  let discard = v.discard === true;
  const auth = s.env.mailauth;
  const spf = auth?.checks.spf
    ? await checkSpf(auth.resolver, { ip: s.ip, helo: s.helo, sender: mail.sender, mta: s.host })
    : undefined;
  if (spf) {
    const helo = spf.helo ? ` helo=${spf.helo.result}` : "";
    log.info("smtps", `SPF client=[${s.ip}], from=<${mail.sender}>, spf=${spf.result}${helo}`);
    s.env.counters.mailauth("spf", spf.result);
    const a = await checkAuth(s.env.endpoint, {
      ip: s.ip,
      stage: "mail",
      tags: spfTags(spf),
      context: checkContext(s, v.state ?? s.policyState),
    });
    if (a.action !== "accept") {
      const reply = a.reply ?? defaultRefusal(a.action);
      // delay_checks: the refusal waits for RCPT, as smar's own MAIL-stage refusals do.
      if (!s.env.server.flags.includes("delay_checks")) {
        return s.refuse("MAIL", reply, `from=<${mail.sender}> spf=${spf.result}`);
      }
      if (!state?.deferred) state = { ...state, deferred: reply };
    }
    if (a.discard) discard = true;
  }
  const milter = await milterMail(s, mail);
  if (await milterRefused(s, "MAIL", milter, `from=<${mail.sender}>`)) return;
  const t = new Transaction(mail);
  t.spf = spf;
  t.policyState = state;
  t.discard = discard || milter?.kind === "discard";
  s.transaction = t;
  s.transactions++;
  s.nopCommands = 0;
  s.state = "mail";
  s.reply(R.senderOk);
}

/** RCPT TO with its parameters: adds the recipient when the limits and smar allow it. */
export async function rcptStep(s: Session, recipient: RecipientSpec): Promise<void> {
  const t = s.transaction!;
  const c = s.env.server;
  const detail = `from=<${t.sender}> to=<${recipient.address}>`;
  if (t.hasRecipient(recipient.address)) return s.reply(R.rcptOk);
  if (
    t.accepted.size >= c.max_recipients_per_transaction ||
    s.recipientsInSession >= c.max_recipients_per_session
  ) return s.refuse("RCPT", R.tooManyRecipients, detail);
  const v = await checkRcpt(s.env.endpoint, {
    ip: s.ip,
    sender: t.sender,
    recipient: recipient.address,
    authorized: s.authorized,
    context: checkContext(s, t.policyState ?? s.policyState),
  });
  if (v.action !== "accept") {
    const r = v.reply ?? defaultRefusal(v.action);
    if (r.code >= 500) s.invalidAddress();
    return s.refuse("RCPT", r, detail);
  }
  const policy = await policyCheck(s, "rcpt", recipient.address);
  if (policy.kind === "refuse") {
    if (policy.reply.code >= 500) s.invalidAddress();
    return s.refuse("RCPT", policy.reply, `policy service ${policy.service}, ${detail}`);
  }
  const milter = await milterRcpt(s, recipient);
  if (milter?.kind === "discard") t.discard = true;
  if (await milterRefused(s, "RCPT", milter, detail)) return;
  if (v.discard) t.discard = true;
  if (v.dataReply) t.dataReply ??= v.dataReply;
  // A discarded recipient is answered 250 and left out (README 3.9.3.1 "Discard").
  t.addRecipient(recipient, v.dropRecipient ? [] : v.recipients, v.errorsTo);
  s.recipientsInSession++;
  s.state = "rcpt";
  s.reply(R.rcptOk);
}
