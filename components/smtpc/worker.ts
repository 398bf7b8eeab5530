// smtpc, the SMTP/LMTP client: takes delivery transactions from qmgr (`qmgr.deliver`), connects to the
// route's hosts (or reuses an idle connection to one), speaks ESMTP or LMTP with STARTTLS as configured,
// and answers `smtpc.result` with one result per recipient.
//
// May touch (the permission set the MCP gives it, components/mcp/permissions.ts, nothing else):
// - net: connect out to the destination ports only, as `0.0.0.0/0:<port>` for each port of
//   config.smtpc.ports (25 plus every port the mailertable names). A CIDR with a port lets it connect to
//   any address on that port and nothing on any other port. (Deno's net permission does not tell connect
//   from listen: a listen on a destination port itself would pass; every other port is refused.) Each
//   IPv6 address literal of the mailertable (`[IPv6:2001:db8::1]`) is added as `[2001:db8::1]:<port>`:
//   known at start, it can be named exactly.
// - IPv6 in general: Deno 2.9.6 refuses an IPv6 CIDR in a net permission in every spelling (`::/0`,
//   `[::]/0:25`, `[::/0]:25`; its parser splits an unbracketed entry at the first colon and allows only a
//   port after a bracketed address), has no port-only or wildcard host entry, and cannot widen a running
//   worker's set; MX hosts' addresses are learnt only when mail is routed. So "any IPv6 host on port 25"
//   cannot be said. The trade-off is the opt-in `smtpc { flags = { ipv6 }; }`: smtpc then gets `net: true`,
//   any host on any port (and, as Deno does not tell connect from listen, it could listen too). smtpc
//   keeps itself to its ports in code instead (dispatch.ts refuses a route to another port when its net
//   permission is unrestricted), but that is a check of our own, not the sandbox's. Without the flag,
//   smar routes to A records only and an IPv6-only destination is deferred with the reason.
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
