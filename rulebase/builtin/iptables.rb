version=2
rule=:placeholder %a:word%
