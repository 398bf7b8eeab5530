// The one handler for everything qmgr receives from its peers: a switch over the message type with an
// exhaustive default. smtps asks for connection verdicts and commits, the metrics worker for snapshots and
// the queue list (the endpoint has checked that only smtps sends smtps.* types, only metrics metrics.*);
// every other request type is a bug in the sender and answers rpc.failure. (smtpc results arrive as answers to qmgr.deliver requests and
// smar routes as answers to qmgr.route requests, so neither comes through here.)
// Receives: validated bodies from endpoint.ts. Sends: the answers it returns.

import type { Handler } from "../protocol/endpoint.ts";
import { failure } from "../protocol/endpoint.ts";
import type { Message, PeerName } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import type { ConnControl } from "./conn_control.ts";

export interface DispatchDeps {
  conn: ConnControl;
  commit: (env: Extract<Message, { type: "smtps.commit" }>["envelope"]) => Promise<Message>;
  /** The metrics worker's snapshot (snapshot.ts), once the queue is open. */
  snapshot?: () => Promise<Message>;
  /** The control socket's list command with these arguments (what qmgrctl list returns). */
  queueList?: (args: Record<string, unknown>) => Promise<Message>;
}

function refuse(from: PeerName, type: string): Message {
  log.error("qmgr", `refused ${type} from ${from}: qmgr does not serve it`);
  return failure(`qmgr does not serve ${type}`);
}

/** Builds qmgr's handler. */
export function makeHandler(d: DispatchDeps): Handler {
  return (from, body, peer) => {
    switch (body.type) {
      case "smtps.conn_open":
        return d.conn.open(body.ip, peer);
      case "smtps.conn_close":
        d.conn.close(body.ip, peer);
        return;
      case "smtps.commit":
        return d.commit(body.envelope);
      case "metrics.snapshot":
        if (from !== "metrics" || !d.snapshot) return refuse(from, body.type);
        return d.snapshot();
      case "metrics.queue_list":
        if (from !== "metrics" || !d.queueList) return refuse(from, body.type);
        return d.queueList(body.args);
      case "smtps.check_connect":
      case "smtps.check_mail":
      case "smtps.check_rcpt":
      case "smtps.dns_query":
      case "smtps.check_auth":
      case "smar.dns_answer":
      case "qmgr.conn_verdict":
      case "qmgr.committed":
      case "qmgr.commit_failed":
      case "qmgr.disk_state":
      case "qmgr.route":
      case "qmgr.deliver":
      case "qmgr.expand":
      case "qmgr.explain":
      case "smar.expansion":
      case "smar.explanation":
      case "smar.verdict":
      case "smar.route":
      case "smtpc.result":
      case "qmgr.dns_query":
      case "qmgr.https_post":
      case "smar.https_posted":
      case "qmgr.snapshot":
      case "smtps.snapshot":
      case "qmgr.queue_list":
      case "rpc.failure":
        return refuse(from, body.type);
      default: {
        const never: never = body;
        return refuse(from, (never as { type: string }).type);
      }
    }
  };
}
