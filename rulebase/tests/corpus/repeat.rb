version=2
rule=rep:R %list:repeat{"parser":{"name":"n","type":"number"},"while":{"type":"literal","text":", "}}% end
rule=repdot:D %list:repeat{"parser":{"name":".","type":"word"},"while":{"type":"literal","text":" "}}%
rule=repobj:O %list:repeat{"parser":[{"name":"k","type":"char-to","extradata":"="},{"type":"literal","text":"="},{"name":"v","type":"char-sep","extradata":","}],"while":{"type":"literal","text":","}}%
rule=reppermit:P %list:repeat{"parser":[{"name":"a","type":"number"},{"type":"literal","text":"x"}],"while":{"type":"literal","text":" "},"option.permitMismatchInParser":true}% %r:rest%
