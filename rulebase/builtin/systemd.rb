version=2
# Built-in rulebase: systemd messages (the MSG part after "systemd[1]: ", a user manager's
# "systemd[pid]: ", or "systemd-logind[pid]: "): unit jobs and state changes as systemd
# logs them from v219 (CentOS 7) to current releases, logind sessions, and boot.
#
# Job messages name a unit by its description ("Started OpenBSD Secure Shell server.") or,
# where systemd is built or configured with StatusUnitFormat=combined (Fedora, Arch), by
# name and description ("Started sshd.service - OpenSSH server daemon."); messages about one
# unit's processes start with its name ("nginx.service: Main process exited, ...").
#
# Fields (the names every built-in uses, see FIELDS.md):
#   unit         the unit name (nginx.service), when the message has it
#   description  the unit's description ("OpenBSD Secure Shell server"); one that itself
#                contains a "." (a version, "Node.js") keeps the message's final "." as well
#                (liblognorm has no "up to the last character" type); so does a session's
#                user name with a "." in it
#   code         how the process ended (exited, killed, dumped); status its exit status or
#                signal number, status_name the name systemd gives it (SUCCESS, FAILURE,
#                KILL, ...; systemd v219 prints no name for a control process)
#   reason       the unit's result ('exit-code', 'signal', 'timeout', 'oom-kill', ...), the
#                error text of a failed exec, or why a unit was skipped; condition the
#                condition that was not met (ConditionPathExists=/etc/foo)
#   count        the restart counter; cpu_time, memory_peak, swap_peak as systemd prints them
#   pid, program, signal, command, step, operation, action, session_id, user, version,
#   mode, times (the "Startup finished in" summary as printed, final "." included)
#
# Tags: systemd on every rule (and logind on systemd-logind's), then the kind of object
# (unit, target, socket, mount, slice, session, daemon: systemd itself) and what happened:
#   start / stop            a job finished: "Started", "Reached target", "Listening on",
#                           "Mounted", "New session" / "Stopped", "Closed", "Unmounted", ...
#   starting / stopping     a job began ("Starting foo...", "Stopping foo...")
#   finish                  a oneshot service ran to completion ("Finished foo.")
#   reload / reloading      a unit, or systemd itself ("Reloading."), reloads
#   fail                    the unit failed: "Failed to start", "Failed with result", "Unit
#                           entered failed state", "foo.service failed." (older systemd
#                           logs two of these per failure), plus dependency, timeout or
#                           start-limit where that is the cause
#   exit                    a unit's main or control process ended, with success (status
#                           0) or error (any other status, or a signal)
#   deactivated,success     the unit went inactive without error ("Deactivated
#                           successfully.", "Succeeded." in v236-v247)
#   restart                 systemd schedules an automatic restart
#   kill, timeout, oom      systemd kills a process, an operation timed out, the kernel's
#                           OOM killer killed a process of the unit
#   exec,error              the command line could not be run
#   resources               the CPU time and memory a unit used
#   skipped                 a unit was skipped because a condition was not met
#   session,start / stop    a login session began / ended (systemd's "Started Session 5
#                           of User alice." and logind's "New session 5 of user alice."
#                           describe the same session); session,logout
#   startup                 "Startup finished in ..."
#   shutdown, reboot        logind: the system goes down

# --- job messages that end in "...": the job began
rule=systemd,unit,starting:Starting %unit:word% - %description:string-to:...%...
rule=systemd,unit,starting:Starting %description:string-to:...%...
rule=systemd,unit,stopping:Stopping %unit:word% - %description:string-to:...%...
rule=systemd,unit,stopping:Stopping %description:string-to:...%...
rule=systemd,unit,reloading:Reloading %unit:word% - %description:string-to:...%...
rule=systemd,unit,reloading:Reloading %description:string-to:...%...
rule=systemd,mount,starting:Mounting %unit:word% - %description:string-to:...%...
rule=systemd,mount,starting:Mounting %description:string-to:...%...
rule=systemd,mount,stopping:Unmounting %unit:word% - %description:string-to:...%...
rule=systemd,mount,stopping:Unmounting %description:string-to:...%...
rule=systemd,daemon,reload:Reloading.
rule=systemd,daemon,reload:Reloading requested from client PID %pid:number% %-:rest%

