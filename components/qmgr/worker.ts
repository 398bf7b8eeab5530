// The queue manager's worker entry. qmgr owns every envelope: it commits them to the queue store (IBDB,
// group commit), schedules deliveries through smar (routes) and smtpc (delivery transactions), records
// results and retries, and enforces smtps's per-client connection limits.
// May touch (and is started with exactly this): read/write of the IBDB and DEFEDB directories (the SQLite
// queue store); read and delete in the CDB directory (recovery sweeps orphans, finished messages are
// removed; deleting needs write permission there, qmgr never writes content). No network, no env, no run.

import { runWorker } from "../protocol/worker_runtime.ts";
import { startQmgr } from "./qmgr.ts";

runWorker("qmgr", (ctx) => startQmgr(ctx));
