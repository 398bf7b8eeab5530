// Reads a parsed section against its spec (config/schema.ts): matches option and section names
// case-insensitively, rejects unknown, misplaced and duplicate entries, and converts every option value
// to its kind (times to ms, sizes to bytes), checking its range. Map references stay unresolved (MapRef)
// for config/build.ts. Throws ConfigError at the offending token. Touches nothing.

import { ConfigError, type Pos } from "./error.ts";
import type { Entry, OptionNode, Scalar, SectionNode, Value } from "./parser.ts";
import {
  COMPONENT_NAMES,
  DSN_FLAGS,
  FILTER_SOCKET_TYPES,
  type Kind,
  LIST_KINDS,
  MAP_TYPES,
  MILTER_ACTIONS,
  type SectionSpec,
  SECURITY_LEVELS,
  SMTPS_FLAGS,
  START_ACTIONS,
  WORD_LISTS,
} from "./schema.ts";
import {
  formatSize,
  formatTime,
  isPlainNumber,
  parseBoolean,
  parseIpAddress,
  parseNameserver,
  parseNetmask,
  parseNumber,
  parseSize,
  parseTime,
} from "./values.ts";

const KB = 1024;
const GB = KB * KB * KB;
/**
 * Plain numbers read in the README's unit that an operator hardly means: an old byte count read as KB,
 * an old millisecond count read as seconds or microseconds. `[lowest plausible, highest plausible]` of
 * the value in its internal unit (bytes, ms), by option.
 */
const PLAUSIBLE: Record<string, [number, number]> = {
  max_message_size: [0, GB],
  min_disk_space: [0, 10 * GB],
  ok_disk_space: [0, 10 * GB],
  max_commit_delay: [1, Infinity],
  merge_delay_max: [0, 24 * 3600 * 1000],
};
/** The default unit of a plain number, by kind, for the warning. */
const PLAIN_UNIT: Partial<Record<Kind, string>> = {
  size_kb: "KB",
  size0_kb: "KB",
  time_us: "microseconds",
  time0: "seconds",
  time: "seconds",
};

/** A `mailertable = NAME;` reference, resolved once every map declaration is known. */
export class MapRef {
  constructor(readonly name: string, readonly pos: Pos) {}
}

/** A section read against its spec: option values by canonical name, subsections in text order. */
export interface Block {
  keyword: string;
  name?: string;
  node: SectionNode;
  /** "the top level", "section qmgr.IBDB", "section smtps MTA" (for messages). */
  label: string;
  values: Record<string, unknown>;
  blocks: Block[];
  /** Values read in an implausible unit (a plain number that looks like an old byte count): warnings. */
  warnings: { pos: Pos; text: string }[];
}

const EXPECTED: Record<Kind, string> = {
  string: "a non-empty string",
  count: "a number like 100",
  positive: "a number like 100",
  time: "a time like 30s, 5m or 1h 30m",
  time0: "a time like 30s, 5m or 0s",
  time_ms: "a time like 10ms or 1s (a plain number means milliseconds)",
  time_us: "a time like 10ms or 500us (a plain number means microseconds)",
  size: "a size like 10MB or 65536",
  size_kb: "a size like 10MB (a plain number means KB)",
  size0_kb: "a size like 100MB, or 0 for none (a plain number means KB)",
  mode: "a mode like 077 (octal with the leading 0)",
  log_facility: `a syslog facility among ${WORD_LISTS.log_facility.join(", ")}`,
  log_options: `openlog options among ${WORD_LISTS.log_options.join(", ")}`,
  protected_flags: `flags among ${WORD_LISTS.protected_flags.join(", ")}`,
  local_user_flags: `flags among ${WORD_LISTS.local_user_flags.join(", ")}`,
  port: "a port number like 25",
  address: "an IPv4 or IPv6 address like 127.0.0.1",
  socket_type: "inet or unix",
  map_type: `one of ${MAP_TYPES.join(", ")}`,
  map_ref: "a map name",
  map_refs: "map names like { local, remote }",
  alias_flags: `flags among ${WORD_LISTS.alias_flags.join(", ")}`,
  allow_by: `one or more of ${WORD_LISTS.allow_by.join(", ")}`,
  match_type: `one or more of ${WORD_LISTS.match_type.join(", ")}`,
  netmask: "a netmask like 255.255.255.0, 0xffffff00 or a prefix length like 24",
  flags: `flags among ${SMTPS_FLAGS.join(", ")}`,
  nameservers: "an IP address like 127.0.0.1 or 10.0.0.1:5353",
  components: `component names among ${COMPONENT_NAMES.join(", ")}`,
  start_action: `one of ${START_ACTIONS.join(", ")}`,
  dsn_flags: `flags among ${DSN_FLAGS.join(", ")}`,
  security_level: `one of ${SECURITY_LEVELS.join(", ")}`,
  tls_flags: `flags among ${WORD_LISTS.tls_flags.join(", ")}`,
  auth_flags: `flags among ${WORD_LISTS.auth_flags.join(", ")}`,
  mailauth_flags: `flags among ${WORD_LISTS.mailauth_flags.join(", ")}`,
  sasl_mechs: `mechanisms among ${WORD_LISTS.sasl_mechs.join(", ")}`,
  networks: "IP addresses or networks like 127.0.0.1 or 10.0.0.0/8",
  filter_socket_type: `one of ${FILTER_SOCKET_TYPES.join(", ")}`,
  milter_action: `one of ${MILTER_ACTIONS.join(", ")}`,
  milter_flags: `flags among ${WORD_LISTS.milter_flags.join(", ")}`,
  smtpc_flags: `flags among ${WORD_LISTS.smtpc_flags.join(", ")}`,
  policy_stages: `stages among ${WORD_LISTS.policy_stages.join(", ")}`,
};

