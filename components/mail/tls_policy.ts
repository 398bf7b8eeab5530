// The outbound TLS policy: what protection delivering one message to one MX host of a next hop domain
// requires, decided in this one place for smar (which gathers the facts when it routes a domain), smtpc
// (which enforces the requirement on the connection) and qmgrctl explain (which shows it).
//
// The facts (`RouteTls`) are what smar found for the next hop domain: the access map's `tls_srv:` entry,
// the `try_tls:` entries of its hosts, each MX host's DANE TLSA records, and the domain's MTA-STS policy
// (MTA-STS is looked up through the `MtaStsSource` smar is given: the one place its result is consulted).
// `decideTls()` takes the first of these that applies:
//   1. `tls_srv:DOMAIN` (or `tls_srv:.parent`, then the bare `tls_srv:`) in the access map: the operator's
//      word wins: none, may, encrypt, verify [names], dane, mta-sts;
//   2. DANE (RFC 7672): DNSSEC-validated TLSA records of the MX host: `dane` (DANE beats MTA-STS, RFC 8461
//      section 2);
//   3. MTA-STS (RFC 8461): an `enforce` policy: `mta-sts` (the MX host must match one of the policy's mx
//      patterns, its certificate must verify for its name); `testing`: `may` (failures only reported);
//   4. smtpc's `tls { security_level }`.
// Then `try_tls:HOST no` makes an opportunistic level (`may`) `none`: smtpc never says STARTTLS to that host
// (a stronger level cannot be met there: the host is skipped). A message sent with REQUIRETLS (RFC 8689)
// needs `dane` or `mta-sts` (an MTA-STS policy in testing mode counts as enforce for it): anything else
// refuses it permanently (5.7.10). A message with `TLS-Required: No` (RFC 8689 section 5) lowers `dane` and
// `mta-sts` to `may`: the sender asked that the recipient domain's policies be ignored (the operator's
// tls_srv still applies). A requirement that cannot be met for a host before connecting (its TLSA lookup
// failed, it is not in the MTA-STS policy, tls_srv asks for dane where there is none) is `unmet`: smtpc
// skips the host, and the delivery is deferred (4.7.5) when no host is left.
// Pure; touches nothing.

/** How much protection a connection must have, weakest first. */
export type TlsLevel = "none" | "may" | "encrypt" | "verify" | "dane" | "mta-sts";
export const TLS_LEVELS: readonly TlsLevel[] = ["none", "may", "encrypt", "verify", "dane", "mta-sts"];

/** One TLSA record (RFC 6698): usage (2 DANE-TA, 3 DANE-EE), selector (0 cert, 1 SPKI), matching type (0 full, 1 SHA-256, 2 SHA-512), data in hex. */
export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  /** The certificate association data, lower-case hex. */
  data: string;
}

/** What smar's TLSA lookup for one MX host found. */
export type DaneLookup =
  /** TLSA records, validated (AD bit from a nameserver the configuration trusts): `dane`. */
  | { status: "secure"; records: TlsaRecord[] }
  /** No TLSA records, or records whose answer was not validated: as if there were none (RFC 7672 2.2). */
  | { status: "insecure" }
  | { status: "none" }
  /** The lookup failed (SERVFAIL, timeout): this host must not be used now (RFC 7672 2.2). */
  | { status: "temp"; reason: string };

/** An MTA-STS policy (RFC 8461 section 3.2) as the MtaStsSource found it. */
export interface MtaStsPolicy {
  mode: "enforce" | "testing" | "none";
  /** The policy's mx patterns: `mail.example.com` or `*.example.com` (one label). */
  mx: string[];
  /** The policy id of the domain's `_mta-sts` TXT record, for logs and reports. */
  id?: string;
  /** max_age, seconds. */
  maxAge?: number;
}

/** What the MTA-STS lookup of a domain gave. */
export type MtaStsLookup =
  | { status: "policy"; policy: MtaStsPolicy }
  /** The domain has no (valid) policy: MTA-STS does not apply. */
  | { status: "none" };

/**
 * Where smar gets a domain's MTA-STS policy (RFC 8461: the `_mta-sts` TXT record, the HTTPS fetch, the
 * cache). The MTA-STS component implements it; without one, MTA-STS does not apply. Never rejects: a
 * policy that cannot be fetched now and is not cached is `none` (RFC 8461 section 5: MTA-STS fails open).
 */
