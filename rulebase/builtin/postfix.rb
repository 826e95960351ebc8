version=2
# Built-in rulebase: Postfix smtpd messages (the MSG part after "postfix/smtpd[pid]: ").
#
# rule tags                  fields
# mail,smtpd,connect         client_host, client_ip
# mail,smtpd,disconnect      client_host, client_ip, stats (rest of line)
# mail,smtpd,queued          queue_id, client_host, client_ip, sasl_method?, sasl_username?
# mail,smtpd,reject          queue_id (or NOQUEUE), stage, client_host, client_ip, code,
#                            dsn, reason, from, to, proto, helo
# mail,smtpd,auth,failure    client_host, client_ip, mechanism, reason
# mail,smtpd,lost            stage, client_host, client_ip
rule=mail,smtpd,connect:connect from %client_host:char-to:[%[%client_ip:char-to:]%]
rule=mail,smtpd,disconnect:disconnect from %client_host:char-to:[%[%client_ip:char-to:]%] %stats:rest%
rule=mail,smtpd,lost:lost connection after %stage:word% from %client_host:char-to:[%[%client_ip:char-to:]%]
rule=mail,smtpd,queued:%queue_id:char-to::%: client=%client_host:char-to:[%[%client_ip:char-to:]%]
rule=mail,smtpd,queued:%queue_id:char-to::%: client=%client_host:char-to:[%[%client_ip:char-to:]%], sasl_method=%sasl_method:char-to:,%, sasl_username=%sasl_username:rest%
rule=mail,smtpd,reject:%queue_id:char-to::%: reject: %stage:word% from %client_host:char-to:[%[%client_ip:char-to:]%]: %code:number% %dsn:word% %reason:char-to:;%; from=<%from:char-to:>%> to=<%to:char-to:>%> proto=%proto:word% helo=<%helo:char-to:>%>
rule=mail,smtpd,auth,failure:warning: %client_host:char-to:[%[%client_ip:char-to:]%]: SASL %mechanism:word% authentication failed: %reason:rest%
