version=2
# overlapping rules: first successful path in priority order wins
rule=num:%n:number% items
rule=word:%w:word% items
rule=ip:%ip:ipv4% host
rule=wordhost:%w:word% host
rule=lit:exact literal
rule=litprefix:exact %rest:rest%
rule=prio:P %{"name":"low","type":"word","priority":10}%
rule=prio2:P %n:number%
rule=ab:ab
rule=abc:abc
rule=abcd:abcd
# alternatives
rule=alt:V %{"type":"alternative","parser":[{"name":"num","type":"number"},{"name":"ip","type":"ipv4"}]}% done
rule=altseq:Z %{"type":"alternative","parser":[[{"type":"literal","text":"x="},{"name":"x","type":"number"}],{"name":"y","type":"word"}]}% end
# sequence
rule=seq:Q %[{"type":"literal","text":"k="},{"name":"k","type":"word"}]%
