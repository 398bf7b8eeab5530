// The smtps worker: the SMTP server (components/smtps/server.ts). It receives mail from clients, asks qmgr
// (connection limits, envelope commit) and smar (policy verdicts) through their client stubs, and writes
// message content into the CDB.
// smtps may touch: listen on its listen_socket addresses; read/write the CDB directory; sys "statfs" (the
// free space of the CDB's file system, checked before each message and while it is written, unless
// min_disk_space is 0: disk_space.ts); nothing else.

import { runWorker } from "../protocol/worker_runtime.ts";
import { start } from "./server.ts";

runWorker("smtps", start);
