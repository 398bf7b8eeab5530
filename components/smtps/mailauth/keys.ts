// DKIM and ARC signing keys: a key map of lines `DOMAIN SELECTOR KEY_FILE` (a `.domain` entry stands for
// every subdomain of domain), each file a PEM private key, RSA of at least 2048 bits or Ed25519. Read
// once when smtps starts: a map or key that cannot be read or is unfit is an error naming the file. The
// MCP reads the map too (keyFiles()), so smtps' permission set holds exactly these files.
// Touches: the key map and the key files, read-only.

import { createPrivateKey, type KeyObject } from "node:crypto";
import { dirname, isAbsolute, join } from "node:path";
import type { MapSpec } from "../../../config/types.ts";
import { parseMapText } from "../../maps/map_text.ts";

/** One signing key: the domain it signs for (d=), its selector (s=), the key. */
export interface SigningKey {
  domain: string;
  selector: string;
  file: string;
  /** The PEM text, as mailauth takes it. */
  pem: string;
  algorithm: "rsa-sha256" | "ed25519-sha256";
}

/** The smallest RSA key accepted (RFC 8301 asks at least 1024; large receivers want 2048). */
export const MIN_RSA_BITS = 2048;

interface KeyLine {
  domain: string;
  selector: string;
  file: string;
}

/** The key map's lines; throws naming the map file (and line) when it cannot be read or a line is bad. */
export async function readKeyMap(spec: MapSpec): Promise<KeyLine[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(spec.file);
  } catch (err) {
    throw new Error(`Read key map ${spec.file}: ${(err as Error).message}`);
  }
  const parsed = parseMapText(text, spec.file);
  if (parsed.errors.length > 0) throw new Error(`Read key map ${parsed.errors[0]}`);
  const lines: KeyLine[] = [];
  for (const [domain, rhs] of parsed.entries) {
    const [selector, file, ...more] = rhs.trim().split(/\s+/);
    if (!selector || !file || more.length > 0) {
      throw new Error(`Read key map ${spec.file}: ${domain}: expected DOMAIN SELECTOR KEY_FILE`);
    }
    // A relative key file is taken from the key map's directory, wherever smx runs.
    lines.push({
      domain: domain.replace(/\.$/, ""),
      selector,
      file: isAbsolute(file) ? file : join(dirname(spec.file), file),
    });
  }
  return lines;
}

/** The key files a key map names (for the MCP's permission set); [] when the map cannot be read. */
export async function keyFiles(spec: MapSpec): Promise<string[]> {
  try {
    return (await readKeyMap(spec)).map((l) => l.file);
  } catch {
    return [];
  }
}

/** The keys of a key map, by domain. */
export class KeyRing {
  readonly #keys: Map<string, SigningKey>;
  constructor(keys: SigningKey[]) {
    this.#keys = new Map(keys.map((k) => [k.domain.toLowerCase(), k]));
  }

  /** Reads the map and every key file; throws an Error naming the file that cannot be used. */
  static async load(spec: MapSpec): Promise<KeyRing> {
    const keys: SigningKey[] = [];
    for (const line of await readKeyMap(spec)) keys.push(await readKey(line));
    return new KeyRing(keys);
  }

  /**
   * The key for mail from `domain`: its own entry, else the nearest `.parent` entry (which signs as
   * the parent: d= is the parent domain, aligned with the From: domain under relaxed DMARC).
   */
  find(domain: string): SigningKey | undefined {
    const d = domain.toLowerCase().replace(/\.$/, "");
    const own = this.#keys.get(d);
    if (own) return { ...own, domain: d };
    const labels = d.split(".");
    for (let i = 1; i < labels.length; i++) {
      const parent = labels.slice(i).join(".");
      const hit = this.#keys.get(`.${parent}`);
      if (hit) return { ...hit, domain: parent };
    }
    return undefined;
  }

  /** Every key, in map order. */
  all(): SigningKey[] {
    return [...this.#keys.values()].map((k) => ({ ...k, domain: k.domain.replace(/^\./, "") }));
  }
}

async function readKey(line: KeyLine): Promise<SigningKey> {
  let pem: string;
  let key: KeyObject;
  try {
    pem = await Deno.readTextFile(line.file);
    key = createPrivateKey(pem);
  } catch (err) {
    throw new Error(`Read DKIM key file ${line.file}: ${(err as Error).message}`);
  }
  const type = key.asymmetricKeyType;
  if (type === "rsa") {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) {
      throw new Error(
        `Read DKIM key file ${line.file}: RSA key of ${bits} bits, expected ${MIN_RSA_BITS} or more`,
      );
    }
    return { ...line, pem, algorithm: "rsa-sha256" };
  }
  if (type === "ed25519") return { ...line, pem, algorithm: "ed25519-sha256" };
  throw new Error(`Read DKIM key file ${line.file}: a ${type} key, expected RSA or Ed25519`);
}
