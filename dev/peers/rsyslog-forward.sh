#!/usr/bin/env bash
# Start an rsyslogd that forwards everything it receives to a syslog target
# (e.g. a Meniscus listener), like a tenant's relay would.
#
#   rsyslog-forward.sh <workdir> <target-host> <target-port> <octet|lf|relp> [tls <ca.pem>]
#
# Input (env INPUT, default tcp):
#   tcp   imptcp on 127.0.0.1:$IN_PORT (default: a free port). Accepts LF and
#         octet-counted framing, RFC 5424 and RFC 3164:  logger --tcp -P PORT -n 127.0.0.1 ...
#   udp   imudp on 127.0.0.1:$IN_PORT.                  logger --udp -P PORT -n 127.0.0.1 ...
#   file  imfile following $workdir/input.log; every appended line is one message with
#         APP-NAME $FILE_TAG (default testapp) and HOSTNAME $PEER_HOSTNAME.
# Output: omfwd over TCP, RFC 5424 (RSYSLOG_SyslogProtocol23Format), framing
#   octet  TCP_Framing="octet-counted"   (RFC 6587 3.4.1)
#   lf     traditional LF framing        (RFC 6587 3.4.2)
#   relp   omrelp instead of omfwd: RELP, every message acknowledged by the receiver and
#          resent when it was not; with "tls <ca.pem>" RELP over TLS (librelp's TLS, the
#          server checked by name: TLS_PEER, default localhost)
# Env:
#   TENANT, TOKEN      when both set, STRUCTURED-DATA gets [$SD_ID tenant=".." token=".."]
#                      in front of whatever SD the message had (SD_ID default meniscus@32473)
#   PEER_HOSTNAME      localHostname for messages rsyslog makes itself (imfile); default rsyslog-peer
#   TLS_CERT, TLS_KEY  client certificate for mutual TLS (with "tls <ca.pem>")
#   TLS_AUTH           StreamDriverAuthMode, default x509/certvalid (chain checked, name not);
#                      TLS_PEER=name sets x509/name with that permitted peer
#   IN_PORT            fixed input port
#
# rsyslogd runs non-daemonized (-n) in the background with its own config, pid file,
# work dir and no imuxsock/imklog; it never touches /dev/log. On success prints
# key=value lines (also written to <workdir>/peer.env):
#   pid=…  input=tcp|udp|file  input_port=…  input_file=…  config=…  log=…
# Stop it with: kill <pid>
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ $# -ge 4 ] || peer_die "usage: $0 <workdir> <target-host> <target-port> <octet|lf|relp> [tls <ca.pem>]"
WD=$1 HOST=$2 PORT=$3 FRAMING=$4
TLS_CA=""
if [ $# -ge 5 ]; then
    [ "$5" = tls ] && [ $# -ge 6 ] || peer_die "optional arguments are: tls <ca.pem>"
    TLS_CA=$(realpath "$6")
    [ -r "$TLS_CA" ] || peer_die "cannot read CA file $6"
fi
case $FRAMING in
    octet) framing_param='TCP_Framing="octet-counted"' ;;
    lf) framing_param='TCP_Framing="traditional"' ;;
    relp) framing_param="" ;;
    *) peer_die "framing must be octet, lf or relp" ;;
esac
RSYSLOGD=$PEERS_BIN/rsyslogd # the wrapper install.sh writes (system or unpacked rsyslogd)
[ -x "$RSYSLOGD" ] || peer_die "$RSYSLOGD missing: run dev/peers/install.sh"

INPUT=${INPUT:-tcp}
SD_ID=${SD_ID:-meniscus@32473}
PEER_HOSTNAME=${PEER_HOSTNAME:-rsyslog-peer}
FILE_TAG=${FILE_TAG:-testapp}
mkdir -p "$WD/spool"
WD=$(realpath "$WD")
CONF=$WD/rsyslog.conf PIDFILE=$WD/rsyslogd.pid LOG=$WD/rsyslogd.log
rm -f "$PIDFILE"

# ---- global + TLS --------------------------------------------------------
global_extra=""
stream=""
if [ -n "$TLS_CA" ]; then
    global_extra="DefaultNetstreamDriverCAFile=\"$TLS_CA\""
    if [ -n "${TLS_CERT:-}" ]; then
        global_extra+=" DefaultNetstreamDriverCertFile=\"$(realpath "$TLS_CERT")\""
        global_extra+=" DefaultNetstreamDriverKeyFile=\"$(realpath "${TLS_KEY:?TLS_KEY goes with TLS_CERT}")\""
    fi
    if [ -n "${TLS_PEER:-}" ]; then
        stream="StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"$TLS_PEER\""
    else
        stream="StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"${TLS_AUTH:-x509/certvalid}\""
    fi
fi

