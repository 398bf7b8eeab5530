// Which SASL mechanisms an smtps section offers (sendmail X README 3.10 `auth { flags; trusted_mechs; }`,
// with Cyrus SASL's meaning of the flags): each flag asks for a security property, and a mechanism is
// offered only when it has every property asked for. The properties are Cyrus SASL's for its own
// plugins:
//   PLAIN, LOGIN          noanonymous, pass_credentials
//   CRAM-MD5              noplaintext, noanonymous
//   SCRAM-SHA-1, -256     noplaintext, noactive, noanonymous, mutual_auth
//   DIGEST-MD5            noplaintext, noanonymous, mutual_auth (historic, RFC 6331: never offered)
// No mechanism here has nodictionary or forward_secrecy: asking for either leaves none (AUTH is then not
// offered). On top of that a mechanism is offered only when every user of the credentials map has a
// secret for it (sasl_secrets.ts), so no client picks one that cannot succeed; and mechanisms that send
// the password (those without noplaintext) only under TLS unless the smx flag allow_plaintext says so.
// Pure.

/** The mechanisms smtps implements, strongest first (the order EHLO lists them in). */
export const IMPLEMENTED = ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"];

/** Cyrus SASL's security flags, as the configuration writes them. */
export const CYRUS_FLAGS = [
  "noplaintext",
  "noactive",
  "nodictionary",
  "forward_secrecy",
  "noanonymous",
  "pass_credentials",
  "mutual_auth",
];

const PROPERTIES: Record<string, string[]> = {
  "PLAIN": ["noanonymous", "pass_credentials"],
  "LOGIN": ["noanonymous", "pass_credentials"],
  "CRAM-MD5": ["noplaintext", "noanonymous"],
  "SCRAM-SHA-1": ["noplaintext", "noactive", "noanonymous", "mutual_auth"],
  "SCRAM-SHA-256": ["noplaintext", "noactive", "noanonymous", "mutual_auth"],
  "DIGEST-MD5": ["noplaintext", "noanonymous", "mutual_auth"],
};

/** Whether `mechanism` keeps the password off the wire (may be offered without TLS). */
export function sendsNoPassword(mechanism: string): boolean {
  return PROPERTIES[mechanism]?.includes("noplaintext") ?? false;
}

export interface MechanismChoice {
  /** What EHLO may list, upper case, strongest first. */
  offered: string[];
  /** Why a configured mechanism is left out, one line each (logged at start). */
  notes: string[];
}

/**
 * The mechanisms to offer: those configured (any case) that smtps implements, that have every Cyrus
 * property `flags` asks for, and that `served` (what every user of the map can use) allows.
 */
export function chooseMechanisms(
  configured: string[],
  flags: string[],
  served?: Set<string>,
): MechanismChoice {
  const wanted = new Set(configured.map((m) => m.toUpperCase()));
  const asked = flags.map((f) => f.toLowerCase()).filter((f) => CYRUS_FLAGS.includes(f));
  const notes: string[] = [];
  if (wanted.has("DIGEST-MD5")) notes.push("DIGEST-MD5 is not offered: historic (RFC 6331), not implemented");
  const offered: string[] = [];
  for (const m of IMPLEMENTED) {
    if (!wanted.has(m)) continue;
    const missing = asked.filter((f) => !PROPERTIES[m].includes(f));
    if (missing.length > 0) notes.push(`${m} is not offered: the flags ask for ${missing.join(", ")}`);
    else if (served && !served.has(m)) {
      notes.push(`${m} is not offered: not every user of the credentials map has a secret for it`);
    } else offered.push(m);
  }
  return { offered, notes };
}
