version=2
rule=v4:A %ip:ipv4% %r:rest%
rule=v4end:B %ip:ipv4%
rule=v6:C %ip:ipv6% %r:rest%
rule=v6end:D %ip:ipv6%
rule=mac:M %m:mac48% %r:rest%
rule=cisco:I %c:cisco-interface-spec% %r:rest%
rule=ciscoend:J %c:cisco-interface-spec%
