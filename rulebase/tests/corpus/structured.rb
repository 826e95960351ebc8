version=2
rule=nv:N %nv:name-value-list%
rule=json:J %j:json%%r:rest%
rule=jsonmerge:K %.:json%
rule=cee:%c:cee-syslog%
rule=ipt:IPT: %fw:v2-iptables%
rule=cef:%c:cef%
rule=lea:L %l:checkpoint-lea%