# --- job messages that end in ".": the job is done. Session scopes first (literals are
# tried before fields), then "name - description", then the description alone; each with a
# fallback that keeps the final "." when the text itself contains a "."
rule=systemd,session,start:Started Session %session_id:word% of User %user:char-to:.%.
rule=systemd,session,start:Started Session %session_id:word% of user %user:char-to:.%.
rule=systemd,session,start:Started session %session_id:word% of user %user:char-to:.%.
rule=systemd,session,start:Started %unit:word% - Session %session_id:word% of User %user:char-to:.%.
rule=systemd,session,start:Started Session %session_id:word% of User %user:rest%
rule=systemd,session,start:Started Session %session_id:word% of user %user:rest%
rule=systemd,session,start:Started session %session_id:word% of user %user:rest%
rule=systemd,session,start:Started %unit:word% - Session %session_id:word% of User %user:rest%
rule=systemd,unit,start:Started %unit:word% - %description:char-to:.%.
rule=systemd,unit,start:Started %unit:word% - %description:rest%
rule=systemd,unit,start:Started %description:char-to:.%.
rule=systemd,unit,start:Started %description:rest%
rule=systemd,unit,stop:Stopped %unit:word% - %description:char-to:.%.
rule=systemd,unit,stop:Stopped %unit:word% - %description:rest%
rule=systemd,unit,stop:Stopped %description:char-to:.%.
rule=systemd,unit,stop:Stopped %description:rest%
rule=systemd,unit,finish:Finished %unit:word% - %description:char-to:.%.
rule=systemd,unit,finish:Finished %unit:word% - %description:rest%
rule=systemd,unit,finish:Finished %description:char-to:.%.
rule=systemd,unit,finish:Finished %description:rest%
rule=systemd,unit,fail:Failed to start %unit:word% - %description:char-to:.%.
rule=systemd,unit,fail:Failed to start %unit:word% - %description:rest%
rule=systemd,unit,fail:Failed to start %description:char-to:.%.
rule=systemd,unit,fail:Failed to start %description:rest%
rule=systemd,unit,fail,dependency:Dependency failed for %unit:word% - %description:char-to:.%.
rule=systemd,unit,fail,dependency:Dependency failed for %unit:word% - %description:rest%
rule=systemd,unit,fail,dependency:Dependency failed for %description:char-to:.%.
rule=systemd,unit,fail,dependency:Dependency failed for %description:rest%
rule=systemd,unit,fail,timeout:Timed out starting %unit:word% - %description:char-to:.%.
rule=systemd,unit,fail,timeout:Timed out starting %unit:word% - %description:rest%
rule=systemd,unit,fail,timeout:Timed out starting %description:char-to:.%.
rule=systemd,unit,fail,timeout:Timed out starting %description:rest%
rule=systemd,unit,stop,timeout:Timed out stopping %unit:word% - %description:char-to:.%.
rule=systemd,unit,stop,timeout:Timed out stopping %unit:word% - %description:rest%
rule=systemd,unit,stop,timeout:Timed out stopping %description:char-to:.%.
rule=systemd,unit,stop,timeout:Timed out stopping %description:rest%
rule=systemd,unit,reload:Reloaded %unit:word% - %description:char-to:.%.
rule=systemd,unit,reload:Reloaded %unit:word% - %description:rest%
rule=systemd,unit,reload:Reloaded %description:char-to:.%.
rule=systemd,unit,reload:Reloaded %description:rest%
rule=systemd,unit,reload,fail:Reload failed for %unit:word% - %description:char-to:.%.
rule=systemd,unit,reload,fail:Reload failed for %unit:word% - %description:rest%
rule=systemd,unit,reload,fail:Reload failed for %description:char-to:.%.
rule=systemd,unit,reload,fail:Reload failed for %description:rest%
rule=systemd,target,start:Reached target %unit:word% - %description:char-to:.%.
rule=systemd,target,start:Reached target %unit:word% - %description:rest%
rule=systemd,target,start:Reached target %description:char-to:.%.
rule=systemd,target,start:Reached target %description:rest%
rule=systemd,target,stop:Stopped target %unit:word% - %description:char-to:.%.
rule=systemd,target,stop:Stopped target %unit:word% - %description:rest%
rule=systemd,target,stop:Stopped target %description:char-to:.%.
rule=systemd,target,stop:Stopped target %description:rest%
rule=systemd,socket,start:Listening on %unit:word% - %description:char-to:.%.
rule=systemd,socket,start:Listening on %unit:word% - %description:rest%
rule=systemd,socket,start:Listening on %description:char-to:.%.
rule=systemd,socket,start:Listening on %description:rest%
rule=systemd,socket,stop:Closed %unit:word% - %description:char-to:.%.
rule=systemd,socket,stop:Closed %unit:word% - %description:rest%
rule=systemd,socket,stop:Closed %description:char-to:.%.
rule=systemd,socket,stop:Closed %description:rest%
rule=systemd,mount,start:Mounted %unit:word% - %description:char-to:.%.
rule=systemd,mount,start:Mounted %unit:word% - %description:rest%
rule=systemd,mount,start:Mounted %description:char-to:.%.
rule=systemd,mount,start:Mounted %description:rest%
rule=systemd,mount,stop:Unmounted %unit:word% - %description:char-to:.%.
rule=systemd,mount,stop:Unmounted %unit:word% - %description:rest%
rule=systemd,mount,stop:Unmounted %description:char-to:.%.
rule=systemd,mount,stop:Unmounted %description:rest%
rule=systemd,slice,start:Created slice %unit:word% - %description:char-to:.%.
rule=systemd,slice,start:Created slice %unit:word% - %description:rest%
rule=systemd,slice,start:Created slice %description:char-to:.%.
rule=systemd,slice,start:Created slice %description:rest%
rule=systemd,slice,stop:Removed slice %unit:word% - %description:char-to:.%.
rule=systemd,slice,stop:Removed slice %unit:word% - %description:rest%
rule=systemd,slice,stop:Removed slice %description:char-to:.%.
rule=systemd,slice,stop:Removed slice %description:rest%

