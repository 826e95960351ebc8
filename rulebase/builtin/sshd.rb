version=2
# Built-in rulebase: OpenSSH sshd messages (the syslog MSG part, after "sshd[pid]: "), in the
# forms of current OpenSSH (9.x: "port N" everywhere, "authenticating user", kex/banner
# errors) and of older releases still in the field (6.x/7.x: no port, "input_userauth_request",
# "reverse mapping checking", "error: Received disconnect").
#
# Fields (the names every built-in uses, see FIELDS.md): user, src_ip, src_port, src_host
# (a name, or an address PAM did not resolve), dst_ip, dst_port, method (password, publickey,
# keyboard-interactive/pam, none, ...), key_type, fingerprint, code (disconnect reason code),
# reason, count, uid, euid, tty, stage (the "[preauth]" bracket), repeat (rsyslog's "message
# repeated N times"), signal, session_kind, session_id, offer.
#
# Tags: ssh on every rule, then what happened:
#   auth,success                 a login was accepted
#   auth,failure                 a login attempt failed (password, PAM, too many attempts, a
#                                connection closed while authenticating); plus invalid-user when
#                                the account does not exist
#   invalid-user                 an attempt for an account that does not exist
#   preauth                      the line ends in "[preauth]": the client never authenticated
#   scan                         no or a garbled identification, failed key exchange,
#                                unmatched algorithms: a scanner or a broken client
#   break-in-attempt             the client address's reverse lookup does not match
#   session                      a session opened or closed (PAM or sshd's own)
#   disconnect                   the client or sshd ended the connection
#   connection                   a connection arrived
#   daemon                       sshd itself: listening, signals, pid
# Source addresses may be IPv4 or IPv6 (an inline alternative: liblognorm user-defined
# types measure their length by the furthest offset any parser reached, which makes them
# unreliable after the start of a line, so the built-ins avoid them there).

# --- logins accepted and failed
rule=ssh,auth,success:Accepted %method:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2
rule=ssh,auth,success:Accepted %method:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2: %key_type:word% %fingerprint:rest%
rule=ssh,auth,partial:Partial %method:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2
rule=ssh,auth,partial:Partial %method:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2: %key_type:word% %fingerprint:rest%
rule=ssh,auth,postponed,preauth:Postponed %method:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2 [%stage:char-to:]%]
rule=ssh,auth,failure:Failed %method:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2
rule=ssh,auth,failure:Failed %method:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2: %key_type:word% %fingerprint:rest%
rule=ssh,auth,failure,invalid-user:Failed %method:word% for invalid user %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2
rule=ssh,auth,failure,repeated:message repeated %repeat:number% times: [ Failed %method:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2]
rule=ssh,auth,failure,invalid-user,repeated:message repeated %repeat:number% times: [ Failed %method:word% for invalid user %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2]
rule=ssh,auth,failure,preauth:error: maximum authentication attempts exceeded for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2 [%stage:char-to:]%]
rule=ssh,auth,failure,invalid-user,preauth:error: maximum authentication attempts exceeded for invalid user %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2 [%stage:char-to:]%]
rule=ssh,auth,failure,preauth:Disconnecting: Too many authentication failures for %user:word% [%stage:char-to:]%]
rule=ssh,auth,failure,preauth:Disconnecting: Too many authentication failures [%stage:char-to:]%]
rule=ssh,auth,failure,preauth:Disconnecting authenticating user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%: %reason:string-to: [% [%stage:char-to:]%]
rule=ssh,auth,failure,invalid-user,preauth:Disconnecting invalid user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%: %reason:string-to: [% [%stage:char-to:]%]
rule=ssh,auth,failure:error: PAM: Authentication failure for %user:word% from %src_host:word%
rule=ssh,auth,failure,invalid-user:error: PAM: Authentication failure for illegal user %user:word% from %src_host:word%

# --- accounts that do not exist
rule=ssh,invalid-user:Invalid user %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,invalid-user:Invalid user %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%
rule=ssh,invalid-user:Invalid user  from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,invalid-user:Invalid user  from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%
rule=ssh,invalid-user,preauth:input_userauth_request: invalid user %user:word% [%stage:char-to:]%]
rule=ssh,invalid-user,preauth:input_userauth_request: invalid user  [%stage:char-to:]%]