# ---- template: built-in RFC 5424 format, or the same with the tenant SD element ----
template=RSYSLOG_SyslogProtocol23Format
template_def=""
set_sd=""
if [ -n "${TENANT:-}" ] && [ -n "${TOKEN:-}" ]; then
    peer_check_sd_value TENANT "$TENANT"
    peer_check_sd_value TOKEN "$TOKEN"
    peer_check_sd_value SD_ID "$SD_ID"
    sd="[$SD_ID tenant=\\\"$TENANT\\\" token=\\\"$TOKEN\\\"]"
    template=meniscus_tenant
    # Same string as RSYSLOG_SyslogProtocol23Format, with %STRUCTURED-DATA% replaced.
    template_def="template(name=\"meniscus_tenant\" type=\"string\" string=\"<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% %MSGID% %\$.sd% %msg%\\n\")"
    set_sd="if \$structured-data == \"-\" then { set \$.sd = \"$sd\"; } else { set \$.sd = \"$sd\" & \$structured-data; }"
fi

# ---- input ---------------------------------------------------------------
IN_FILE="" IN_PORT_OUT=""
case $INPUT in
    tcp)
        IN_PORT=${IN_PORT:-$(peer_free_port tcp)}
        IN_PORT_OUT=$IN_PORT
        input_def="module(load=\"imptcp\")
input(type=\"imptcp\" address=\"127.0.0.1\" port=\"$IN_PORT\" ruleset=\"fwd\")" ;;
    udp)
        IN_PORT=${IN_PORT:-$(peer_free_port udp)}
        IN_PORT_OUT=$IN_PORT
        input_def="module(load=\"imudp\")
input(type=\"imudp\" address=\"127.0.0.1\" port=\"$IN_PORT\" ruleset=\"fwd\" rcvbufSize=\"4m\")" ;;
    file)
        IN_FILE=$WD/input.log
        touch "$IN_FILE"
        input_def="module(load=\"imfile\" mode=\"inotify\")
input(type=\"imfile\" file=\"$IN_FILE\" tag=\"$FILE_TAG\" severity=\"info\" facility=\"user\" ruleset=\"fwd\" freshStartTail=\"off\")" ;;
    *) peer_die "INPUT must be tcp, udp or file" ;;
esac

# ---- output: omfwd (TCP syslog) or omrelp -----------------------------------
output_module=""
queue='queue.type="LinkedList" queue.size="200000" action.resumeRetryCount="-1" action.resumeInterval="1"'
if [ "$FRAMING" = relp ]; then
    relp_tls=""
    if [ -n "$TLS_CA" ]; then
        # librelp's own TLS (not the netstream driver): the server is checked by name
        # (TLS_PEER, default localhost, the test certificate's name); without an auth mode
        # librelp would use anonymous TLS, which no certificate-checking server accepts.
        relp_tls="tls=\"on\" tls.caCert=\"$TLS_CA\" tls.authMode=\"name\" tls.permittedPeer=[\"${TLS_PEER:-localhost}\"]"
        if [ -n "${TLS_CERT:-}" ]; then
            relp_tls+=" tls.myCert=\"$(realpath "$TLS_CERT")\" tls.myPrivKey=\"$(realpath "${TLS_KEY:?TLS_KEY goes with TLS_CERT}")\""
        fi
        global_extra="" stream=""
    fi
    output_module='module(load="omrelp")'
    output_action="action(type=\"omrelp\" target=\"$HOST\" port=\"$PORT\" template=\"$template\" $relp_tls $queue)"
else
    output_action="action(type=\"omfwd\" target=\"$HOST\" port=\"$PORT\" protocol=\"tcp\" $framing_param template=\"$template\" $stream $queue)"
fi

cat >"$CONF" <<EOF
# Generated by dev/peers/rsyslog-forward.sh — forwards to $HOST:$PORT ($FRAMING${TLS_CA:+, tls})
global(workDirectory="$WD/spool" processInternalMessages="on" net.enableDNS="off"
       localHostname="$PEER_HOSTNAME" maxMessageSize="64k" $global_extra)
$template_def
$input_def

$output_module
ruleset(name="fwd") {
    $set_sd
    $output_action
}

# rsyslog's own messages (default ruleset) stay local.
*.* action(type="omfile" file="$LOG")
EOF

"$RSYSLOGD" -N1 -f "$CONF" >"$WD/config-check.log" 2>&1 || { cat "$WD/config-check.log" >&2; peer_die "config rejected"; }
peer_spawn "$LOG" "$RSYSLOGD" -n -f "$CONF" -i "$PIDFILE"
pid=$PEER_PID
case $INPUT in
    tcp) peer_wait_listen "$pid" "$IN_PORT" 10 || { kill "$pid" 2>/dev/null; tail -5 "$LOG" >&2; peer_die "rsyslogd did not listen on $IN_PORT"; } ;;
    udp) peer_wait_udp "$pid" "$IN_PORT" 10 || { kill "$pid" 2>/dev/null; tail -5 "$LOG" >&2; peer_die "rsyslogd did not bind udp $IN_PORT"; } ;;
    file) peer_wait_file "$PIDFILE" 10 || { kill "$pid" 2>/dev/null; tail -5 "$LOG" >&2; peer_die "rsyslogd did not start"; } ;;
esac
peer_report "$WD/peer.env" "pid=$pid" "input=$INPUT" "input_port=$IN_PORT_OUT" "input_file=$IN_FILE" \
    "config=$CONF" "log=$LOG"