/** Reads `node` (a section matching `spec`) in `file`; `path` is the dotted keyword path of its parent. */
export function readBlock(node: SectionNode, spec: SectionSpec, file: string, path = ""): Block {
  const fail = (pos: Pos, detail: string): never => {
    throw new ConfigError(file, pos.line, pos.col, detail);
  };
  const keywordPath = path ? `${path}.${spec.keyword}` : spec.keyword;
  const label = spec.keyword === ""
    ? "the top level"
    : `section ${keywordPath}${node.name ? ` ${node.name.text}` : ""}`;
  const block: Block = {
    keyword: spec.keyword,
    name: node.name?.text,
    node,
    label,
    values: {},
    blocks: [],
    warnings: [],
  };
  const warn = (pos: Pos, text: string) => block.warnings.push({ pos, text });
  const options = new Map(Object.keys(spec.options).map((name) => [name.toLowerCase(), name]));
  const sections = new Map(spec.sections.map((s) => [s.keyword.toLowerCase(), s]));
  const seen = new Set<string>();
  const once = (name: string, entry: Entry) => {
    if (seen.has(name)) {
      fail(entry, `duplicate ${entry.kind} ${name} in ${label}, expected it once per section`);
    }
    seen.add(name);
  };
  const where = label === "the top level" ? "at the top level" : `in ${label}`;

  for (const entry of node.entries) {
    if (entry.kind === "flag") {
      const option = options.get(entry.name.toLowerCase());
      fail(
        entry,
        option
          ? `unexpected ${entry.name}; ${where}, expected ${option} = value;`
          : `unknown option ${entry.name} ${where}, expected ${
            oneOf(Object.keys(spec.options), "no options")
          }`,
      );
      continue;
    }
    const written = entry.kind === "option" ? entry.name : entry.keyword;
    const option = options.get(written.toLowerCase());
    const sub = sections.get(written.toLowerCase());
    if (entry.kind === "option") {
      if (option) {
        once(option, entry);
        block.values[option] = convert(spec.options[option], entry, fail, warn);
      } else if (sub) {
        fail(entry, `${sub.keyword} is a section, expected ${sub.keyword} { ... }`);
      } else {
        fail(
          entry,
          `unknown option ${written} ${where}, expected ${oneOf(Object.keys(spec.options), "no options")}`,
        );
      }
    } else if (sub) {
      if (sub.name === "none" && entry.name) {
        fail(entry.name, `unexpected name ${entry.name.text} for section ${sub.keyword}, expected {`);
      }
      if (sub.name === "required" && !entry.name) {
        fail(entry, `missing name for section ${sub.keyword}, expected ${sub.keyword} NAME { ... }`);
      }
      if (!sub.repeat) once(sub.keyword, entry);
      block.blocks.push(readBlock(entry, sub, file, keywordPath));
    } else if (option && LIST_KINDS.has(spec.options[option]) && !entry.name) {
      // `flags { }`, or the README's `allow_by { sender; client_ip; }`: a list written as a section of
      // flags (`word;`, or `word = true;` / `word = false;`).
      once(option, entry);
      block.values[option] = convert(spec.options[option], flagList(entry, option, fail), fail, warn);
    } else if (option) {
      fail(entry, `${option} is an option, expected ${option} = value;`);
    } else {
      const known = spec.sections.map((s) => s.keyword);
      fail(
        entry,
        `unknown section ${written} ${where}, expected ${oneOf(known, "an option (no sections here)")}`,
      );
    }
  }
  return block;
}

