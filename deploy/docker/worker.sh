#!/bin/sh
# Start one StreamPulse worker (the image's default command, installed as streampulse-worker):
#
#   faust -A app.main worker -l info --web-port "$WEB_PORT" [--web-host HOST] [extra args...]
#
# Why --web-host: whenever --web-port is given, Faust's worker command rewrites canonical_url to
# http://<web_host>:<web_port> (faust/cli/worker.py, _init_worker_options), which would replace
# the WORKER_CANONICAL_URL the app configured. Other workers use that URL to reach this one for
# table routing, so HOST is taken from WORKER_CANONICAL_URL: the advertised URL then stays
# http://HOST:$WEB_PORT. The web server still binds web_bind (0.0.0.0); web_host names it only.
set -eu

port="${WEB_PORT:-6066}"

if [ -z "${WORKER_CANONICAL_URL:-}" ]; then
    exec faust -A app.main worker -l info --web-port "$port" "$@"
fi

hostport="${WORKER_CANONICAL_URL#*://}"
hostport="${hostport%%/*}"
case "$hostport" in
    \[*\]) host="$hostport"; url_port="" ;;        # [v6 address], no port
    \[*\]:*) host="${hostport%:*}"; url_port="${hostport##*:}" ;;
    *:*) host="${hostport%:*}"; url_port="${hostport##*:}" ;;
    *) host="$hostport"; url_port="" ;;
esac

if [ -z "$host" ]; then
    echo "streampulse-worker: WORKER_CANONICAL_URL has no host: $WORKER_CANONICAL_URL" >&2
    exit 64
fi
if [ -n "$url_port" ] && [ "$url_port" != "$port" ]; then
    echo "streampulse-worker: WORKER_CANONICAL_URL port $url_port differs from WEB_PORT $port;" \
        "workers will be told http://$host:$port" >&2
fi

exec faust -A app.main worker -l info --web-port "$port" --web-host "$host" "$@"
