version=2
# Built-in rulebase: su messages (the MSG part after "su[pid]: "): su's own lines, from
# util-linux su ("(to root) alice on pts/0") and shadow's su ("Successful su for root by
# alice", "+ pts/0 alice:root"), and its PAM module pam_unix, in the current form
# ("pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)"), the
# Linux-PAM < 1.5 form ("... for user root by alice(uid=1000)") and the old Red Hat form,
# where the program is "su(pam_unix)" and the MSG has no "pam_unix(su:...): " prefix.
#
# Fields (the names every built-in uses, see FIELDS.md):
#   user        who ran su (the account that asked to switch)
#   run_as      the account su switches to (PAM's "user=" in an authentication failure)
#   uid         the numeric id of user (PAM's "uid=": the process that asked PAM)
#   run_as_uid  the numeric id of run_as
#   euid, tty, logname (PAM's login name, when set), service (the PAM service: su, su-l),
#   reason (shadow su's PAM error text)
#
# Tags: su on every rule, then what happened:
#   auth,success   su let the user switch                 ("(to root) alice on pts/0")
#   auth,failure   a switch was refused (wrong password, PAM error); one attempt can log
#                  several such lines: PAM's own and su's
#   auth,error     PAM could not ask for a password (the prompt was interrupted or there
#                  was no terminal): not a wrong password
#   session,start  a PAM session was opened for run_as
#   session,stop   a PAM session was closed

# --- su's own lines: util-linux (and coreutils) su
rule=su,auth,success:(to %run_as:char-to:)%) %user:word% on %tty:word%
rule=su,auth,failure:FAILED SU (to %run_as:char-to:)%) %user:word% on %tty:word%

# --- su's own lines: shadow su (Debian before 9, Alpine, ...)
rule=su,auth,success:Successful su for %run_as:word% by %user:word%
rule=su,auth,failure:FAILED su for %run_as:word% by %user:word%
rule=su,auth,success:+ %tty:word% %user:char-to::%:%run_as:word%
rule=su,auth,failure:- %tty:word% %user:char-to::%:%run_as:word%
rule=su,auth,failure:pam_authenticate: %reason:rest%

# --- pam_unix authentication (service su or su-l); ruser is the user running su
rule=su,auth,failure:pam_unix(%service:char-to::%:auth): authentication failure; logname=%logname:word% uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser=%user:word% rhost=  user=%run_as:word%
rule=su,auth,failure:pam_unix(%service:char-to::%:auth): authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser=%user:word% rhost=  user=%run_as:word%
rule=su,auth,failure:authentication failure; logname=%logname:word% uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser=%user:word% rhost=  user=%run_as:word%
rule=su,auth,failure:authentication failure; logname= uid=%uid:number% euid=%euid:number% tty=%tty:word% ruser=%user:word% rhost=  user=%run_as:word%
rule=su,auth,error:pam_unix(%service:char-to::%:auth): conversation failed
rule=su,auth,error:pam_unix(%service:char-to::%:auth): auth could not identify password for [%run_as:char-to:]%]

# --- pam_unix sessions. The "user(uid=N)" forms come first: tried in order, a plain word
# would otherwise take "root(uid=0)" whole.
rule=su,session,start:pam_unix(%service:char-to::%:session): session opened for user %run_as:char-to:(%(uid=%run_as_uid:number%) by %user:char-to:(%(uid=%uid:number%)
rule=su,session,start:pam_unix(%service:char-to::%:session): session opened for user %run_as:char-to:(%(uid=%run_as_uid:number%) by (uid=%uid:number%)
rule=su,session,start:pam_unix(%service:char-to::%:session): session opened for user %run_as:word% by %user:char-to:(%(uid=%uid:number%)
rule=su,session,start:pam_unix(%service:char-to::%:session): session opened for user %run_as:word% by (uid=%uid:number%)
rule=su,session,stop:pam_unix(%service:char-to::%:session): session closed for user %run_as:word%
rule=su,session,start:session opened for user %run_as:char-to:(%(uid=%run_as_uid:number%) by %user:char-to:(%(uid=%uid:number%)
rule=su,session,start:session opened for user %run_as:char-to:(%(uid=%run_as_uid:number%) by (uid=%uid:number%)
rule=su,session,start:session opened for user %run_as:word% by %user:char-to:(%(uid=%uid:number%)
rule=su,session,start:session opened for user %run_as:word% by (uid=%uid:number%)
rule=su,session,stop:session closed for user %run_as:word%
