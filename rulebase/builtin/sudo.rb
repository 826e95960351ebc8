version=2
# Built-in rulebase: sudo messages (the MSG part after "sudo: ").
#
# rule tags               fields
# sudo,command            user, tty, pwd, run_as, command
# sudo,command,denied     user, reason, tty, pwd, run_as, command
# sudo,auth,failure       user, attempts, tty, pwd, run_as, command
# sudo,session            run_as, uid, user      (pam_unix session opened/closed)
rule=sudo,command:%user:word% : TTY=%tty:word% ; PWD=%pwd:char-to: % ; USER=%run_as:word% ; COMMAND=%command:rest%
rule=sudo,command,denied:%user:word% : %reason:char-to:;%; TTY=%tty:word% ; PWD=%pwd:char-to: % ; USER=%run_as:word% ; COMMAND=%command:rest%
rule=sudo,auth,failure:%user:word% : %attempts:number% incorrect password attempts ; TTY=%tty:word% ; PWD=%pwd:char-to: % ; USER=%run_as:word% ; COMMAND=%command:rest%
rule=sudo,session:pam_unix(sudo:session): session opened for user %run_as:char-to:(%(uid=%uid:number%) by %user:char-to:(%(uid=%by_uid:number%)
rule=sudo,session:pam_unix(sudo:session): session closed for user %run_as:word%
