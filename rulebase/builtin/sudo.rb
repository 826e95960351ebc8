version=2
# Built-in rulebase: sudo messages (the MSG part after "sudo: " or "sudo[pid]: "): sudo's
# own lines in the forms of sudo 1.8 and 1.9 ("alice : TTY=pts/0 ; PWD=/home/alice ;
# USER=root ; COMMAND=/usr/bin/id"; sudo right-aligns the user in 8 columns, so a short
# name comes after spaces, and sudo 1.9 puts "reason : error ; " first when a command
# fails), and its PAM module pam_unix, in the current form ("session opened for user
# root(uid=0) by alice(uid=1000)") and the Linux-PAM < 1.5 form ("... for user root by
# alice(uid=1000)").
#
# Fields (the names every built-in uses, see FIELDS.md):
#   user        who ran sudo
#   run_as      the account the command runs as (USER=, or the PAM session's account)
#   uid         the numeric id of user (in an authentication failure: PAM's "uid=", the
#               process that asked PAM, which is the user's)
#   run_as_uid  the numeric id of run_as
#   tty, host (HOST=, from sudo_logsrvd), pwd, group (GROUP=, sudo -g), tsid (TSID=, the
#   I/O log id), env (ENV=, variables set on the command line), command (COMMAND=, with
#   its arguments), reason (why sudo refused), count (incorrect password attempts), euid,
#   logname, ruser (PAM's fields), service (the PAM service: sudo, sudo-i)
#
# Tags: sudo on every rule, then what happened:
#   command                   a command was run (or refused: with denied)
#   command,continued         the rest of a command line too long for one message
#   command,denied,failure    sudo refused: "user NOT in sudoers", "command not allowed",
#                             "a password is required", ...; reason says which
#   auth,failure              wrong passwords ("3 incorrect password attempts", PAM's
#                             "authentication failure")
#   auth,error                PAM could not ask for a password (the prompt was interrupted
#                             or there was no terminal): not a wrong password
#   session,start             a PAM session was opened for run_as
#   session,stop              a PAM session was closed
#
# What follows "user : [reason ; ]" is a user-defined type (@sudo_where: HOST=, TTY=, then
# @sudo_run: PWD= to COMMAND=): every one of its alternatives ends in "rest", so its length
# (liblognorm takes the furthest offset any parser reached) is always the end of the line,
# the one place such a type is reliable.
type=@sudo_run:PWD=%pwd:string-to: ; % ; USER=%run_as:word% ; COMMAND=%command:rest%
type=@sudo_run:PWD=%pwd:string-to: ; % ; USER=%run_as:word% ; GROUP=%group:word% ; COMMAND=%command:rest%
type=@sudo_run:PWD=%pwd:string-to: ; % ; USER=%run_as:word% ; TSID=%tsid:word% ; COMMAND=%command:rest%
type=@sudo_run:PWD=%pwd:string-to: ; % ; USER=%run_as:word% ; GROUP=%group:word% ; TSID=%tsid:word% ; COMMAND=%command:rest%
type=@sudo_run:PWD=%pwd:string-to: ; % ; USER=%run_as:word% ; ENV=%env:string-to: ; COMMAND=% ; COMMAND=%command:rest%
type=@sudo_run:PWD=%pwd:string-to: ; % ; USER=%run_as:word% ; TSID=%tsid:word% ; ENV=%env:string-to: ; COMMAND=% ; COMMAND=%command:rest%

type=@sudo_where:TTY=%tty:word% ; %.:@sudo_run%
type=@sudo_where:HOST=%host:word% ; TTY=%tty:word% ; %.:@sudo_run%
type=@sudo_where:%.:@sudo_run%

# --- sudo's own lines, user name first (as long names print) ...
rule=sudo,command:%user:word% : %.:@sudo_where%
rule=sudo,command,continued:%user:word% : (command continued) %command:rest%
rule=sudo,auth,failure:%user:word% : %count:number% incorrect password attempts ; %.:@sudo_where%
rule=sudo,auth,failure:%user:word% : %count:number% incorrect password attempt ; %.:@sudo_where%
rule=sudo,command,denied,failure:%user:word% : %reason:string-to: ; % ; %.:@sudo_where%
# --- ... and after the spaces that right-align a short name
rule=sudo,command:%-:whitespace%%user:word% : %.:@sudo_where%
rule=sudo,command,continued:%-:whitespace%%user:word% : (command continued) %command:rest%
rule=sudo,auth,failure:%-:whitespace%%user:word% : %count:number% incorrect password attempts ; %.:@sudo_where%
rule=sudo,auth,failure:%-:whitespace%%user:word% : %count:number% incorrect password attempt ; %.:@sudo_where%
rule=sudo,command,denied,failure:%-:whitespace%%user:word% : %reason:string-to: ; % ; %.:@sudo_where%

# --- pam_unix authentication (service sudo or sudo-i); PAM's user is the one running sudo
rule=sudo,auth,failure:pam_unix(%service:char-to::%:auth): authentication failure; logname=%logname:word% uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser=%ruser:word% rhost=  user=%user:word%
rule=sudo,auth,failure:pam_unix(%service:char-to::%:auth): authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser=%ruser:word% rhost=  user=%user:word%
rule=sudo,auth,error:pam_unix(%service:char-to::%:auth): conversation failed
rule=sudo,auth,error:pam_unix(%service:char-to::%:auth): auth could not identify password for [%user:char-to:]%]

# --- pam_unix sessions. The "user(uid=N)" forms come first: tried in order, a plain word
# would otherwise take "root(uid=0)" whole.
rule=sudo,session,start:pam_unix(%service:char-to::%:session): session opened for user %run_as:char-to:(%(uid=%run_as_uid:number%) by %user:char-to:(%(uid=%uid:number%)
rule=sudo,session,start:pam_unix(%service:char-to::%:session): session opened for user %run_as:char-to:(%(uid=%run_as_uid:number%) by (uid=%uid:number%)
rule=sudo,session,start:pam_unix(%service:char-to::%:session): session opened for user %run_as:word% by %user:char-to:(%(uid=%uid:number%)
rule=sudo,session,start:pam_unix(%service:char-to::%:session): session opened for user %run_as:word% by (uid=%uid:number%)
rule=sudo,session,stop:pam_unix(%service:char-to::%:session): session closed for user %run_as:word%