/** The flags of a section-form list option (`allow_by { sender; client_ip = true; }`) as its list value. */
function flagList(
  section: SectionNode,
  option: string,
  fail: (pos: Pos, detail: string) => never,
): OptionNode {
  const items: Scalar[] = [];
  for (const entry of section.entries) {
    const scalar = (token: { text: string; line: number; col: number }): Scalar => ({
      kind: "scalar",
      text: token.text,
      quoted: false,
      tokens: [{ kind: "word", ...token }],
      line: token.line,
      col: token.col,
    });
    if (entry.kind === "flag") {
      items.push(scalar(entry.token));
    } else if (entry.kind === "option" && entry.value.kind === "scalar") {
      const on = parseBoolean(entry.value.text);
      if (on === undefined) {
        fail(
          entry.value,
          `bad value ${JSON.stringify(entry.value.text)} for ${entry.name}, expected true or false`,
        );
      }
      if (on) items.push(scalar({ text: entry.name, line: entry.line, col: entry.col }));
    } else {
      fail(entry, `unexpected ${entry.kind} in ${option} { }, expected flags like name;`);
    }
  }
  return {
    kind: "option",
    name: option,
    value: { kind: "list", items, line: section.line, col: section.col },
    line: section.line,
    col: section.col,
  };
}

function oneOf(names: string[], none: string): string {
  if (names.length === 0) return none;
  return names.length === 1 ? names[0] : `one of ${names.join(", ")}`;
}

