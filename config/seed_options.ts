// What smx makes of sendmail X options that exist for its Unix process model (README 3.7: user, group,
// path, arguments, pass_fd_socket, pass_id, umask, CDB_gid, min/max_processes, processes, start_action;
// smtps's processes and min/max_processes take effect: config/processes.ts)
// and of the few other README options without an effect here: each is accepted and becomes a "note"
// (what smx does instead) or a "warning" (no effect, and why), which the MCP logs once at start and -V
// prints. In smx every component is a Deno worker of one process: Deno permissions take the place of the
// uids and gids, and the MCP hands each worker its configuration instead of a command line. Also turns
// the readers' unit warnings into ConfigWarnings. Touches nothing.

import type { Pos } from "./error.ts";
import type { Block } from "./read.ts";
import type { ConfigWarning } from "./types.ts";

const UIDS = "Deno permissions (each worker's own set) take the place of separate Unix users";

/** Why each process option of a component section has no effect in smx. */
const PROCESS_OPTION_WHY: Record<string, string> = {
  user: `every component runs as the MTA's Unix user; ${UIDS}`,
  group: `every component runs with the MTA's Unix group; ${UIDS}`,
  path: "components are Deno workers started from components/<name>/worker.ts, not programs",
  arguments: "workers take no command line: the MCP hands each its configuration",
  pass_fd_socket: "a component opens its own listen sockets (Deno cannot pass a socket to a worker)",
  pass_id: "the MCP numbers its workers (smtps@1, smtps@2 ...) and their generations itself",
  umask: "smx creates its files with its own modes (0600 queue files); the MTA's umask applies to the rest",
};

/** The notes and warnings for the component sections and options in `top` (read from file `source`). */
export function seedNotes(top: Block, source: string): ConfigWarning[] {
  const out: ConfigWarning[] = [];
  const at = (pos: Pos) => `${source}:${pos.line}:${pos.col}`;
  const add = (level: ConfigWarning["level"], pos: Pos, text: string) =>
    out.push({ level, message: `${at(pos)}: ${text}` });
  const where = (block: Block, option: string): Pos =>
    block.node.entries.find((e) => e.kind === "option" && e.name.toLowerCase() === option.toLowerCase()) ??
      block.node;

  for (const option of ["SMAR_socket", "SMTPC_socket", "SMTPS_socket"]) {
    if (top.values[option] !== undefined) {
      add(
        "warning",
        where(top, option),
        `${option} has no effect: the components talk over the MCP's worker channels`,
      );
    }
  }
  for (const block of top.blocks) {
    const component = block.keyword;
    if (!["qmgr", "smtps", "smtpc", "smar", "lda", "metrics"].includes(component)) continue;
    const name = block.name ? `${component} ${block.name}` : component;
    for (const [option, why] of Object.entries(PROCESS_OPTION_WHY)) {
      if (block.values[option] !== undefined) {
        add("warning", where(block, option), `${option} in ${name} has no effect: ${why}`);
      }
    }
    const action = block.values.start_action as string | undefined;
    if (action !== undefined && action !== "wait") {
      add(
        "note",
        where(block, "start_action"),
        `start_action ${action} in ${name} means wait here: the MCP starts every component with the MTA and it ` +
          "opens its own sockets (a worker cannot be handed a socket or started per connection)",
      );
    }
    const processes: [string, number | undefined][] = [
      ["min_processes", block.values.min_processes as number | undefined],
      ["max_processes", block.values.max_processes as number | undefined],
      ["processes", block.values.processes as number | undefined],
    ];
    for (const [option, n] of processes) {
      if (n === undefined) continue;
      if (component === "smtps") {
        add(
          "note",
          where(block, option),
          `${option} = ${n} in ${name}: smtps workers share the section's listen sockets (config/processes.ts)`,
        );
      } else if (n > 1) {
        add(
          "warning",
          where(block, option),
          `${option} = ${n} in ${name} has no effect yet: smx starts one ${component} worker`,
        );
      } else {
        add("note", where(block, option), `${option} = ${n} in ${name}: smx starts one ${component} worker`);
      }
    }
    if (block.values.CDB_gid !== undefined) {
      add(
        "warning",
        where(block, "CDB_gid"),
        `CDB_gid in ${name} has no effect: the MTA's Unix user owns the CDB files; which components may read them ${"is decided by their Deno permissions"}`,
      );
    }
    if (component === "smtpc" && block.values.wait_for_server !== undefined) {
      add(
        "note",
        where(block, "wait_for_server"),
        "wait_for_server in smtpc: the MCP wires smtpc's channel to qmgr before it starts, so smtpc never waits for it",
      );
    }
    for (const sub of block.blocks) subNotes(sub, name, add, where);
  }
  identNotes(top, add);
  return out;
}

