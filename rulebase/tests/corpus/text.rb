version=2
# word, alpha, rest, whitespace, char-to, char-sep, string-to, literal
rule=word:W %a:word% %b:word%
rule=alpha:A %a:alpha%%r:rest%
rule=rest:R %r:rest%
rule=ws:S%w:whitespace%%x:word%
rule=charto:C %a:char-to:,%,%b:char-to:;:%;%c:rest%
rule=charsep:P %a:char-sep:|%|%b:char-sep:|%
rule=stringto:T %a:string-to:--%--%b:rest%
rule=stringto1:U %a:string-to:x%x%b:rest%
rule=lit:L %{"type":"literal","text":"abc","name":"lit"}% end
rule=escape:E\t%a:word%
rule=pct:100%% %a:word%
rule=unnamed:N %-:word% %b:word%
