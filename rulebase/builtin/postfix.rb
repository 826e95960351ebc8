version=2
# Built-in rulebase: Postfix messages (the MSG part after "postfix/smtpd[pid]: ",
# "postfix/qmgr[pid]: ", "postfix/smtp[pid]: " and so on): a message's way through smtpd
# (or pickup), cleanup, qmgr and a delivery agent (smtp, lmtp, local, virtual, pipe), and
# the bounce notices. Most lines start with the queue id ("4BQ7Xk1Zq8z9s: ", or "NOQUEUE: "
# for a message refused before it was queued); follow a message by queue_id.
#
# Fields (the names every built-in uses, see FIELDS.md):
#   queue_id     the queue id (short or long form, or NOQUEUE)
#   client_host, client_ip   the SMTP client ("unknown" when its name did not resolve)
#   user         the SASL login name of an authenticated (or failed) client
#   from, to, orig_to   envelope sender and recipient (orig_to: before alias or virtual
#                rewriting); "" for the null sender "<>" of bounces
#   relay        where a delivery went ("mx.example.com[203.0.113.5]:25", "local", "none")
#   delay, delays, conn_use, dsn, status (sent, bounced, deferred, ...), detail (the text in
#                parentheses after the status: the remote server's reply or the reason;
#                when it itself contains parentheses it keeps the final ")" as well)
#   size, nrcpt  message size in bytes, number of recipients (qmgr)
#   message_id   the Message-ID header (cleanup)
#   uid          the local user that submitted a message (pickup)
#   stage, code, reason, proto, helo (smtpd rejects), mechanism (SASL), stats (smtpd's
#   per-command counts at disconnect), bounce_id (the queue id of the notice), relay_host,
#   relay_ip, relay_port (a failed connection to a remote server)
#
# Tags: mail on every rule, then the component and what happened:
#   smtpd,connect / disconnect / lost / timeout   a client connected, left, dropped
#   smtpd,queued               smtpd accepted a message and gave it a queue id
#   smtpd,reject               smtpd refused a client, sender or recipient
#   smtpd,auth,failure         a SASL login failed
#   pickup                     a message was submitted locally (sendmail command)
#   cleanup,message-id         the message's Message-ID
#   qmgr,queued                the queue manager took the message (sender, size)
#   qmgr,removed               the message left the queue (all deliveries done)
#   qmgr,expired,failure       the message stayed too long and was returned
#   delivery,sent,success      delivered (status=sent)
#   delivery,bounced,failure   delivery failed for good (status=bounced)
#   delivery,deferred          delivery failed for now and will be retried
#   delivery                   any other status (deliverable, undeliverable: address checks)
#   smtp,connect,error         a delivery agent could not connect to a remote server
#   bounce                     a non-delivery (or delay) notice was queued

# --- smtpd: clients
rule=mail,smtpd,connect:connect from %client_host:char-to:[%[%client_ip:char-to:]%]
rule=mail,smtpd,disconnect:disconnect from %client_host:char-to:[%[%client_ip:char-to:]%] %stats:rest%
rule=mail,smtpd,lost:lost connection after %stage:word% from %client_host:char-to:[%[%client_ip:char-to:]%]
rule=mail,smtpd,timeout:timeout after %stage:word% from %client_host:char-to:[%[%client_ip:char-to:]%]
rule=mail,smtpd,queued:%queue_id:char-to::%: client=%client_host:char-to:[%[%client_ip:char-to:]%]
rule=mail,smtpd,queued:%queue_id:char-to::%: client=%client_host:char-to:[%[%client_ip:char-to:]%], sasl_method=%mechanism:char-to:,%, sasl_username=%user:rest%
rule=mail,smtpd,auth,failure:warning: %client_host:char-to:[%[%client_ip:char-to:]%]: SASL %mechanism:word% authentication failed: %reason:string-to:, sasl_username=%, sasl_username=%user:rest%
rule=mail,smtpd,auth,failure:warning: %client_host:char-to:[%[%client_ip:char-to:]%]: SASL %mechanism:word% authentication failed: %reason:rest%

# --- smtpd: rejects, at RCPT (from and to), MAIL (from), and CONNECT, HELO or DATA
rule=mail,smtpd,reject:%queue_id:char-to::%: reject: %stage:word% from %client_host:char-to:[%[%client_ip:char-to:]%]: %code:number% %dsn:word% %reason:string-to:; from=<%; from=<%from:char-sep:>%> to=<%to:char-sep:>%> proto=%proto:word% helo=<%helo:char-sep:>%>
rule=mail,smtpd,reject:%queue_id:char-to::%: reject: %stage:word% from %client_host:char-to:[%[%client_ip:char-to:]%]: %code:number% %dsn:word% %reason:string-to:; from=<%; from=<%from:char-sep:>%> proto=%proto:word% helo=<%helo:char-sep:>%>
rule=mail,smtpd,reject:%queue_id:char-to::%: reject: %stage:word% from %client_host:char-to:[%[%client_ip:char-to:]%]: %code:number% %dsn:word% %reason:string-to:; proto=%; proto=%proto:word% helo=<%helo:char-sep:>%>
rule=mail,smtpd,reject:%queue_id:char-to::%: reject: %stage:word% from %client_host:char-to:[%[%client_ip:char-to:]%]: %code:number% %dsn:word% %reason:string-to:; proto=%; proto=%proto:word%

