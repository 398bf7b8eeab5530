// smar, the address resolver: answers smtps' policy questions (access map, relaying) and qmgr's routing
// questions (mailertable, else MX and A records from its own DNS stub resolver).
//
// May touch (its Deno permission set):
// - net: each nameserver as `<ip>:<port>` (UDP queries, TCP when an answer is truncated), plus
//   `<bind address>:0` so a UDP socket can bind an ephemeral port: `127.0.0.1:0` for loopback nameservers,
//   `0.0.0.0:0` (IPv6: `[::1]:0` / `[::]:0`) for others. Deno checks a UDP bind as net access to the local
//   address and port; with port 0 this grants no listening port anyone could connect to on purpose.
//   dns/nameservers.ts `nameserverNetPermissions()` computes the list.
// - read: its map files (mailertable, access map); /etc/resolv.conf only when no nameserver is configured.
// Nothing else: no writes, no env, no subprocesses.

import { runWorker } from "../protocol/worker_runtime.ts";
import { start } from "./service.ts";

runWorker("smar", start);
