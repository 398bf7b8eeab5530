// A message qmgr makes itself besides DSNs (a TLS-RPT report): its content goes into a new CDB file
// (framed like every queue file, synced with its directory), its envelope is committed through the
// group commit, and the scheduler then delivers it like any message. May touch: create files in the
// CDB directory; the store through the group commit.

import { dirname } from "node:path";
import { CdbFrame, cdbPath } from "../mail/cdb.ts";
import { newQueueId } from "../mail/queue_id.ts";
import type { Envelope } from "../protocol/messages.ts";
import { PRIVATE_FILE } from "../util/private_files.ts";
import { syncDir } from "../util/sync_dir.ts";
import type { ActiveQueue } from "./active_queue.ts";
import type { GroupCommit } from "./group_commit.ts";
import type { QueueStore } from "./store.ts";

export interface OwnMailDeps {
  store: QueueStore;
  commit: GroupCommit;
  aq: ActiveQueue;
  cdbBase: string;
  hostname: string;
  now: () => number;
  admit: (env: Envelope, active: number) => void;
}

/** Queues `content` from `sender` to `recipient`; resolves with the queue id once it is committed. */
export async function submitOwnMail(
  d: OwnMailDeps,
  sender: string,
  recipient: string,
  content: string,
): Promise<string> {
  const at = d.now();
  const id = newQueueId(at);
  const path = cdbPath(d.cdbBase, id);
  const bytes = new TextEncoder().encode(content);
  const env: Envelope = {
    id,
    cdbPath: path,
    size: bytes.length,
    arrival: at,
    sender,
    recipients: [{ address: recipient }],
    client: { ip: "127.0.0.1", helo: d.hostname },
  };
  const frame = new CdbFrame();
  const file = await Deno.open(path, { write: true, createNew: true, mode: PRIVATE_FILE });
  try {
    try {
      for (const part of [frame.head(), bytes, frame.tail(env, bytes.length)]) {
        let off = 0;
        while (off < part.length) off += await file.write(part.subarray(off));
      }
      await file.sync();
    } finally {
      file.close();
    }
    await syncDir(dirname(path));
  } catch (err) {
    await Deno.remove(path).catch(() => {});
    throw err;
  }
  const active = d.aq.reserve(1);
  try {
    await d.commit.run(() => d.store.insertEnvelope(env, active, at), { envelope: true });
  } catch (err) {
    d.aq.release(active);
    await Deno.remove(path).catch(() => {});
    throw err;
  }
  d.admit(env, active);
  return id;
}
