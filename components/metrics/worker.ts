// The metrics worker: an optional service the MCP starts when the configuration has a metrics section.
// It serves Prometheus text (/metrics), a health check (/healthz), a status page (/) and the queue as
// JSON (/api/queue) over HTTP (server.ts), and knows only what it asks: qmgr's and smtps's snapshots over
// the peer ports the MCP wires to it, and every worker's state from the MCP.
// metrics may touch (components/mcp/permissions.ts): listen on its listen_socket addresses (a unix socket
// also needs read/write on its path); nothing else: no file (not even the queue: qmgr answers for it),
// no outgoing connection, no environment, no system information. So a flaw in its HTTP handling reaches
// no mail, and a slow scraper can hold nothing but its own connection.

import { runWorker } from "../protocol/worker_runtime.ts";
import { start } from "./server.ts";

runWorker("metrics", start);
