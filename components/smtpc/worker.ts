// smtpc, the SMTP/LMTP client: takes delivery transactions from qmgr (`qmgr.deliver`), connects to the
// route's hosts, speaks ESMTP or LMTP, and answers `smtpc.result` with one result per recipient.
//
// May touch (the permission set the MCP gives it, nothing else):
// - net: connect out to the destination ports only, as `0.0.0.0/0:<port>` for each port of
//   config.smtpc.ports (25 plus every port the mailertable names). A CIDR with a port lets it connect to
//   any address on that port and nothing on any other port. (Deno's net permission does not tell connect
//   from listen: a listen on a destination port itself would pass; every other port is refused.)
// - read: the CDB directory (CDB_base_directory), to stream message content.
// No write, env, sys, run, ffi or import permission: smtpc never changes anything on disk.

import { runWorker } from "../protocol/worker_runtime.ts";
import { start } from "./dispatch.ts";

runWorker("smtpc", start);
