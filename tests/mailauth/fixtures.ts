// Keys, DNS records and dkimpy for the mail authentication tests: an RSA key pair made now, its DKIM
// TXT record, and dkimpy (python3-dkim, run as python3) signing and verifying messages.

import { generateKeyPairSync } from "node:crypto";
import { fileURLToPath } from "node:url";

export interface KeyPair {
  privatePem: string;
  /** The TXT record value: `v=DKIM1; k=rsa; p=...`. */
  txt: string;
}

export function rsaKeyPair(bits = 2048): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: bits });
  const der = publicKey.export({ type: "spki", format: "der" });
  return {
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    txt: `v=DKIM1; k=rsa; p=${der.toString("base64")}`,
  };
}

/** Debian's python3, which has python3-dkim (a python3 earlier on PATH may be another one). */
const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./dkimpy.py", import.meta.url));

async function python(args: string[], input: string): Promise<string> {
  const p = new Deno.Command(PYTHON, {
    args: [SCRIPT, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const out = await p.output();
  if (!out.success) throw new Error(`dkimpy ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/** The DKIM-Signature header dkimpy makes for `message` (CRLF lines). */
export function dkimpySign(
  message: string,
  keyFile: string,
  selector: string,
  domain: string,
): Promise<string> {
  return python(["sign", keyFile, selector, domain], message);
}

/** dkimpy's verdict on `message`, the key record given. */
export async function dkimpyVerify(message: string, txt: string): Promise<"pass" | "fail"> {
  return (await python(["verify", txt], message)).trim() as "pass" | "fail";
}

/** The ARC set dkimpy adds to `message` (which carries an Authentication-Results: of `srvId`). */
export function dkimpyArcSign(
  message: string,
  keyFile: string,
  selector: string,
  domain: string,
  srvId: string,
): Promise<string> {
  return python(["arc-sign", keyFile, selector, domain, srvId], message);
}

/** dkimpy's ARC chain validation of `message`: its cv and comment. */
export async function dkimpyArcVerify(message: string, txt: string): Promise<string> {
  return (await python(["arc-verify", txt], message)).trim();
}

/** OpenDKIM's signer (opendkim-tools). */
export const OPENDKIM_TESTMSG = "/usr/sbin/opendkim-testmsg";

/** `message` signed by OpenDKIM's library (opendkim-testmsg), the whole signed message. */
export async function opendkimSign(
  message: string,
  keyFile: string,
  selector: string,
  domain: string,
): Promise<string> {
  const p = new Deno.Command(OPENDKIM_TESTMSG, {
    args: ["-C", "-d", domain, "-k", keyFile, "-s", selector],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(message));
  await w.close();
  const out = await p.output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success || !text.startsWith("DKIM-Signature:")) {
    throw new Error(`opendkim-testmsg failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** python3-authres' reading of an Authentication-Results: field: its authserv-id, then `method=result`s. */
export async function authresParse(field: string): Promise<string[]> {
  return (await python(["authres"], field)).trim().split("\n");
}
