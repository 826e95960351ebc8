version=2
# Built-in rulebase: Apache/Nginx "combined" (and "common") access log lines.
#
# rule tags            fields
# http,access          client_ip, ident, auth_user, timestamp, method, path, protocol,
#                      status, bytes ("-" when no body), referrer, user_agent
# http,access,common   the same without referrer and user_agent
# http,access,invalid  client_ip, ident, auth_user, timestamp, request (unparseable request line), status, bytes, ...
type=@client:%client_ip:ipv4%
type=@client:%client_ip:ipv6%
type=@client:%client_ip:word%
rule=http,access:%.:@client% %ident:word% %auth_user:word% [%timestamp:char-to:]%] "%method:word% %path:word% %protocol:char-to:"%" %status:number% %bytes:word% "%referrer:char-to:"%" "%user_agent:char-to:"%"
rule=http,access:%.:@client% %ident:word% %auth_user:word% [%timestamp:char-to:]%] "%method:word% %path:word% %protocol:char-to:"%" %status:number% %bytes:word% "%referrer:char-to:"%" "%user_agent:char-to:"%"%-:rest%
rule=http,access,common:%.:@client% %ident:word% %auth_user:word% [%timestamp:char-to:]%] "%method:word% %path:word% %protocol:char-to:"%" %status:number% %bytes:word%
rule=http,access,invalid:%.:@client% %ident:word% %auth_user:word% [%timestamp:char-to:]%] "%request:char-to:"%" %status:number% %bytes:word% %-:rest%
