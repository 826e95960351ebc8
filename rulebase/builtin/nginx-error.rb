version=2
# Built-in rulebase: nginx error log lines ("2023/10/11 14:32:52 [error] 123#123: *5
# message, client: 1.2.3.4, server: _, request: "GET /x HTTP/1.1", host: "h""), as written
# to the error log file or sent to syslog; lines without the leading date and time are
# recognized too.
#
# Fields (the names every built-in uses, see FIELDS.md):
#   timestamp    the time as nginx prints it ("2023/10/11 14:32:52"), when the line has one
#   level        emerg, alert, crit, error, warn, notice, info, debug
#   pid, tid     worker process and thread ("123#123")
#   connection   the connection number ("*5"), when the message concerns a connection
#   message      the text up to the request context nginx appends
#   client_ip, server, request, subrequest, upstream, host, referrer   that context
#                (whichever of them the line has, in nginx's order)
#
# Tags: http,nginx,error-log on every rule, and
#   error        level emerg, alert, crit or error
#   warning      level warn
#
# What follows "pid#tid: " is a user-defined type: every one of its alternatives ends in
# "rest" (@nginx_ctx ends with "%-:rest%", which takes the empty end of the line, or a
# context item it does not know), so its length (liblognorm takes the furthest offset any
# parser reached) is always the end of the line, the one place such a type is reliable.
# Levels are named literals, so that a bracket is only taken for a level when it holds one.
type=@nginx_ctx:, request: "%request:char-to:"%"%.:@nginx_ctx%
type=@nginx_ctx:, subrequest: "%subrequest:char-to:"%"%.:@nginx_ctx%
type=@nginx_ctx:, upstream: "%upstream:char-to:"%"%.:@nginx_ctx%
type=@nginx_ctx:, host: "%host:char-to:"%"%.:@nginx_ctx%
type=@nginx_ctx:, referrer: "%referrer:char-to:"%"%.:@nginx_ctx%
type=@nginx_ctx:%-:rest%
type=@nginx_text:%message:string-to:, client: %, client: %client_ip:char-to:,%, server: %server:char-sep:,%%.:@nginx_ctx%
type=@nginx_text:%message:rest%
type=@nginx_msg:*%connection:number% %.:@nginx_text%
type=@nginx_msg:%.:@nginx_text%

# --- date and time, [level], pid#tid: ...
rule=http,nginx,error-log,error:%timestamp:string-to: [% [%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"emerg"},{"type":"literal","name":"level","text":"alert"},{"type":"literal","name":"level","text":"crit"},{"type":"literal","name":"level","text":"error"}]}%] %pid:number%#%tid:number%: %.:@nginx_msg%
rule=http,nginx,error-log,warning:%timestamp:string-to: [% [%{"type":"literal","name":"level","text":"warn"}%] %pid:number%#%tid:number%: %.:@nginx_msg%
rule=http,nginx,error-log:%timestamp:string-to: [% [%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"notice"},{"type":"literal","name":"level","text":"info"},{"type":"literal","name":"level","text":"debug"}]}%] %pid:number%#%tid:number%: %.:@nginx_msg%

# --- the same without the date and time
rule=http,nginx,error-log,error:[%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"emerg"},{"type":"literal","name":"level","text":"alert"},{"type":"literal","name":"level","text":"crit"},{"type":"literal","name":"level","text":"error"}]}%] %pid:number%#%tid:number%: %.:@nginx_msg%
rule=http,nginx,error-log,warning:[%{"type":"literal","name":"level","text":"warn"}%] %pid:number%#%tid:number%: %.:@nginx_msg%
rule=http,nginx,error-log:[%{"type":"alternative","parser":[{"type":"literal","name":"level","text":"notice"},{"type":"literal","name":"level","text":"info"},{"type":"literal","name":"level","text":"debug"}]}%] %pid:number%#%tid:number%: %.:@nginx_msg%
