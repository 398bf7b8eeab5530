// smtpc, the SMTP/LMTP client: takes delivery transactions from qmgr (`qmgr.deliver`), connects to the
// route's hosts (or reuses an idle connection to one), speaks ESMTP or LMTP with STARTTLS as configured,
// and answers `smtpc.result` with one result per recipient.
//
// May touch (the permission set the MCP gives it, components/mcp/permissions.ts, nothing else):
// - net: connect out to the destination ports only, as `0.0.0.0/0:<port>` for each port of
//   config.smtpc.ports (25 plus every port the mailertable names). A CIDR with a port lets it connect to
//   any address on that port and nothing on any other port. (Deno's net permission does not tell connect
//   from listen: a listen on a destination port itself would pass; every other port is refused.) IPv4
//   only: Deno 2.9.6 refuses an IPv6 CIDR such as `::/0` in a net permission, so smtpc cannot be given
//   "any IPv6 host on port 25"; a route to an IPv6 address fails as not permitted and the next host is
//   tried.
// - LMTP_socket, when configured: read, write and `unix:<absolute path>` net permission on that one path
//   (what Deno asks for a unix socket connect).
// - read: the CDB directory (CDB_base_directory), to stream message content; the TLS files of
//   `smtpc { tls { } }` (CAcert_file, CAcert_directory, cert_file, key_file), read once at start.
// - read: the authinfo map (`smtpc { authinfo }`, authinfo.ts) and exactly the secret files its
//   `USER SECRET_FILE` entries name: the MCP reads the map when it computes this set (permissions.ts
//   smtpcSecretFiles), so a secret file added to the map needs a restart before smtpc may read it.
//   Nothing else of the directories they are in. Inline secrets (`USER:SECRET`) need no more than the
//   map, which must then be mode 0600.
// No other write, and no env, sys, run, ffi or import permission: smtpc changes nothing on disk.

import { runWorker } from "../protocol/worker_runtime.ts";
import { start } from "./dispatch.ts";

runWorker("smtpc", start);