export interface MtaStsSource {
  lookup(domain: string): Promise<MtaStsLookup>;
}

/** An access map entry that matched: its key (`tls_srv:.example.com`) and its right-hand side. */
export interface AccessEntry {
  key: string;
  rhs: string;
}

/** The TLS facts of one next hop domain, as smar sends them with its route. */
export interface RouteTls {
  /** The next hop domain (the recipient domain, or the mailertable entry's domain). */
  domain: string;
  /** The `tls_srv:` entry found for the domain. */
  tlsSrv?: AccessEntry;
  /** `try_tls:` entries found for route hosts, by host name (lower case) or address. */
  tryTls?: Record<string, AccessEntry>;
  /** The TLSA lookup of each MX host, by host name (lower case); absent: DANE not looked up. */
  dane?: Record<string, DaneLookup>;
  /** The domain's MTA-STS policy; absent: MTA-STS not looked up. */
  mtaSts?: MtaStsLookup;
}

/** Where an effective requirement came from. */
export type TlsSource = "tls_srv" | "dane" | "mta-sts" | "security_level" | "try_tls" | "tls-required";

/** What a delivery to one host must have. */
export interface TlsRequirement {
  level: TlsLevel;
  /**
   * verify: the names the certificate must match (`.example.com` matches any subdomain); empty: the MX
   * host name. mta-sts: the MX host name the policy matched.
   */
  match: string[];
  /** dane: the usable TLSA records. */
  tlsa?: TlsaRecord[];
  source: TlsSource;
  /** The rule, for the one log line a failure writes: `tls_srv:.example.com verify`, `security_level may`. */
  rule: string;
  /** Why this host cannot be used at all now (checked before connecting). */
  unmet?: string;
  /** A failure to meet it is permanent (REQUIRETLS 5.7.10; sendmail 8's PERM+): bounce, not defer. */
  permanent?: boolean;
  /** The enhanced status of a failure: 4.7.5 (or 5.7.5 with PERM+), 5.7.10 for REQUIRETLS. */
  status: string;
  /** The message has REQUIRETLS: the server must offer it (after STARTTLS), and it is passed on. */
  requireTls?: boolean;
}

/** What the message asks for (RFC 8689). */
export interface MessageTlsFlags {
  /** MAIL FROM ... REQUIRETLS. */
  requireTls?: boolean;
  /** `TLS-Required: No` header (ignored with requireTls). */
  tlsRequiredNo?: boolean;
}

/** A parsed `tls_srv:` right-hand side. */
export interface TlsSrvValue {
  level: TlsLevel;
  match: string[];
  permanent: boolean;
}

/**
 * Parses a `tls_srv:` value: smx's words `none`, `may`, `encrypt`, `verify [name ...]`, `dane`, `mta-sts`,
 * or sendmail 8's `ENCR:bits`, `VERIFY[:bits]`, with `TEMP+`/`PERM+` in front and `+CN:name` after (the
 * cipher bits are accepted and not checked: every TLS 1.2+ cipher has 128 or more). Undefined when the
 * value is none of these.
 */
export function parseTlsSrv(rhs: string): TlsSrvValue | undefined {
  let v = rhs.trim();
  let permanent = false;
  const prefix = /^(TEMP|PERM)\+/i.exec(v);
  if (prefix) {
    permanent = prefix[1].toUpperCase() === "PERM";
    v = v.slice(prefix[0].length);
  }
  // sendmail 8's extensions start with "+CN", "+CS", "+CI"; any other "+" belongs to a name (an
  // encoded CN such as client+20one).
  const parts = v.split("+");
  let head = parts[0];
  const extensions: string[] = [];
  for (const part of parts.slice(1)) {
    if (/^\s*C[NSI](?::|\s*$)/i.test(part)) extensions.push(part.trim());
    else if (extensions.length === 0) head += `+${part}`;
    else return undefined;
  }
  head = head.trim();
  const match: string[] = [];
  for (const ext of extensions) {
    const cn = /^CN(?::(.+))?$/i.exec(ext);
    if (!cn) return undefined; // CS:/CI: (subject, issuer DN) are not supported
    if (cn[1] !== undefined) match.push(cn[1].trim().toLowerCase());
  }
  const [word, ...names] = head.split(/\s+/);
  const w = word.toLowerCase();
  let level: TlsLevel | undefined;
  if ((TLS_LEVELS as readonly string[]).includes(w)) level = w as TlsLevel;
  else if (/^encr:\d+$/.test(w)) level = "encrypt";
  else if (/^verify:\d+$/.test(w)) level = "verify";
  if (!level) return undefined;
  if (names.length > 0 && level !== "verify") return undefined;
  match.push(...names.map((n) => n.toLowerCase()));
  return { level, match, permanent };
}