# --- pickup, cleanup, qmgr
rule=mail,pickup:%queue_id:char-to::%: uid=%uid:number% from=<%from:char-sep:>%>
rule=mail,cleanup,message-id:%queue_id:char-to::%: message-id=<%message_id:char-sep:>%>
rule=mail,cleanup,message-id:%queue_id:char-to::%: message-id=%message_id:rest%
rule=mail,qmgr,queued:%queue_id:char-to::%: from=<%from:char-sep:>%>, size=%size:number%, nrcpt=%nrcpt:number% (queue active)
rule=mail,qmgr,removed:%queue_id:char-to::%: removed
rule=mail,qmgr,expired,failure:%queue_id:char-to::%: from=<%from:char-sep:>%>, status=expired, returned to sender

# --- delivery agents (smtp, lmtp, local, virtual, pipe, error): with or without orig_to=
# and conn_use= (a cached connection's use count)
rule=mail,delivery,sent,success:%queue_id:char-to::%: to=<%to:char-sep:>%>, relay=%relay:char-to:,%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"sent"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,bounced,failure:%queue_id:char-to::%: to=<%to:char-sep:>%>, relay=%relay:char-to:,%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"bounced"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,deferred:%queue_id:char-to::%: to=<%to:char-sep:>%>, relay=%relay:char-to:,%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"deferred"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery:%queue_id:char-to::%: to=<%to:char-sep:>%>, relay=%relay:char-to:,%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%status:word% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,sent,success:%queue_id:char-to::%: to=<%to:char-sep:>%>, orig_to=<%orig_to:char-sep:>%>, relay=%relay:char-to:,%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"sent"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,bounced,failure:%queue_id:char-to::%: to=<%to:char-sep:>%>, orig_to=<%orig_to:char-sep:>%>, relay=%relay:char-to:,%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"bounced"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,deferred:%queue_id:char-to::%: to=<%to:char-sep:>%>, orig_to=<%orig_to:char-sep:>%>, relay=%relay:char-to:,%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"deferred"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery:%queue_id:char-to::%: to=<%to:char-sep:>%>, orig_to=<%orig_to:char-sep:>%>, relay=%relay:char-to:,%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%status:word% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,sent,success:%queue_id:char-to::%: to=<%to:char-sep:>%>, relay=%relay:char-to:,%, conn_use=%conn_use:number%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"sent"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,bounced,failure:%queue_id:char-to::%: to=<%to:char-sep:>%>, relay=%relay:char-to:,%, conn_use=%conn_use:number%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"bounced"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,deferred:%queue_id:char-to::%: to=<%to:char-sep:>%>, relay=%relay:char-to:,%, conn_use=%conn_use:number%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"deferred"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery:%queue_id:char-to::%: to=<%to:char-sep:>%>, relay=%relay:char-to:,%, conn_use=%conn_use:number%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%status:word% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,sent,success:%queue_id:char-to::%: to=<%to:char-sep:>%>, orig_to=<%orig_to:char-sep:>%>, relay=%relay:char-to:,%, conn_use=%conn_use:number%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"sent"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,bounced,failure:%queue_id:char-to::%: to=<%to:char-sep:>%>, orig_to=<%orig_to:char-sep:>%>, relay=%relay:char-to:,%, conn_use=%conn_use:number%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"bounced"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery,deferred:%queue_id:char-to::%: to=<%to:char-sep:>%>, orig_to=<%orig_to:char-sep:>%>, relay=%relay:char-to:,%, conn_use=%conn_use:number%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%{"name":"status","type":"literal","text":"deferred"}% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,delivery:%queue_id:char-to::%: to=<%to:char-sep:>%>, orig_to=<%orig_to:char-sep:>%>, relay=%relay:char-to:,%, conn_use=%conn_use:number%, delay=%delay:char-to:,%, delays=%delays:char-to:,%, dsn=%dsn:char-to:,%, status=%status:word% (%{"type":"alternative","parser":[[{"type":"char-to","name":"detail","extradata":")"},{"type":"literal","text":")"}],{"type":"rest","name":"detail"}]}%
rule=mail,smtp,connect,error:connect to %relay_host:char-to:[%[%relay_ip:char-to:]%]:%relay_port:number%: %reason:rest%

# --- bounce
rule=mail,bounce:%queue_id:char-to::%: sender non-delivery notification: %bounce_id:word%
rule=mail,bounce:%queue_id:char-to::%: sender delay notification: %bounce_id:word%
