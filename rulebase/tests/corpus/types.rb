version=2
type=@port:%port:number%
type=@hostport:%host:ipv4%:%port:number%
type=@hostport:%host:word%
type=@alt:%n:number%
type=@alt:%w:word%
rule=t:A %hp:@hostport% end
rule=t:B %.:@hostport% end
rule=t:C %-:@hostport% end
rule=t:D from %ip:ipv4% port %.:@port%
rule=t:E %x:@alt% %y:@alt%
include=types-include.rb
annotate=t:+source="types" +kind="custom"
annotate=inc:+included="yes"