/** A `try_tls:` value: `no` forbids STARTTLS to the host; anything else allows it. */
export function tryTlsForbids(rhs: string): boolean {
  return /^\s*no\s*$/i.test(rhs);
}

/** Whether a TLSA record can be used for SMTP at all (RFC 7672 3.1: DANE-TA or DANE-EE, known selector and matching type). */
export function usableTlsa(r: TlsaRecord): boolean {
  return (r.usage === 2 || r.usage === 3) && (r.selector === 0 || r.selector === 1) &&
    r.matchingType >= 0 && r.matchingType <= 2 && /^[0-9a-f]+$/i.test(r.data);
}

/** Whether `host` matches an MTA-STS mx pattern (RFC 8461 4.1: `*.` stands for exactly one label). */
export function mtaStsMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, "");
  const h = host.toLowerCase().replace(/\.$/, "");
  if (p.startsWith("*.")) {
    const rest = p.slice(1);
    return h.endsWith(rest) && h.length > rest.length && !h.slice(0, h.length - rest.length).includes(".");
  }
  return p === h;
}

/** Whether a certificate name list entry `pattern` (`host`, `.domain` for any subdomain) admits `name`. */
export function nameMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, "");
  const n = name.toLowerCase().replace(/\.$/, "");
  return p.startsWith(".") ? n.endsWith(p) : p === n;
}

/**
 * The requirement for delivering to `host` (an MX host: its name, and the address connected to) of the
 * next hop `tls` describes, given smtpc's security level and the message's flags. `tls` absent: smar
 * gathered nothing (an LMTP socket): security_level alone.
 */
