#!/bin/sh
# `deno task start [-f FILE] [OPTIONS]`: runs the MTA with exactly the permissions its configuration
# needs, whatever the configuration names (a file in /etc, a queue in /var/spool, maps anywhere). First a
# run that may only read asks the MCP for the `deno run` line that configuration needs (--print-command:
# each worker's set and their union, see components/mcp/manifest.ts), then that line replaces this shell.
# Options that only print (-h, -V..., -n, --check, --print-permissions) run with read permission alone.
set -e
# deno task runs this in the repository; a relative -f FILE means a file where the user ran it (INIT_CWD).
here="${INIT_CWD:-$PWD}"
n=$#
prev=
for a in "$@"; do
  if [ "$prev" = "-f" ] || [ "$prev" = "--file" ]; then
    case "$a" in /*) ;; *) a="$here/$a" ;; esac
  fi
  set -- "$@" "$a"
  prev=$a
done
shift "$n"
cd "$(dirname "$0")/.."
for a in "$@"; do
  case "$a" in
    -h|--help|-V*|-n|--check|--print-permissions|--print-command)
      exec deno run --unstable-worker-options --allow-read components/mcp/main.ts "$@" ;;
  esac
done
line=$(deno run --unstable-worker-options --allow-read components/mcp/main.ts --print-command "$@")
eval "exec $line"
