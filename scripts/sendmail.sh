#!/bin/sh
# /usr/sbin/sendmail for smx: install with `ln -s /opt/smx/scripts/sendmail.sh /usr/sbin/sendmail` (any
# checkout path works). Runs scripts/sendmail.ts with only the net permission to smx's local submission
# listener. SMX_SUBMIT (default 127.0.0.1:25) names the listener, SMX_DOMAIN the domain of unqualified
# senders (default: this host's name). The exit code is sendmail's (75 when smx is down).
here=$(dirname "$(readlink -f "$0")")
server=${SMX_SUBMIT:-127.0.0.1:25}
domain=${SMX_DOMAIN:-$(hostname -f 2>/dev/null || hostname)}
user=$(id -un 2>/dev/null || echo root)
exec "${DENO:-deno}" run --quiet --no-prompt --no-config --allow-net="$server" "$here/sendmail.ts" \
  --smx-server="$server" --smx-user="$user" --smx-domain="$domain" "$@"