export function decideTls(
  tls: RouteTls | undefined,
  host: { name: string; address?: string },
  securityLevel: "none" | "may" | "encrypt" | "verify",
  flags: MessageTlsFlags = {},
): TlsRequirement {
  const name = host.name.toLowerCase().replace(/\.$/, "");
  const dane = tls?.dane?.[name];
  const sts = tls?.mtaSts?.status === "policy" ? tls.mtaSts.policy : undefined;
  const temp = (r: Omit<TlsRequirement, "status">): TlsRequirement => ({
    ...r,
    status: r.permanent ? "5.7.5" : "4.7.5",
  });

  const fromDane = (source: TlsSource, rule: string, permanent = false): TlsRequirement | undefined => {
    if (!dane || dane.status === "none" || dane.status === "insecure") return undefined;
    if (dane.status === "temp") {
      return temp({
        level: "dane",
        match: [],
        source,
        rule,
        permanent,
        unmet: `TLSA lookup for ${name} failed: ${dane.reason}`,
      });
    }
    // RFC 7672 2.2: TLSA records that are all unusable still mean TLS, unauthenticated.
    if (!dane.records.some(usableTlsa)) {
      return temp({ level: "encrypt", match: [], source, rule: `${rule} (no usable record)`, permanent });
    }
    return temp({ level: "dane", match: [], tlsa: dane.records.filter(usableTlsa), source, rule, permanent });
  };
  const fromSts = (
    source: TlsSource,
    rule: string,
    testingEnforces: boolean,
    permanent = false,
  ): TlsRequirement | undefined => {
    if (!sts || sts.mode === "none") return undefined;
    if (sts.mode === "testing" && !testingEnforces) {
      return temp({ level: "may", match: [], source, rule: `${rule} (testing)` });
    }
    if (!sts.mx.some((p) => mtaStsMatches(p, name))) {
      return temp({
        level: "mta-sts",
        match: [],
        source,
        rule,
        permanent,
        unmet: `MX host ${name} is not in the MTA-STS policy of ${tls!.domain}`,
      });
    }
    return temp({ level: "mta-sts", match: [name], source, rule, permanent });
  };
  const daneRule = `DANE TLSA _25._tcp.${name}`;
  const stsRule = `MTA-STS policy of ${tls?.domain ?? "?"}${sts?.id ? ` id=${sts.id}` : ""}`;

  if (flags.requireTls) {
    // RFC 8689 4.2.1: only DANE or MTA-STS (testing counts as enforce) can carry it, whatever tls_srv
    // says. No such policy, or an MX host the policy does not list, refuses it for good; a TLSA lookup
    // that failed, or a certificate that does not verify, is a reason to try again later.
    const r = fromDane("dane", `REQUIRETLS, ${daneRule}`) ??
      fromSts("mta-sts", `REQUIRETLS, ${stsRule}`, true);
    if (!r) return requireTlsNone(tls);
    const permanent = r.unmet !== undefined && r.level === "mta-sts";
    return { ...r, requireTls: true, permanent, status: permanent ? "5.7.10" : "4.7.5" };
  }

  let req: TlsRequirement | undefined;
  const srv = tls?.tlsSrv ? parseTlsSrv(tls.tlsSrv.rhs) : undefined;
  if (tls?.tlsSrv && srv) {
    const rule = `${tls.tlsSrv.key} ${tls.tlsSrv.rhs.trim()}`;
    if (srv.level === "dane") {
      req = fromDane("tls_srv", rule, srv.permanent) ?? temp({
        level: "dane",
        match: [],
        source: "tls_srv",
        rule,
        permanent: srv.permanent,
        unmet: `no DNSSEC-validated TLSA records for ${name}`,
      });
    } else if (srv.level === "mta-sts") {
      req = fromSts("tls_srv", rule, true, srv.permanent) ?? temp({
        level: "mta-sts",
        match: [],
        source: "tls_srv",
        rule,
        permanent: srv.permanent,
        unmet: `no MTA-STS policy for ${tls.domain}`,
      });
    } else {
      req = temp({ level: srv.level, match: srv.match, source: "tls_srv", rule, permanent: srv.permanent });
    }
  }
  if (!req && !flags.tlsRequiredNo) req = fromDane("dane", daneRule) ?? fromSts("mta-sts", stsRule, false);
  if (!req && flags.tlsRequiredNo && (fromDane("dane", daneRule) || fromSts("mta-sts", stsRule, false))) {
    req = temp({ level: "may", match: [], source: "tls-required", rule: "TLS-Required: No" });
  }
  req ??= temp({
    level: securityLevel,
    match: [],
    source: "security_level",
    rule: `security_level ${securityLevel}`,
  });

  const tryTls = tls?.tryTls?.[name] ?? (host.address ? tls?.tryTls?.[host.address] : undefined);
  if (tryTls && tryTlsForbids(tryTls.rhs)) {
    const rule = `${tryTls.key} ${tryTls.rhs.trim()}`;
    if (req.level === "may" || req.level === "none") {
      return temp({ level: "none", match: [], source: "try_tls", rule });
    }
    return { ...req, unmet: req.unmet ?? `${req.rule} requires TLS, but ${rule} forbids STARTTLS` };
  }
  return req;
}

function requireTlsNone(tls: RouteTls | undefined): TlsRequirement {
  return {
    level: "mta-sts",
    match: [],
    source: "mta-sts",
    rule: "REQUIRETLS",
    unmet: `REQUIRETLS: ${tls?.domain ?? "the next hop"} has neither DANE nor an MTA-STS policy`,
    requireTls: true,
    permanent: true,
    status: "5.7.10",
  };
}

/** Whether a requirement of this level needs an encrypted connection (no plain-text fallback). */
export function requiresTls(level: TlsLevel): boolean {
  return level !== "none" && level !== "may";
}

/** Whether a requirement of this level needs the server to be authenticated (PKIX or DANE). */
export function requiresAuthentication(level: TlsLevel): boolean {
  return level === "verify" || level === "dane" || level === "mta-sts";
}

/** What makes two requirements the same (a connection opened under one meets the other). */
export function requirementKey(r: TlsRequirement): string {
  return JSON.stringify([r.level, r.match, r.tlsa ?? [], r.requireTls === true]);
}

/** `verify (tls_srv:.example.com verify)`, for logs and qmgrctl explain. */
export function describeRequirement(r: TlsRequirement): string {
  const names = r.match.length > 0 ? ` match=${r.match.join(",")}` : "";
  const tlsa = r.tlsa ? ` tlsa=${r.tlsa.length}` : "";
  const unmet = r.unmet ? `, unmet: ${r.unmet}` : "";
  return `${r.level}${names}${tlsa} (${r.rule})${unmet}`;
}
