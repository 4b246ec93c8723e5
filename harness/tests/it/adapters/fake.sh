#!/bin/sh
# A fake adapter for the harness's tests, in the spirit of nextest's test helpers: a program
# that passes, fails, hangs, crashes or never says hello on purpose. `sh fake.sh MODE`.
#
#   ok                 speaks the protocol: hello, connect (emits an event), echo, fail, shutdown
#   silent             never answers (observed mode); prints its environment to stderr
#   slow               loads for $FAKE_DELAY seconds (default 7) before it reads stdin, as an
#                      adapter loading its SDK on a busy machine; then behaves like `ok`
#   crash              writes to stderr and exits 3 without a word on stdout
#   crash-after-hello  answers hello, then exits 3 at the next command
#   hang               answers hello, starts a grandchild (pid in $FAKE_PIDFILE), ignores
#                      shutdown and SIGTERM
#   garbage            writes lines that break the protocol, then behaves like `ok`
#   future             announces protocol 2
#   noisy              writes 100 KiB to stderr, then behaves like `ok`
#
# `hello` names the implementation `$FAKE_NAME` (default `fake`), version `$FAKE_VERSION`
# (default `0.0.1`): several fakes can play the parts of several implementations.
mode=${1:-ok}

id_of() { printf '%s\n' "$1" | sed -n 's/^{"id":\([0-9]*\).*/\1/p'; }
cmd_of() { printf '%s\n' "$1" | sed -n 's/.*"cmd":"\([a-z_]*\)".*/\1/p'; }
hello() {
  printf '{"id":%s,"ok":true,"result":{"name":"%s","version":"%s","protocol":%s,"capabilities":["hello","connect","echo","fail","shutdown"]}}\n' "$1" "${FAKE_NAME:-fake}" "${FAKE_VERSION:-0.0.1}" "${2:-1}"
}

serve() {
  while IFS= read -r line; do
    id=$(id_of "$line")
    cmd=$(cmd_of "$line")
    case $cmd in
      hello) hello "$id" ;;
      connect)
        printf '{"event":"connection_state","at":1795670317090,"client":"alice","state":"connected"}\n'
        printf '{"id":%s,"ok":true,"result":{}}\n' "$id"
        ;;
      echo) printf '{"id":%s,"ok":true,"result":{"line":%s}}\n' "$id" "$line" ;;
      fail) printf '{"id":%s,"ok":false,"error":{"kind":"failed","message":"Conversation not found","code":50350,"status":404}}\n' "$id" ;;
      shutdown)
        printf '{"id":%s,"ok":true,"result":{}}\n' "$id"
        echo "fake: shutting down" >&2
        exit 0
        ;;
      *) printf '{"id":%s,"ok":false,"error":{"kind":"unsupported","message":"fake does not do %s"}}\n' "$id" "$cmd" ;;
    esac
  done
  echo "fake: stdin closed" >&2
}

case $mode in
  ok) serve ;;
  slow)
    sleep "${FAKE_DELAY:-7}"
    serve
    ;;
  silent)
    echo "observed=${REHEARSAL_OBSERVED:-} identity=${REHEARSAL_IDENTITY:-} ttl=${REHEARSAL_TOKEN_TTL:-} token_url=${REHEARSAL_TOKEN_URL:-} scenario=${REHEARSAL_SCENARIO:-}" >&2
    sleep 60
    ;;
  crash)
    echo "fake: cannot find module @twilio/conversations" >&2
    exit 3
    ;;
  crash-after-hello)
    IFS= read -r line
    hello "$(id_of "$line")"
    IFS= read -r line
    echo "fake: crashing" >&2
    exit 3
    ;;
  hang)
    trap '' TERM
    sleep 300 &
    echo $! > "${FAKE_PIDFILE:?}"
    while IFS= read -r line; do
      [ "$(cmd_of "$line")" = hello ] && hello "$(id_of "$line")"
    done
    # stdin closed: hang on.
    wait
    ;;
  garbage)
    echo 'this is not json'
    echo '[1,2,3]'
    echo '{"id":99,"ok":true,"result":{}}'
    echo '{"id":1}'
    serve
    ;;
  future)
    IFS= read -r line
    hello "$(id_of "$line")" 2
    serve
    ;;
  noisy)
    head -c 102400 /dev/zero | tr '\0' 'x' >&2
    printf '\nfake: the last line\n' >&2
    serve
    ;;
  *)
    echo "fake: unknown mode $mode" >&2
    exit 2
    ;;
esac
