// The lda worker: the built-in local delivery agent (components/lda/server.ts), an optional service the
// MCP starts when the configuration has an lda section. It speaks LMTP (RFC 2033) to smtpc and writes each
// message into <mail_root>/<user>/Maildir/. It has no peers: nothing reaches it by messages.
// lda may touch: listen on its listen_socket addresses; read/write under mail_root; read the
// local_user_map file and, with `tls { flags = { implicit }; }`, its cert_file and key_file. Nothing else (no other files, no outgoing connections, no environment).

import { runWorker } from "../protocol/worker_runtime.ts";
import { start } from "./server.ts";

runWorker("lda", start);
