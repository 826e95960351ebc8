version=2
prefix=%date:date-rfc3164% %host:word% 
rule=sshd:sshd[%pid:number%]: %msg:rest%
extendprefix=%tag:char-to:[%[%pid:number%]: 
rule=generic:%msg:rest%
prefix=
rule=noprefix:plain %w:word%