# --- messages about one unit: "NAME: ..." (v230 and later)
rule=systemd,unit,exit,success:%unit:string-to:: %: Main process exited, code=%code:char-to:,%, status=%status:number%/%{"name":"status_name","type":"literal","text":"SUCCESS"}%
rule=systemd,unit,exit,error:%unit:string-to:: %: Main process exited, code=%code:char-to:,%, status=%status:number%/%status_name:word%
rule=systemd,unit,exit,success:%unit:string-to:: %: Control process exited, code=%code:char-to:,%, status=%status:number%/%{"name":"status_name","type":"literal","text":"SUCCESS"}%
rule=systemd,unit,exit,error:%unit:string-to:: %: Control process exited, code=%code:char-to:,%, status=%status:number%/%status_name:word%
rule=systemd,unit,fail:%unit:string-to:: %: Failed with result '%reason:char-to:'%'.
rule=systemd,unit,fail:%unit:string-to:: %: Unit entered failed state.
rule=systemd,unit,fail,start-limit:%unit:string-to:: %: Start request repeated too quickly.
rule=systemd,unit,deactivated,success:%unit:string-to:: %: Deactivated successfully.
rule=systemd,unit,deactivated,success:%unit:string-to:: %: Succeeded.
rule=systemd,unit,resources:%unit:string-to:: %: Consumed %cpu_time:string-to: CPU time% CPU time.
rule=systemd,unit,resources:%unit:string-to:: %: Consumed %cpu_time:string-to: CPU time% CPU time, %memory_peak:word% memory peak.
rule=systemd,unit,resources:%unit:string-to:: %: Consumed %cpu_time:string-to: CPU time% CPU time, %memory_peak:word% memory peak, %swap_peak:word% memory swap peak.
rule=systemd,unit,resources:%unit:string-to:: %: Consumed %cpu_time:string-to: CPU time% CPU time%-:rest%
rule=systemd,unit,restart:%unit:string-to:: %: Scheduled restart job, restart counter is at %count:number%.
rule=systemd,unit,restart:%unit:string-to:: %: Service hold-off time over, scheduling restart.
rule=systemd,unit,restart:%unit:string-to:: %: Service RestartSec=%-:word% expired, scheduling restart.
rule=systemd,unit,kill:%unit:string-to:: %: Killing process %pid:number% (%program:char-to:)%) with signal %signal:char-to:.%.
rule=systemd,unit,timeout:%unit:string-to:: %: %operation:string-to: timed out.% timed out. %action:char-to:.%.
rule=systemd,unit,oom:%unit:string-to:: %: A process of this unit has been killed by the OOM killer.
rule=systemd,unit,exec,error:%unit:string-to:: %: Failed at step %step:word% spawning %command:string-to:: %: %reason:rest%
rule=systemd,unit,exec,error:%unit:string-to:: %: Failed to locate executable %command:string-to:: %: %reason:rest%
rule=systemd,unit,exec,error:%unit:string-to:: %: Unable to locate executable '%command:char-to:'%': %reason:rest%
rule=systemd,unit,exec,error:%unit:string-to:: %: Failed to execute %command:string-to:: %: %reason:rest%

