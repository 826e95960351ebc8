version=2
# Built-in rulebase: common Cisco ASA message ids (the text after "%ASA-n-NNNNNN: ").
#
# rule tags                      fields
# cisco,asa,302013 (302015)      direction, protocol, conn_id, src (interface/ip/port
#                                object), dst (object)            Built connection
# cisco,asa,302014 (302016)      protocol, conn_id, src, dst, duration, bytes, reason?
#                                                                 Teardown connection
# cisco,asa,106023               action, protocol, src, dst, acl  Deny by access-group
# cisco,asa,106001               protocol, src_ip, src_port, dst_ip, dst_port, flags, interface
# cisco,asa,710003               protocol, src, dst, interface    access denied by ACL
# cisco,asa,113004/113015        (AAA) user, server / reason
rule=cisco,asa,302013:%%ASA-%severity:number%-302013: Built %direction:word% %protocol:word% connection %conn_id:number% for %src:cisco-interface-spec% to %dst:cisco-interface-spec%
rule=cisco,asa,302015:%%ASA-%severity:number%-302015: Built %direction:word% %protocol:word% connection %conn_id:number% for %src:cisco-interface-spec% to %dst:cisco-interface-spec%
rule=cisco,asa,302014:%%ASA-%severity:number%-302014: Teardown %protocol:word% connection %conn_id:number% for %src:char-to: % to %dst:char-to: % duration %duration:duration% bytes %bytes:number%%reason:rest%
rule=cisco,asa,302016:%%ASA-%severity:number%-302016: Teardown %protocol:word% connection %conn_id:number% for %src:char-to: % to %dst:char-to: % duration %duration:duration% bytes %bytes:number%%-:rest%
rule=cisco,asa,106023:%%ASA-%severity:number%-106023: %action:word% %protocol:word% src %src:char-to: % dst %dst:char-to: % %-:char-to:"%"%acl:char-to:"%"%-:rest%
rule=cisco,asa,106001:%%ASA-%severity:number%-106001: Inbound %protocol:word% connection denied from %src_ip:ipv4%/%src_port:number% to %dst_ip:ipv4%/%dst_port:number% flags %flags:string-to: on % on interface %interface:word%
rule=cisco,asa,710003:%%ASA-%severity:number%-710003: %protocol:word% access denied by ACL from %src:char-to: % to %dst:rest%
rule=cisco,asa,113004:%%ASA-%severity:number%-113004: AAA user authentication Successful : server =  %server:ipv4% : user = %user:rest%
rule=cisco,asa,113015:%%ASA-%severity:number%-113015: AAA user authentication Rejected : reason = %reason:char-to::%: local database : user = %user:rest%
