// The mail authentication step of smtps, run on a message's content once it has fully arrived and
// before it is synced and committed (message_store.ts): earlier Authentication-Results: fields that
// claim our authserv-id are removed (RFC 8601 5), DKIM, ARC and DMARC are checked and the access map
// asked about the results, our Authentication-Results: (and an ARC set when sealing) is put in front,
// and mail from a client that may relay whose From: domain has a key is DKIM-signed over the content
// as stored. The file is rewritten once, only when something changed. Touches the message file.

import { dkimSign } from "mailauth";
import type { SmtpReply } from "../../protocol/messages.ts";
import { checkAuth } from "../../smar/client.ts";
import type { MessageFile } from "../../smtp_io/message_file.ts";
import { log } from "../../util/log.ts";
import { checkContext } from "../policy.ts";
import type { Session } from "../session.ts";
import type { Transaction } from "../transaction.ts";
import {
  type ContentEdit,
  editedStream,
  type HeaderField,
  readHeaderFields,
  rewriteContent,
} from "./content.ts";
import { authservIdOf, verifyContent } from "./verify.ts";

const COMPONENT = "smtps";
const encoder = new TextEncoder();

/**
 * Most DKIM-Signature fields verified per message (the topmost, newest ones): each costs a DNS question
 * and a public key operation, so a message carrying thousands must not make us do thousands.
 */
export const MAX_DKIM_SIGNATURES = 10;

/** What the step decided: go on (the file may have been rewritten), refuse with a reply, or discard. */
export type StepResult = { action: "store" } | { action: "refuse"; reply: SmtpReply } | { action: "discard" };

/** Whether the section authenticates or signs anything (else the step is skipped). */
export function hasAuthStep(s: Session): boolean {
  return s.env.mailauth !== undefined || s.env.signing !== undefined;
}

/** Runs the step on message `id` of transaction `t`. Never throws for what mailauth or DNS do. */
export async function authenticateContent(
  s: Session,
  t: Transaction,
  id: string,
  file: MessageFile,
): Promise<StepResult> {
  const auth = s.env.mailauth;
  await file.flush();
  const fields = await readHeaderFields(file.path, file.contentStart);
  const edit: ContentEdit = { head: new Uint8Array(0), drop: [] };
  let head = "";
  if (auth) {
    const ours = auth.authservId.toLowerCase();
    edit.drop = fields.filter((f) => f.name === "authentication-results" && authservIdOf(f.value) === ours);
    if (edit.drop.length > 0) {
      log.info(
        COMPONENT,
        `${id}: removed ${edit.drop.length} Authentication-Results: claiming ${auth.authservId}`,
      );
    }
    // The signatures beyond the first MAX_DKIM_SIGNATURES are left out of what is verified, not stored.
    const signatures = fields.filter((f) => f.name === "dkim-signature");
    const unchecked = signatures.slice(MAX_DKIM_SIGNATURES);
    if (unchecked.length > 0) {
      log.info(
        COMPONENT,
        `${id}: ${signatures.length} DKIM signatures, the first ${MAX_DKIM_SIGNATURES} verified`,
      );
    }
    const verified = { head: edit.head, drop: [...edit.drop, ...unchecked] };
    const outcome = await verifyContent(editedStream(file.path, verified, file.contentStart), {
      resolver: auth.resolver,
      checks: auth.checks,
      authservId: auth.authservId,
      ip: s.ip,
      sender: t.sender,
      ...(t.spf ? { spf: t.spf } : {}),
      ...(auth.seal ? { seal: auth.seal } : {}),
    });
    log.info(
      COMPONENT,
      `${id}: authentication client=[${s.ip}], from=<${t.sender}>, ${outcome.summary || "none"}`,
    );
    // SPF was counted at MAIL, where it was checked.
    s.env.counters.mailauthSummary(outcome.summary, "spf");
    if (outcome.tags.length > 0) {
      const v = await checkAuth(s.env.endpoint, {
        ip: s.ip,
        stage: "data",
        tags: outcome.tags,
        context: checkContext(s, t.policyState ?? s.policyState),
      });
      if (v.action !== "accept") {
        return {
          action: "refuse",
          reply: v.reply ?? { code: 451, status: "4.7.5", text: "Try again later" },
        };
      }
      if (v.discard) return { action: "discard" };
    }
    head = `${outcome.arcHeaders ?? ""}Authentication-Results: ${outcome.value}\r\n`;
  }
  const signing = s.env.signing;
  if (signing && (s.authorized || s.policyState?.relay === true)) {
    const domain = fromDomain(fields);
    const key = domain ? signing.find(domain) : undefined;
    if (key) {
      edit.head = encoder.encode(head);
      const signed = await dkimSign(
        editedStream(file.path, edit, file.contentStart),
        {
          canonicalization: "relaxed/relaxed",
          signatureData: [{
            signingDomain: key.domain,
            selector: key.selector,
            privateKey: key.pem,
            algorithm: key.algorithm,
          }],
        } as Parameters<typeof dkimSign>[1],
      );
      if (signed.errors?.length || !signed.signatures) {
        const why = signed.errors?.map((e) => String((e as { error?: unknown }).error ?? e)).join("; ");
        log.error(COMPONENT, `${id}: DKIM signing for ${key.domain} failed: ${why || "no signature made"}`);
      } else {
        head = signed.signatures + head;
        log.info(COMPONENT, `${id}: DKIM-Signature d=${key.domain} s=${key.selector} from=<${t.sender}>`);
      }
    }
  }
  edit.head = encoder.encode(head);
  if (edit.head.length > 0 || edit.drop.length > 0) {
    await file.edit((path, start, frameHead) => rewriteContent(path, edit, start, frameHead));
  }
  return { action: "store" };
}

/** The domain of the (first) address of the From: field; undefined without one. */
export function fromDomain(fields: HeaderField[]): string | undefined {
  const from = fields.find((f) => f.name === "from");
  if (!from) return undefined;
  const value = from.value.replace(/\((?:[^()\\]|\\.)*\)/g, " ");
  const angle = /<([^<>]*)>/.exec(value);
  const address = (angle ? angle[1] : value.split(",")[0]).trim();
  const at = address.lastIndexOf("@");
  if (at < 0) return undefined;
  const domain = address.slice(at + 1).trim().replace(/[>\s].*$/, "").toLowerCase();
  return /^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(domain) ? domain : undefined;
}
