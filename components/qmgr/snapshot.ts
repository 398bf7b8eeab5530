// qmgr's answer to the metrics worker: its counters since it started, the per-minute series of the last
// hour, the delay histograms, the outgoing TLS sessions, the queue's shape (messages per state with their
// ages, the busiest recipient domains with their oldest message), the destinations marked down and the
// disk guard's last probe. Counters are read from memory; the queue's shape is one pass over the store,
// which the metrics worker asks for at most once a second, so a scraper cannot load qmgr.
// Receives: nothing (called by dispatch.ts). May touch: the queue database, read-only.

import type { QmgrSnapshotMessage } from "../protocol/messages.ts";
import type { DiskGuard } from "./disk_guard.ts";
import type { Occ } from "./occ.ts";
import type { QueueAdmin } from "./queue_admin.ts";
import type { Stats } from "./stats.ts";

/** The domains the status page lists at most. */
export const MAX_DOMAINS = 50;

export interface SnapshotDeps {
  stats: Stats;
  admin: QueueAdmin;
  occ: Occ;
  disk: DiskGuard;
  now: () => number;
}

/** Everything the metrics worker shows of qmgr, now. */
export function qmgrSnapshot(d: SnapshotDeps): QmgrSnapshotMessage {
  const { stats, admin, occ, disk } = d;
  const now = d.now();
  const counts = admin.counts();
  const free = disk.free;
  return {
    type: "qmgr.snapshot",
    started: stats.started,
    counters: {
      received: stats.total("received"),
      delivered: stats.total("delivered"),
      deferred: stats.total("deferred"),
      bounced: stats.total("bounced"),
      dsn: stats.total("dsn"),
    },
    perMinute: {
      received: stats.series("received"),
      delivered: stats.series("delivered"),
      deferred: stats.series("deferred"),
      bounced: stats.series("bounced"),
    },
    delay: {
      sent: stats.delay.sent.data(),
      deferred: stats.delay.deferred.data(),
      bounced: stats.delay.bounced.data(),
    },
    tlsOut: Object.fromEntries(stats.tlsOut),
    queue: {
      recipients: {
        incoming: counts.incoming,
        active: counts.active,
        deferred: counts.deferred,
        held: counts.held,
      },
      states: admin.shape(now),
      domains: admin.domains(MAX_DOMAINS),
    },
    down: occ.view().filter((e) => e.downUntil !== undefined).map((e) => ({
      address: e.address,
      until: e.downUntil!,
      failures: e.failures,
      ...(e.reason !== undefined ? { reason: e.reason } : {}),
    })),
    ...(disk.enabled && !Number.isNaN(free) ? { diskFree: free } : {}),
    diskLow: disk.low,
  };
}