# --- the same in systemd v219 (CentOS/RHEL 7): no "NAME:" prefix on some, lower case on others
rule=systemd,unit,exit,success:%unit:string-to:: %: main process exited, code=%code:char-to:,%, status=%status:number%/%{"name":"status_name","type":"literal","text":"SUCCESS"}%
rule=systemd,unit,exit,error:%unit:string-to:: %: main process exited, code=%code:char-to:,%, status=%status:number%/%status_name:word%
rule=systemd,unit,exit,success:%unit:string-to:: %: control process exited, code=%code:word% status=%{"name":"status","type":"literal","text":"0"}%
rule=systemd,unit,exit,error:%unit:string-to:: %: control process exited, code=%code:word% status=%status:number%
rule=systemd,unit,fail:Unit %unit:word% entered failed state.
rule=systemd,unit,fail:%unit:word% failed.
rule=systemd,unit,fail,start-limit:start request repeated too quickly for %unit:word%
rule=systemd,unit,restart:%unit:word% holdoff time over, scheduling restart.

# --- skipped units: v246-v249, then v250 and later
rule=systemd,unit,skipped:Condition check resulted in %description:string-to: being skipped.% being skipped.
rule=systemd,unit,skipped:%unit:word% - %description:string-to: was skipped because % was skipped because of an unmet condition check (%condition:char-to:)%).
rule=systemd,unit,skipped:%unit:word% - %description:string-to: was skipped because % was skipped because %reason:rest%
rule=systemd,unit,skipped:%description:string-to: was skipped because % was skipped because of an unmet condition check (%condition:char-to:)%).
rule=systemd,unit,skipped:%description:string-to: was skipped because % was skipped because %reason:rest%

# --- systemd itself
rule=systemd,daemon,start:systemd %version:word% running in %mode:word% mode%-:rest%
rule=systemd,startup:Startup finished in %times:rest%

# --- systemd-logind
rule=systemd,logind,session,start:New session %session_id:word% of user %user:char-to:.%.
rule=systemd,logind,session,start:New session %session_id:word% of user %user:rest%
rule=systemd,logind,session,stop:Removed session %session_id:char-to:.%.
rule=systemd,logind,session,logout:Session %session_id:word% logged out. Waiting for processes to exit.
rule=systemd,logind,shutdown:System is powering down.
rule=systemd,logind,reboot:System is rebooting.
