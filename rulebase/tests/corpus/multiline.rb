version=2
rule=ml:M %{"name":"a",
   "type":"word"}% %b:word%
rule=legacyjson:J %n:number{"format":"number"}%
