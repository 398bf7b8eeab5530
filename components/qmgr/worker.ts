// The queue manager's worker entry. qmgr owns every envelope: it commits them to the queue store (IBDB,
// group commit), schedules deliveries through smar (routes) and smtpc (delivery transactions) with
// per-destination slow start, records results and retries, makes DSNs, enforces smtps's per-client
// connection limits, guards the disk and serves the control socket for qmgrctl.
// May touch (and is started with exactly this, components/mcp/permissions.ts):
// - read/write of the IBDB and DEFEDB directories (the SQLite queue store);
// - read, create and delete in the CDB directory: recovery sweeps orphans, finished messages are removed,
//   and DSNs are new messages whose content qmgr writes there;
// - its control socket: read/write and `unix:<path>` net, the only network it has (Deno asks all three
//   to listen on a unix socket); no TCP/UDP at all;
// - read of the qmgr_conf map, when one is configured;
// - sys "statfs": the disk guard's free-space probe (node:fs statfs needs it in Deno); only that kind of
//   system information, and only while min_disk_space is not 0.
// No env, no run, no ffi.

import { runWorker } from "../protocol/worker_runtime.ts";
import { startQmgr } from "./qmgr.ts";

runWorker("qmgr", (ctx) => startQmgr(ctx));