/** One smtps worker serves every smtps section: its lines carry the first ident any section sets. */
function identNotes(top: Block, add: (level: ConfigWarning["level"], pos: Pos, text: string) => void): void {
  const idents = top.blocks.filter((b) => b.keyword === "smtps").flatMap((b) =>
    b.blocks.filter((s) => s.keyword === "log" && s.values.ident !== undefined).map((log) => ({
      name: b.name ? `smtps ${b.name}` : "smtps",
      ident: log.values.ident as string,
      pos: log.node,
    }))
  );
  for (const other of idents.slice(1)) {
    if (other.ident === idents[0].ident) continue;
    add(
      "note",
      other.pos,
      `log ident ${other.ident} of ${other.name}: one smtps worker serves every smtps section, its lines carry ${
        idents[0].ident
      } (of ${idents[0].name}), connections name their section`,
    );
  }
}

function subNotes(
  sub: Block,
  name: string,
  add: (level: ConfigWarning["level"], pos: Pos, text: string) => void,
  where: (block: Block, option: string) => Pos,
): void {
  switch (sub.keyword) {
    case "listen_socket":
      for (const option of ["user", "group"]) {
        if (sub.values[option] !== undefined) {
          add(
            "warning",
            where(sub, option),
            `${option} of a unix listen_socket in ${name} has no effect: smx does not change a socket's owner; ${"its umask decides who may connect"}`,
          );
        }
      }
      break;
    case "log":
      if (sub.values.facility !== undefined) {
        add(
          "note",
          where(sub, "facility"),
          `log facility in ${name}: smx sends every component's lines with the top-level log section's facility`,
        );
      }
      if (sub.values.options !== undefined) {
        add("note", where(sub, "options"), `log options in ${name} are kept; smx does not call openlog(3)`);
      }
      break;
    case "DEFEDB":
      if (sub.values.log_directory !== undefined) {
        add(
          "warning",
          where(sub, "log_directory"),
          "DEFEDB log_directory has no effect: the deferred queue is an SQLite database whose log (WAL) stays beside it",
        );
      }
      break;
    case "IQDB":
      if (sub.values.hash_table_entries !== undefined) {
        add(
          "note",
          where(sub, "hash_table_entries"),
          "IQDB hash_table_entries: smx's incoming queue sizes its hash table itself",
        );
      }
      break;
    case "auth":
      if (((sub.values.trusted_mechs as string[] | undefined) ?? []).includes("digest-md5")) {
        add(
          "warning",
          where(sub, "trusted_mechs"),
          `trusted_mechs DIGEST-MD5 in ${name}: smtps does not offer DIGEST-MD5 (historic, RFC 6331), so no ${"client authenticates with it"}`,
        );
      }
      if (sub.values.map_file === undefined) {
        add(
          "warning",
          sub.node,
          `auth in ${name} names no map_file: AUTH is not offered (smx checks passwords against its own ${"credentials map, built by deno task createmap auth, not Cyrus SASL's"})`,
        );
      }
      break;
  }
}

/** The readers' unit warnings of `block` and its subsections. */
export function unitWarnings(block: Block, source: string): ConfigWarning[] {
  return [
    ...block.warnings.map((w): ConfigWarning => ({
      level: "warning",
      message: `${source}:${w.pos.line}:${w.pos.col}: ${w.text}`,
    })),
    ...block.blocks.flatMap((b) => unitWarnings(b, source)),
  ];
}
