// smar, the address resolver: answers smtps' policy questions (relaying, the access map's anti-spam
// checks, client names and DNS blacklists, aliases and local users, greylisting, protected recipients)
// and qmgr's routing questions (mailertable, else MX and A records from its own DNS stub resolver).
//
// May touch (its Deno permission set):
// - net: each nameserver as `<ip>:<port>` (UDP queries, TCP when an answer is truncated), plus
//   `<bind address>:0` so a UDP socket can bind an ephemeral port: `127.0.0.1:0` for loopback nameservers,
//   `0.0.0.0:0` (IPv6: `[::1]:0` / `[::]:0`) for others. Deno checks a UDP bind as net access to the local
//   address and port. What Deno 2.9 cannot express: its net permission names host:port only, with no
//   protocol (UDP, TCP) and no operation (connect, bind, listen), so `<bind address>:0` also lets smar
//   open a TCP listener on a port the kernel picks (never one it chooses: `0.0.0.0:25` is refused), on
//   that address (loopback only for loopback nameservers). There is no narrower entry that still lets a
//   UDP socket bind; tests/mcp_least_privilege_test.ts shows what remains. (DNS over TCP alone would need
//   no bind entry, at the price of a connection per query; smar uses UDP as resolvers are expected to.)
//   dns/nameservers.ts `nameserverNetPermissions()` computes the list. Socket maps: `<address>:<port>`, or
//   `unix:<path>` (with read and write on the path) for a unix domain socket.
// - read: its map files (mailertable, access map, aliases, local users, members of sequences, a passwd
//   file); /etc/resolv.conf only when no nameserver is configured.
// - read and write: the greylisting database (main_DB_name), when greylisting is configured.
// - MTA-STS (smar { MTA_STS { } }, RFC 8461), when configured: net to `0.0.0.0/0:443` (any IPv4 host on
//   the HTTPS port, MTA_STS.HTTPS_port in tests, nothing else) to fetch policies from
//   `mta-sts.DOMAIN`, whose addresses smar's own resolver finds; read and write on the policy cache
//   (MTA_STS.cache_file); read on MTA_STS.CAcert_file. smar is the one to fetch: it already owns DNS
//   and routing, and the policy decides which MX hosts a route keeps. With qmgr's TLS_RPT the same
//   `0.0.0.0/0:443` lets smar POST TLS-RPT reports to `https:` addresses for qmgr, which has no network. Like smtpc's port 25, the CIDR
//   with a port would also let smar listen on that port; it never does.
// needs.ts computes the map and database entries. Nothing else: no env, no subprocesses.

import { runWorker } from "../protocol/worker_runtime.ts";
import { start } from "./service.ts";

runWorker("smar", start);