/** Converts an option's value to its kind, or fails at the offending token. */
function convert(
  kind: Kind,
  option: OptionNode,
  fail: (pos: Pos, detail: string) => never,
  warn: (pos: Pos, text: string) => void,
): unknown {
  const { name, value } = option;
  if (LIST_KINDS.has(kind)) {
    const items = value.kind === "list" ? value.items : [single(value)];
    const converted = items.map((item) => convertScalar(kind, item));
    return [...new Set(converted)];
  }
  if (value.kind === "list") fail(value, `unexpected list for ${name}, expected ${EXPECTED[kind]}`);
  const converted = convertScalar(kind, value);
  checkPlausible(converted);
  return converted;

  /** Warns when a plain number, read in the option's default unit, gives an implausible value. */
  function checkPlausible(converted: unknown): void {
    const bounds = PLAUSIBLE[name.toLowerCase() === "max_commit_delay" ? "max_commit_delay" : name];
    const unit = PLAIN_UNIT[kind];
    if (!bounds || !unit || typeof converted !== "number" || value.kind !== "scalar") return;
    if (!isPlainNumber(value.text) || converted === 0) return;
    if (converted >= bounds[0] && converted <= bounds[1]) return;
    const shown = kind.startsWith("size") ? formatSize(converted) : formatTime(converted);
    warn(
      value,
      `plain number ${value.text} for ${name} is read in ${unit} (${shown}), which looks implausible; ` +
        `write the unit (e.g. ${kind.startsWith("size") ? "10MB" : kind === "time_us" ? "10ms" : "5m"}) ` +
        `if another was meant`,
    );
  }

  /** A scalar made of one word, or of several words where the kind allows it (a time, a size). */
  function single(value: Value): Scalar {
    if (value.kind === "list") return fail(value, `unexpected list for ${name}, expected ${EXPECTED[kind]}`);
    const joins = kind === "time" || kind === "time0" || kind === "time_ms" || kind === "time_us" ||
      kind === "size" || kind === "size_kb" || kind === "size0_kb";
    if (!value.quoted && value.tokens.length > 1 && !joins) {
      fail(value.tokens[1], `unexpected word ${value.tokens[1].text} after the value of ${name}, expected ;`);
    }
    return value;
  }

  function convertScalar(kind: Kind, scalar: Scalar): unknown {
    const text = single(scalar).text;
    const bad = (): never =>
      fail(scalar, `bad value ${JSON.stringify(text)} for ${name}, expected ${EXPECTED[kind]}`);
    const range = (n: number | undefined, min: number, max: number, expected: string): number => {
      if (n === undefined) return bad();
      if (!Number.isSafeInteger(n) || n < min || n > max) {
        fail(scalar, `value ${text} of ${name} out of range, expected ${expected}`);
      }
      return n;
    };
    const MAX = Number.MAX_SAFE_INTEGER;
    switch (kind) {
      case "string":
        return text === "" ? bad() : text;
      case "count":
        return range(parseNumber(text), 0, MAX, "a number of 0 or more");
      case "positive":
        return range(parseNumber(text), 1, MAX, "a number of 1 or more");
      case "time":
        return range(parseTime(text), 1, MAX, "a time longer than 0s");
      case "time0":
        return range(parseTime(text), 0, MAX, "a time of 0s or more");
      case "time_ms":
        return range(parseTime(text, 1), 0, MAX, "a time of 0ms or more");
      case "time_us": {
        const ms = parseTime(text, 1 / 1000);
        if (ms === undefined) return bad();
        if (!Number.isFinite(ms) || ms < 0 || ms > MAX) {
          fail(scalar, `value ${text} of ${name} out of range, expected a time of 0us or more`);
        }
        return ms;
      }
      case "size":
        return range(parseSize(text), 1, MAX, "a size of 1 byte or more");
      case "size_kb":
        return range(parseSize(text, KB), 1, MAX, "a size of 1 byte or more");
      case "size0_kb":
        return range(parseSize(text, KB), 0, MAX, "a size of 0 bytes or more");
      case "mode": // numeric as the README says: a leading 0 makes it octal (`umask = 077;`)
        return range(parseNumber(text), 0, 0o777, "a mode from 0 to 0777");
      case "dsn_flags": {
        const flag = DSN_FLAGS.find((f) => f.toLowerCase() === text.toLowerCase());
        if (flag) return flag;
        return fail(scalar, `unknown flag ${text} for ${name}, expected one of ${DSN_FLAGS.join(", ")}`);
      }
      case "port":
        return range(parseNumber(text), 1, 65535, "a port from 1 to 65535");
      case "address":
        return parseIpAddress(text) ?? bad();
      case "map_type": {
        const type = text.toLowerCase();
        if (MAP_TYPES.includes(type)) return type;
        return fail(scalar, `unknown map type ${text} for ${name}, expected ${EXPECTED[kind]}`);
      }
      case "map_refs":
        return text === "" ? bad() : new MapRef(text, { line: scalar.line, col: scalar.col });
      case "alias_flags":
      case "allow_by":
      case "match_type":
      case "protected_flags":
      case "local_user_flags":
      case "tls_flags":
      case "auth_flags":
      case "log_options":
      case "sasl_mechs":
      case "mailauth_flags":
      case "milter_flags":
      case "smtpc_flags":
      case "policy_stages": {
        const word = text.toLowerCase();
        if ((WORD_LISTS[kind] as readonly string[]).includes(word)) return word;
        return fail(scalar, `unknown value ${text} for ${name}, expected ${EXPECTED[kind]}`);
      }
      case "log_facility": {
        const word = text.toLowerCase();
        if ((WORD_LISTS.log_facility as readonly string[]).includes(word)) return word;
        return fail(
          scalar,
          `unknown syslog facility ${text} for ${name}, expected one of ${
            WORD_LISTS.log_facility.join(", ")
          }`,
        );
      }
      case "netmask":
        return parseNetmask(text) ?? bad();
      case "networks": {
        const [address, bits, ...more] = text.split("/");
        const ip = parseIpAddress(address);
        const max = ip?.includes(":") ? 128 : 32;
        const badBits = bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max);
        if (ip === undefined || more.length > 0 || badBits) return bad();
        return bits === undefined ? ip : `${ip}/${Number(bits)}`;
      }
      case "socket_type": {
        const type = text.toLowerCase();
        if (type === "inet" || type === "unix") return type;
        return fail(scalar, `unknown socket type ${text} for ${name}, expected ${EXPECTED[kind]}`);
      }
      case "filter_socket_type":
      case "milter_action": {
        const word = text.toLowerCase();
        const words = kind === "milter_action" ? MILTER_ACTIONS : FILTER_SOCKET_TYPES;
        if (words.includes(word)) return word;
        return fail(scalar, `unknown value ${text} for ${name}, expected ${EXPECTED[kind]}`);
      }
      case "map_ref":
        return text === "" ? bad() : new MapRef(text, { line: scalar.line, col: scalar.col });
      case "flags": {
        const flag = text.toLowerCase();
        if (SMTPS_FLAGS.includes(flag)) return flag;
        return fail(scalar, `unknown flag ${text} for ${name}, expected one of ${SMTPS_FLAGS.join(", ")}`);
      }
      case "nameservers":
        return parseNameserver(text) ?? bad();
      case "components": {
        const component = text.toLowerCase();
        if (COMPONENT_NAMES.includes(component)) return component;
        return fail(
          scalar,
          `unknown component ${text} for ${name}, expected one of ${COMPONENT_NAMES.join(", ")}`,
        );
      }
      case "start_action": {
        const action = text.toLowerCase();
        if (START_ACTIONS.includes(action)) return action;
        return fail(scalar, `unsupported start action ${text} for ${name}, expected ${EXPECTED[kind]}`);
      }
      case "security_level": {
        const level = text.toLowerCase();
        if (SECURITY_LEVELS.includes(level)) return level;
        return fail(scalar, `unknown security level ${text} for ${name}, expected ${EXPECTED[kind]}`);
      }
      default: {
        const never: never = kind;
        throw new TypeError(`Convert value: unknown kind ${never}`);
      }
    }
  }
}
