// `deno task dkim-keygen DOMAIN SELECTOR [--type rsa|ed25519] [--bits N] [--dir DIR]`: makes a DKIM key
// pair, writes the private key (PEM, mode 0600) to DIR/SELECTOR.DOMAIN.key (never over an existing
// file), and prints the DNS TXT record to publish and the key map line for `dkim_signing { map }`.
// Touches only the key file it creates.

import { generateKeyPairSync } from "node:crypto";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { MIN_RSA_BITS } from "../components/smtps/mailauth/keys.ts";

const USAGE = "usage: deno task dkim-keygen DOMAIN SELECTOR [--type rsa|ed25519] [--bits N] [--dir DIR]";

/** The key pair: the private key in PEM, the public key as the TXT record's p= (base64 DER or raw). */
export function makeKeyPair(type: "rsa" | "ed25519", bits = MIN_RSA_BITS): { pem: string; txt: string } {
  if (type === "rsa") {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: bits });
    const p = publicKey.export({ type: "spki", format: "der" }).toString("base64");
    return {
      pem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      txt: `v=DKIM1; k=rsa; p=${p}`,
    };
  }
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  // RFC 8463: p= is the raw 32-byte public key, the last 32 bytes of its SPKI DER.
  const der = publicKey.export({ type: "spki", format: "der" });
  const p = der.subarray(der.length - 32).toString("base64");
  return {
    pem: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    txt: `v=DKIM1; k=ed25519; p=${p}`,
  };
}

/** A zone file line: the record split into strings of at most 255 characters (RFC 1035 character-strings). */
export function zoneRecord(domain: string, selector: string, txt: string): string {
  const parts = txt.match(/.{1,255}/g) ?? [];
  return `${selector}._domainkey.${domain}. IN TXT ( ${parts.map((p) => `"${p}"`).join(" ")} )`;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      type: { type: "string", default: "rsa" },
      bits: { type: "string" },
      dir: { type: "string", default: "." },
    },
    allowPositionals: true,
  });
  const [domain, selector] = positionals;
  const type = values.type;
  const bits = values.bits === undefined ? MIN_RSA_BITS : Number(values.bits);
  if (positionals.length !== 2 || !/^[a-z0-9.-]+$/i.test(domain) || !/^[a-z0-9._-]+$/i.test(selector)) {
    console.error(USAGE);
    return 2;
  }
  if (type !== "rsa" && type !== "ed25519") {
    console.error(`Make DKIM key: unknown type ${type}, expected rsa or ed25519`);
    return 2;
  }
  if (type === "rsa" && !(Number.isInteger(bits) && bits >= MIN_RSA_BITS && bits <= 8192)) {
    console.error(`Make DKIM key: RSA key of ${values.bits} bits, expected ${MIN_RSA_BITS} to 8192`);
    return 2;
  }
  const { pem, txt } = makeKeyPair(type, bits);
  const file = join(values.dir!, `${selector}.${domain}.key`);
  try {
    await Deno.writeTextFile(file, pem, { createNew: true, mode: 0o600 });
  } catch (err) {
    console.error(`Make DKIM key: write ${file}: ${(err as Error).message}`);
    return 1;
  }
  console.log(`# private key written to ${file}`);
  console.log(`# key map line (dkim_signing { map = ...; }):`);
  console.log(`${domain} ${selector} ${resolve(file)}`);
  console.log(`# DNS record to publish:`);
  console.log(zoneRecord(domain, selector, txt));
  return 0;
}

if (import.meta.main) Deno.exit(await main());
