// Where the SMTP session asks its Postfix-style policy services (client.ts), in the order configured, at
// the stages each is configured for: RCPT (after smar accepted the recipient), DATA (before 354; with
// BDAT when the last chunk has arrived) and END-OF-MESSAGE (before the milters). The request carries
// Postfix's attribute set; the first answer that is not DUNNO decides (action.ts). A refusal answers the
// command; PREPEND, HOLD, DISCARD and REDIRECT are noted in the transaction for the message. A service
// that cannot answer is logged and its default_action stands in. Touches: the services' sockets.

import { newField } from "../milter/content.ts";
import { parsePath } from "../../mail/address.ts";
import type { SmtpReply } from "../../mail/reply.ts";
import { log } from "../../util/log.ts";
import type { Session } from "../session.ts";
import type { Transaction } from "../transaction.ts";
import { parsePolicyAction, type PolicyAction } from "./action.ts";
import { PolicyFailure } from "./client.ts";

const COMPONENT = "smtps";

export type PolicyStage = "rcpt" | "data" | "end_of_data";

const STATE: Record<PolicyStage, string> = { rcpt: "RCPT", data: "DATA", end_of_data: "END-OF-MESSAGE" };

/** What the services say: go on, or refuse with this reply. */
export type PolicyOutcome = { kind: "continue" } | { kind: "refuse"; reply: SmtpReply; service: string };

/** The facts of the message known at END-OF-MESSAGE. */
export interface MessageFacts {
  id: string;
  size: number;
}

/**
 * Asks the services configured for `stage`; `recipient` at RCPT. Effects on the message (PREPEND, HOLD,
 * DISCARD, REDIRECT) go into the transaction; PREPEND at END-OF-MESSAGE is for the caller to write.
 */
export async function policyCheck(
  s: Session,
  stage: PolicyStage,
  recipient?: string,
  message?: MessageFacts,
): Promise<PolicyOutcome> {
  const services = s.env.policyServices;
  if (services.length === 0) return { kind: "continue" };
  const t = s.transaction!;
  for (const { config, client } of services) {
    if (!config.stages.includes(stage)) continue;
    let action: PolicyAction;
    let raw: string;
    try {
      raw = (await client.ask(attributes(s, t, stage, recipient, message))).action;
    } catch (err) {
      if (!(err instanceof PolicyFailure)) throw err;
      raw = config.default_action;
      log.error(COMPONENT, `${err.message} at ${STATE[stage]}; default_action ${raw}`);
    }
    action = parsePolicyAction(raw);
    if (action.kind === "unknown") {
      log.error(
        COMPONENT,
        `policy service ${client.name}: unknown action ${JSON.stringify(raw.slice(0, 200))}`,
      );
      action = parsePolicyAction("451 4.3.5 Server configuration error");
    }
    const where = `policy service ${client.name}`;
    switch (action.kind) {
      case "ok":
        return { kind: "continue" };
      case "dunno":
        continue;
      case "refuse":
        return { kind: "refuse", reply: action.reply, service: client.name };
      case "log":
        log.info(COMPONENT, `${where}: ${action.text}`);
        continue;
      case "prepend": {
        const colon = action.header.indexOf(":");
        const f = colon > 0
          ? newField(action.header.slice(0, colon), action.header.slice(colon + 1), true)
          : "no colon";
        if (typeof f === "string") log.warn(COMPONENT, `${where}: refused PREPEND ${action.header}: ${f}`);
        else t.prepend.push(f.raw);
        continue;
      }
      case "hold":
        t.quarantine = action.reason;
        log.info(COMPONENT, `${where}: HOLD ${action.reason}`);
        continue;
      case "discard":
        t.discard = true;
        log.info(COMPONENT, `${where}: DISCARD ${action.reason}`);
        continue;
      case "redirect": {
        const p = parsePath(action.address.startsWith("<") ? action.address : `<${action.address}>`);
        if (!p.ok) {
          log.warn(COMPONENT, `${where}: refused REDIRECT ${action.address}: ${p.reason}`);
          continue;
        }
        t.redirect = p.mailbox.address;
        log.info(COMPONENT, `${where}: REDIRECT to <${t.redirect}>`);
        continue;
      }
    }
  }
  return { kind: "continue" };
}

/** Postfix's policy delegation attributes for this session, transaction and stage. */
function attributes(
  s: Session,
  t: Transaction,
  stage: PolicyStage,
  recipient: string | undefined,
  message: MessageFacts | undefined,
): Record<string, string> {
  const one = t.recipients.length === 1 ? t.recipients[0].address : "";
  return {
    request: "smtpd_access_policy",
    protocol_state: STATE[stage],
    protocol_name: s.esmtp ? "ESMTP" : "SMTP",
    client_address: s.ip,
    client_name: "unknown",
    client_port: String(s.clientPort),
    reverse_client_name: "unknown",
    helo_name: s.helo,
    sender: t.sender,
    recipient: recipient ?? one,
    recipient_count: stage === "rcpt" ? "0" : String(t.recipients.length),
    queue_id: message?.id ?? "",
    instance: t.instance,
    size: String(message?.size ?? t.mail.size ?? 0),
    etrn_domain: "",
    stress: "",
    sasl_method: s.auth?.mechanism ?? "",
    sasl_username: s.auth?.user ?? "",
    sasl_sender: "",
    ccert_subject: s.tls?.subject ?? "",
    ccert_issuer: s.tls?.issuer ?? "",
    ccert_fingerprint: "",
    ccert_pubkey_fingerprint: "",
    encryption_protocol: s.tls?.version ?? "",
    encryption_cipher: s.tls?.cipher ?? "",
    encryption_keysize: s.tls?.bits !== undefined ? String(s.tls.bits) : "",
    server_address: s.localAddress,
    server_port: String(s.localPort),
    policy_context: "",
    mail_version: "smx",
  };
}
