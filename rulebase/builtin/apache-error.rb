version=2
# Built-in rulebase: Apache httpd error log lines, as written to the error log file
# ("[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] ...") or, with "ErrorLog syslog",
# as the syslog MSG, which has no timestamp ("[error] [client 1.2.3.4] ..."). Both the
# Apache 2.2 form ("[level] [client IP] message") and the 2.4 form ("[module:level] [pid
# N:tid N] (errno)OS error: [client IP:port] AHnnnnn: message") are recognized; a 2.4
# line may leave out any of the parts after the level, as ErrorLogFormat and the message
# decide.
#
# Fields (the names every built-in uses, see FIELDS.md):
#   timestamp    the time as Apache prints it ("Wed Oct 11 14:32:52.123456 2023"), when
#                the line has one
#   level        emerg, alert, crit, error, warn, notice, info, debug, trace1-8
#   module       the module that logged the line (2.4; "" for a module without a name)
#   pid, tid     process and thread (2.4)
#   client_ip, client_port   the HTTP client (2.4 prints the port; an IPv6 client with a
#                port is kept whole in client, "2001:db8::1:51234")
#   os_errno, os_error       the operating system error before the message ("(111)Connection
#                refused: "; 2.4 puts it before the client, 2.2 after)
#   code         the number of the 2.4 message id (AH00128 -> "00128")
#   message      the text, without a trailing ", referer: ..." (which goes to referrer)
#
# Tags: http,apache,error-log on every rule, and
#   error        level emerg, alert, crit or error
#   warning      level warn
#
# The parts after the level are user-defined types: every alternative of every one of
# them ends in "rest" (through @apache_text), so its length (liblognorm takes the furthest
# offset any parser reached) is always the end of the line, the one place such a type is
# reliable. Levels are named literals, so that a bracket is only taken for a level when it
# holds one.
type=@apache_text:%message:string-to:, referer: %, referer: %referrer:rest%
type=@apache_text:%message:rest%
type=@apache22_body:[client %client_ip:char-to:]%] (%os_errno:number%)%os_error:string-to:: %: %.:@apache_text%
type=@apache22_body:[client %client_ip:char-to:]%] %.:@apache_text%
type=@apache22_body:(%os_errno:number%)%os_error:string-to:: %: %.:@apache_text%
type=@apache22_body:%.:@apache_text%
type=@apache24_msg:[client %client_ip:ipv4%:%client_port:number%] AH%code:number%: %.:@apache_text%
type=@apache24_msg:[client %client:char-to:]%] AH%code:number%: %.:@apache_text%
type=@apache24_msg:[client %client_ip:ipv4%:%client_port:number%] %.:@apache_text%
type=@apache24_msg:[client %client:char-to:]%] %.:@apache_text%
type=@apache24_msg:AH%code:number%: %.:@apache_text%
type=@apache24_msg:%.:@apache_text%
type=@apache24_rest:(%os_errno:number%)%os_error:string-to:: %: %.:@apache24_msg%
type=@apache24_rest:%.:@apache24_msg%
type=@apache24_body:[pid %pid:number%:tid %tid:number%] %.:@apache24_rest%
type=@apache24_body:[pid %pid:number%] %.:@apache24_rest%
type=@apache24_body:%.:@apache24_rest%

# --- Apache 2.4: [timestamp] [module:level] ..., and the same without the timestamp
rule=http,apache,error-log,error:[%timestamp:char-to:]%] [%module:char-sep::%:%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"emerg"},{"type":"literal","name":"level","text":"alert"},{"type":"literal","name":"level","text":"crit"},{"type":"literal","name":"level","text":"error"}]}%] %.:@apache24_body%
rule=http,apache,error-log,warning:[%timestamp:char-to:]%] [%module:char-sep::%:%{"type":"literal","name":"level","text":"warn"}%] %.:@apache24_body%
rule=http,apache,error-log:[%timestamp:char-to:]%] [%module:char-sep::%:%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"notice"},{"type":"literal","name":"level","text":"info"},{"type":"literal","name":"level","text":"debug"},{"type":"literal","name":"level","text":"trace1"},{"type":"literal","name":"level","text":"trace2"},{"type":"literal","name":"level","text":"trace3"},{"type":"literal","name":"level","text":"trace4"},{"type":"literal","name":"level","text":"trace5"},{"type":"literal","name":"level","text":"trace6"},{"type":"literal","name":"level","text":"trace7"},{"type":"literal","name":"level","text":"trace8"}]}%] %.:@apache24_body%
rule=http,apache,error-log,error:[%module:char-sep::%:%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"emerg"},{"type":"literal","name":"level","text":"alert"},{"type":"literal","name":"level","text":"crit"},{"type":"literal","name":"level","text":"error"}]}%] %.:@apache24_body%
rule=http,apache,error-log,warning:[%module:char-sep::%:%{"type":"literal","name":"level","text":"warn"}%] %.:@apache24_body%
rule=http,apache,error-log:[%module:char-sep::%:%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"notice"},{"type":"literal","name":"level","text":"info"},{"type":"literal","name":"level","text":"debug"},{"type":"literal","name":"level","text":"trace1"},{"type":"literal","name":"level","text":"trace2"},{"type":"literal","name":"level","text":"trace3"},{"type":"literal","name":"level","text":"trace4"},{"type":"literal","name":"level","text":"trace5"},{"type":"literal","name":"level","text":"trace6"},{"type":"literal","name":"level","text":"trace7"},{"type":"literal","name":"level","text":"trace8"}]}%] %.:@apache24_body%

# --- Apache 2.2: [timestamp] [level] ..., and the same without the timestamp
rule=http,apache,error-log,error:[%timestamp:char-to:]%] [%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"emerg"},{"type":"literal","name":"level","text":"alert"},{"type":"literal","name":"level","text":"crit"},{"type":"literal","name":"level","text":"error"}]}%] %.:@apache22_body%
rule=http,apache,error-log,warning:[%timestamp:char-to:]%] [%{"type":"literal","name":"level","text":"warn"}%] %.:@apache22_body%
rule=http,apache,error-log:[%timestamp:char-to:]%] [%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"notice"},{"type":"literal","name":"level","text":"info"},{"type":"literal","name":"level","text":"debug"}]}%] %.:@apache22_body%
rule=http,apache,error-log,error:[%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"emerg"},{"type":"literal","name":"level","text":"alert"},{"type":"literal","name":"level","text":"crit"},{"type":"literal","name":"level","text":"error"}]}%] %.:@apache22_body%
rule=http,apache,error-log,warning:[%{"type":"literal","name":"level","text":"warn"}%] %.:@apache22_body%
rule=http,apache,error-log:[%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"notice"},{"type":"literal","name":"level","text":"info"},{"type":"literal","name":"level","text":"debug"}]}%] %.:@apache22_body%
