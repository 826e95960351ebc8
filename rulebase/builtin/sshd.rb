version=2
# Built-in rulebase: OpenSSH sshd messages (the syslog MSG part, after "sshd[pid]: ").
#
# rule tags              fields
# ssh,auth,success       method (password|publickey|keyboard-interactive/pam...), user, src_ip, src_port
# ssh,auth,failure       method, user, src_ip, src_port        ("Failed password for root ...")
# ssh,auth,failure,invalid-user  method, user, src_ip, src_port ("Failed password for invalid user ...")
# ssh,invalid-user       user, src_ip, src_port                ("Invalid user bob from ...")
# ssh,disconnect         src_ip, src_port, reason / user       ("Disconnected from user alice ...")
# ssh,session            user, uid                             (pam_unix session opened/closed)
# ssh,connection-closed  src_ip, src_port, stage
# ssh,auth,failure       src_ip                                ("Connection closed by authenticating user ...")
# ssh,auth,failure       count, user, src_ip                   ("PAM 2 more authentication failures")
# ssh,scan               src_ip, src_port                      ("Did not receive identification string")
# Source addresses may be IPv4 or IPv6 (an inline alternative: liblognorm user-defined
# types measure their length by the furthest offset any parser reached, which makes them
# unreliable after the start of a line, so the built-ins avoid them there).
rule=ssh,auth,success:Accepted %method:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2%-:rest%
rule=ssh,auth,failure,invalid-user:Failed %method:word% for invalid user %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2
rule=ssh,auth,failure:Failed %method:word% for %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% ssh2
rule=ssh,invalid-user:Invalid user %user:word% from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,invalid-user:Invalid user  from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,disconnect:Disconnected from user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
rule=ssh,disconnect:Disconnected from invalid user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [preauth]
rule=ssh,disconnect:Received disconnect from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%:%code:number%: %reason:rest%
rule=ssh,session:pam_unix(sshd:session): session opened for user %user:char-to:(%(uid=%uid:number%) by %-:rest%
rule=ssh,session:pam_unix(sshd:session): session closed for user %user:word%
rule=ssh,connection-closed:Connection closed by %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [%stage:char-to:]%]
rule=ssh,auth,failure:Connection closed by authenticating user %user:word% %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number% [preauth]
rule=ssh,auth,failure:PAM %count:number% more authentication failures; logname= uid=%uid:number% euid=%euid:number% tty=ssh ruser= rhost=%src_ip:word%  user=%user:word%
rule=ssh,scan:Did not receive identification string from %{"type":"alternative","parser":[{"name":"src_ip","type":"ipv4"},{"name":"src_ip","type":"ipv6"}]}% port %src_port:number%
