version=2
# Built-in rulebase: cron daemon messages (Debian cron and cronie).
#
# rule tags            fields
# cron,command         user, command          ("(root) CMD (run-parts /etc/cron.hourly)";
#                      the command keeps the closing ")" cron appends, as a command may
#                      itself contain parentheses)
# cron,session         user, uid               (pam_unix(cron:session) opened/closed)
# cron,reload          user                    ("(root) RELOAD (crontabs/root)")
rule=cron,command:(%user:char-to:)%) CMD (%command:rest%
rule=cron,reload:(%user:char-to:)%) RELOAD (%file:char-to:)%)
rule=cron,session:pam_unix(cron:session): session opened for user %user:char-to:(%(uid=%uid:number%) by %-:rest%
rule=cron,session:pam_unix(cron:session): session closed for user %user:word%