# --- PAM (the sshd service): failures, unknown users, retries, sessions
rule=ssh,auth,failure:pam_unix(sshd:auth): authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word%  user=%user:word%
rule=ssh,auth,failure:pam_unix(sshd:auth): authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word% 
rule=ssh,auth,failure:pam_unix(sshd:auth): authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word%
rule=ssh,auth,failure,invalid-user:pam_unix(sshd:auth): check pass; user unknown
rule=ssh,auth,failure:PAM %count:number% more authentication failures; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word%  user=%user:word%
rule=ssh,auth,failure:PAM %count:number% more authentication failures; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word% 
rule=ssh,auth,failure:PAM %count:number% more authentication failures; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word%
rule=ssh,auth,failure:PAM %count:number% more authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word%  user=%user:word%
rule=ssh,auth,failure:PAM %count:number% more authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word% 
rule=ssh,auth,failure:PAM %count:number% more authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word%
rule=ssh,auth,failure:PAM service(sshd) ignoring max retries; %count:number% > %limit:number%
rule=ssh,session:pam_unix(sshd:session): session opened for user %user:char-to:(%(uid=%uid:number%) by %-:rest%
rule=ssh,session:pam_unix(sshd:session): session opened for user %user:word% by %-:rest%
rule=ssh,session:pam_unix(sshd:session): session closed for user %user:word%

# --- connections, sessions and disconnects
rule=ssh,connection:Connection from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% on %{"type":"alternative","parser":[{"name":"dst_ip","type":"ipv4"},{"name":"dst_ip","type":"ipv6"}]}% port %dst_port:number%
rule=ssh,connection:Connection from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% on %{"type":"alternative","parser":[{"name":"dst_ip","type":"ipv4"},{"name":"dst_ip","type":"ipv6"}]}% port %dst_port:number% rdomain %-:rest%
rule=ssh,session:Starting session: %session_kind:word% on %tty:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% id %session_id:number%
rule=ssh,session:Starting session: %session_kind:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% id %session_id:number%
rule=ssh,session:Starting session: subsystem '%session_kind:char-to:'%' for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% id %session_id:number%
rule=ssh,session:Close session: user %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% id %session_id:number%
rule=ssh,session:User child is on pid %pid:number%
rule=ssh,disconnect:Disconnected from user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,disconnect:Disconnected from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,disconnect,preauth:Disconnected from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [%stage:char-to:]%]
rule=ssh,disconnect,auth,failure,preauth:Disconnected from authenticating user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [%stage:char-to:]%]
rule=ssh,disconnect,invalid-user,preauth:Disconnected from invalid user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [%stage:char-to:]%]
rule=ssh,disconnect:Received disconnect from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%:%code:number%: %reason:rest%
rule=ssh,disconnect,preauth:Received disconnect from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%:%code:number%: %reason:string-to: [% [%stage:char-to:]%]
rule=ssh,disconnect:Received disconnect from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%: %code:number%: %reason:rest%
rule=ssh,disconnect,preauth:Received disconnect from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%: %code:number%: %reason:string-to: [% [%stage:char-to:]%]
rule=ssh,disconnect:error: Received disconnect from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%: %code:number%: %reason:rest%
rule=ssh,disconnect,preauth:error: Received disconnect from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%: %code:number%: %reason:string-to: [% [%stage:char-to:]%]
rule=ssh,disconnect:error: Received disconnect from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%:%code:number%: %reason:rest%
rule=ssh,disconnect,preauth:error: Received disconnect from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%:%code:number%: %reason:string-to: [% [%stage:char-to:]%]
rule=ssh,disconnect,preauth:Connection closed by %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [%stage:char-to:]%]
rule=ssh,disconnect:Connection closed by %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,disconnect,preauth:Connection closed by %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% [%stage:char-to:]%]
rule=ssh,disconnect,auth,failure,preauth:Connection closed by authenticating user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [%stage:char-to:]%]
rule=ssh,disconnect,invalid-user,preauth:Connection closed by invalid user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [%stage:char-to:]%]
rule=ssh,disconnect,preauth:Connection reset by %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [%stage:char-to:]%]
rule=ssh,disconnect:Connection reset by %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,disconnect,auth,failure,preauth:Connection reset by authenticating user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [%stage:char-to:]%]
rule=ssh,disconnect,invalid-user,preauth:Connection reset by invalid user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [%stage:char-to:]%]
rule=ssh,disconnect,preauth:fatal: Write failed: %reason:string-to: [% [%stage:char-to:]%]
rule=ssh,disconnect,preauth:fatal: Read from socket failed: %reason:string-to: [% [%stage:char-to:]%]
rule=ssh,disconnect:Timeout before authentication for %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,disconnect:Timeout before authentication for %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%
rule=ssh,disconnect:Read error from remote host %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%: %reason:rest%

# --- scanners and broken clients: no identification, key exchange and banner errors
rule=ssh,scan:Did not receive identification string from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,scan:Did not receive identification string from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%
rule=ssh,scan:Bad protocol version identification '%-:char-to:'%' from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,scan:Bad protocol version identification '%-:char-to:'%' from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%
rule=ssh,scan:Protocol major versions differ for %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%: %reason:rest%
rule=ssh,scan:kex_exchange_identification: %reason:rest%
rule=ssh,scan:error: kex_exchange_identification: %reason:rest%
rule=ssh,scan:banner exchange: Connection from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%: %reason:rest%
rule=ssh,scan:error: banner exchange: Connection from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%: %reason:rest%
rule=ssh,scan,preauth:Unable to negotiate with %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%: %reason:char-to:.%. Their offer: %offer:word% [%stage:char-to:]%]
rule=ssh,scan:Unable to negotiate with %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%: %reason:char-to:.%. Their offer: %offer:word%
rule=ssh,scan,preauth:ssh_dispatch_run_fatal: Connection from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%: %reason:string-to: [% [%stage:char-to:]%]
rule=ssh,scan:ssh_dispatch_run_fatal: Connection from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%: %reason:rest%
rule=ssh,break-in-attempt:reverse mapping checking getaddrinfo for %src_host:word% [%{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}%] failed - POSSIBLE BREAK-IN ATTEMPT!
rule=ssh,break-in-attempt:Address %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% maps to %src_host:char-to:,%, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!

# --- the daemon itself
rule=ssh,daemon:Server listening on %{"type":"alternative","parser":[{"name":"dst_ip","type":"ipv4"},{"name":"dst_ip","type":"ipv6"}]}% port %dst_port:number%.
rule=ssh,daemon:Received signal %signal:number%; terminating.
rule=ssh,daemon:Received SIGHUP; restarting.

# --- PAM's older form, the module in the syslog tag ("sshd(pam_unix)[pid]: ..."), so the
#     message starts at what pam_unix says
rule=ssh,auth,failure:authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word%  user=%user:word%
rule=ssh,auth,failure:authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word% 
rule=ssh,auth,failure:authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser= rhost=%src_host:word%
rule=ssh,auth,failure,invalid-user:check pass; user unknown
rule=ssh,session:session opened for user %user:char-to:(%(uid=%uid:number%) by %-:rest%
rule=ssh,session:session opened for user %user:word% by %-:rest%
rule=ssh,session:session closed for user %user:word%
