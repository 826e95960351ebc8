version=2
# Built-in rulebase: Linux kernel messages (the MSG part after "kernel: "), with or without
# the kernel's "[  123.456789] " timestamp (rsyslog's imklog keeps it, the journal drops
# it): the OOM killer, crashing processes, network links, disk and file-system errors,
# stalls and panics, and a few boot lines (the kernel version and command line).
#
# Fields (the names every built-in uses, see FIELDS.md):
#   kernel_ts     seconds since boot, when the line has the timestamp
#   pid, program  the process concerned (the OOM victim, the crashing process); uid its owner
#   OOM killer    gfp_mask, order, oom_score_adj, oom_adj (older kernels), constraint,
#                 cgroup (the victim's memory cgroup), score, total_vm_kb, anon_rss_kb,
#                 file_rss_kb, shmem_rss_kb, pgtables_kb (sizes in KiB, as printed)
#   crashes       fault_addr, ip, sp, error_code (hexadecimal as printed), object (the
#                 file mapped where it crashed: a library or the program), trap
#   links         interface, driver, device (the bus id, "0000:00:1f.6"), speed_mbps or
#                 speed_gbps (whichever unit the driver prints), duplex, flow_control,
#                 bridge, port, state
#   disks         device ("sda"), sector, block, reason
#   other         task (a "name:pid" the kernel prints together), seconds, cpu, reason,
#                 dst_port, listen, action
#   boot          version, cmdline, memory_available, memory_total, range_start,
#                 range_end, range_type (the firmware memory map), cpu_mhz, source (klogd)
#
# Tags: kernel on every rule, then what happened:
#   oom                 the OOM killer ran (who invoked it, the summary line); with kill
#                       on the line that reports the process it killed (one per kill in
#                       every kernel version), cgroup when a memory cgroup ran out, reaped
#                       when the oom_reaper freed its memory
#   segfault            a process crashed on a bad memory access; gpf for a general
#                       protection fault; trap for other CPU traps (invalid opcode, ...)
#   link-up / link-down a network link came up or went down; link,not-ready for an
#                       interface brought up without carrier
#   bridge, promiscuous a bridge port changed state; an interface entered promiscuous mode
#   io,error / fs,error a disk I/O error; a file-system error
#   hung-task, lockup, panic
#   conntrack,drop      the connection-tracking table is full
#   syn-flood           the kernel saw a SYN flood and sends cookies
#   boot                boot: the kernel version and command line; with memory for
#                       the memory size and map, cpu for the CPU speed, klogd
#
# Every rule comes twice: without the timestamp, and after "[%-:char-sep:0123456789%" +
# "%kernel_ts:float%] ", where char-sep takes the spaces that right-align the seconds (or
# nothing, after 99999 seconds of uptime). The kernel-timestamp type is not used: it
# requires five digits and no spaces, so it misses most timestamps.

# --- the OOM killer: current kernels log one line per kill; before 5.x a "Kill process"
# line (kernel,oom) came first, then "Killed process"
rule=kernel,oom:%program:string-to: invoked oom-killer: % invoked oom-killer: gfp_mask=%gfp_mask:char-to:,%, order=%order:number%, oom_score_adj=%oom_score_adj:word%
rule=kernel,oom:[%-:char-sep:0123456789%%kernel_ts:float%] %program:string-to: invoked oom-killer: % invoked oom-killer: gfp_mask=%gfp_mask:char-to:,%, order=%order:number%, oom_score_adj=%oom_score_adj:word%
rule=kernel,oom:%program:string-to: invoked oom-killer: % invoked oom-killer: gfp_mask=%gfp_mask:char-to:,%, order=%order:number%, oom_adj=%oom_adj:char-to:,%, oom_score_adj=%oom_score_adj:word%
rule=kernel,oom:[%-:char-sep:0123456789%%kernel_ts:float%] %program:string-to: invoked oom-killer: % invoked oom-killer: gfp_mask=%gfp_mask:char-to:,%, order=%order:number%, oom_adj=%oom_adj:char-to:,%, oom_score_adj=%oom_score_adj:word%
rule=kernel,oom:%program:string-to: invoked oom-killer: % invoked oom-killer: %-:rest%
rule=kernel,oom:[%-:char-sep:0123456789%%kernel_ts:float%] %program:string-to: invoked oom-killer: % invoked oom-killer: %-:rest%
rule=kernel,oom:oom-kill:constraint=%constraint:char-to:,%,%-:string-to:,task_memcg=%,task_memcg=%cgroup:char-to:,%,task=%program:char-to:,%,pid=%pid:number%,uid=%uid:number%
rule=kernel,oom:[%-:char-sep:0123456789%%kernel_ts:float%] oom-kill:constraint=%constraint:char-to:,%,%-:string-to:,task_memcg=%,task_memcg=%cgroup:char-to:,%,task=%program:char-to:,%,pid=%pid:number%,uid=%uid:number%
rule=kernel,oom:oom-kill:constraint=%constraint:char-to:,%,%-:string-to:,task=%,task=%program:char-to:,%,pid=%pid:number%,uid=%uid:number%
rule=kernel,oom:[%-:char-sep:0123456789%%kernel_ts:float%] oom-kill:constraint=%constraint:char-to:,%,%-:string-to:,task=%,task=%program:char-to:,%,pid=%pid:number%,uid=%uid:number%
rule=kernel,oom,kill:Out of memory: Killed process %pid:number% (%program:char-to:)%) total-vm:%total_vm_kb:number%kB, anon-rss:%anon_rss_kb:number%kB, file-rss:%file_rss_kb:number%kB, shmem-rss:%shmem_rss_kb:number%kB, UID:%uid:number% pgtables:%pgtables_kb:number%kB oom_score_adj:%oom_score_adj:word%
rule=kernel,oom,kill:[%-:char-sep:0123456789%%kernel_ts:float%] Out of memory: Killed process %pid:number% (%program:char-to:)%) total-vm:%total_vm_kb:number%kB, anon-rss:%anon_rss_kb:number%kB, file-rss:%file_rss_kb:number%kB, shmem-rss:%shmem_rss_kb:number%kB, UID:%uid:number% pgtables:%pgtables_kb:number%kB oom_score_adj:%oom_score_adj:word%
rule=kernel,oom,kill:Out of memory: Killed process %pid:number% (%program:char-to:)%) %-:rest%
rule=kernel,oom,kill:[%-:char-sep:0123456789%%kernel_ts:float%] Out of memory: Killed process %pid:number% (%program:char-to:)%) %-:rest%
rule=kernel,oom,kill,cgroup:Memory cgroup out of memory: Killed process %pid:number% (%program:char-to:)%) total-vm:%total_vm_kb:number%kB, anon-rss:%anon_rss_kb:number%kB, file-rss:%file_rss_kb:number%kB, shmem-rss:%shmem_rss_kb:number%kB, UID:%uid:number% pgtables:%pgtables_kb:number%kB oom_score_adj:%oom_score_adj:word%
rule=kernel,oom,kill,cgroup:[%-:char-sep:0123456789%%kernel_ts:float%] Memory cgroup out of memory: Killed process %pid:number% (%program:char-to:)%) total-vm:%total_vm_kb:number%kB, anon-rss:%anon_rss_kb:number%kB, file-rss:%file_rss_kb:number%kB, shmem-rss:%shmem_rss_kb:number%kB, UID:%uid:number% pgtables:%pgtables_kb:number%kB oom_score_adj:%oom_score_adj:word%
rule=kernel,oom,kill,cgroup:Memory cgroup out of memory: Killed process %pid:number% (%program:char-to:)%) %-:rest%
rule=kernel,oom,kill,cgroup:[%-:char-sep:0123456789%%kernel_ts:float%] Memory cgroup out of memory: Killed process %pid:number% (%program:char-to:)%) %-:rest%
rule=kernel,oom:Out of memory: Kill process %pid:number% (%program:char-to:)%) score %score:number% or sacrifice child
rule=kernel,oom:[%-:char-sep:0123456789%%kernel_ts:float%] Out of memory: Kill process %pid:number% (%program:char-to:)%) score %score:number% or sacrifice child
rule=kernel,oom,cgroup:Memory cgroup out of memory: Kill process %pid:number% (%program:char-to:)%) score %score:number% or sacrifice child
rule=kernel,oom,cgroup:[%-:char-sep:0123456789%%kernel_ts:float%] Memory cgroup out of memory: Kill process %pid:number% (%program:char-to:)%) score %score:number% or sacrifice child
rule=kernel,oom,kill:Killed process %pid:number% (%program:char-to:)%) total-vm:%total_vm_kb:number%kB, anon-rss:%anon_rss_kb:number%kB, file-rss:%file_rss_kb:number%kB, shmem-rss:%shmem_rss_kb:number%kB
rule=kernel,oom,kill:[%-:char-sep:0123456789%%kernel_ts:float%] Killed process %pid:number% (%program:char-to:)%) total-vm:%total_vm_kb:number%kB, anon-rss:%anon_rss_kb:number%kB, file-rss:%file_rss_kb:number%kB, shmem-rss:%shmem_rss_kb:number%kB
rule=kernel,oom,kill:Killed process %pid:number% (%program:char-to:)%) total-vm:%total_vm_kb:number%kB, anon-rss:%anon_rss_kb:number%kB, file-rss:%file_rss_kb:number%kB
rule=kernel,oom,kill:[%-:char-sep:0123456789%%kernel_ts:float%] Killed process %pid:number% (%program:char-to:)%) total-vm:%total_vm_kb:number%kB, anon-rss:%anon_rss_kb:number%kB, file-rss:%file_rss_kb:number%kB
rule=kernel,oom,kill:Killed process %pid:number% (%program:char-to:)%) %-:rest%
rule=kernel,oom,kill:[%-:char-sep:0123456789%%kernel_ts:float%] Killed process %pid:number% (%program:char-to:)%) %-:rest%
rule=kernel,oom,reaped:oom_reaper: reaped process %pid:number% (%program:char-to:)%), now anon-rss:%anon_rss_kb:number%kB, file-rss:%file_rss_kb:number%kB, shmem-rss:%shmem_rss_kb:number%kB
rule=kernel,oom,reaped:[%-:char-sep:0123456789%%kernel_ts:float%] oom_reaper: reaped process %pid:number% (%program:char-to:)%), now anon-rss:%anon_rss_kb:number%kB, file-rss:%file_rss_kb:number%kB, shmem-rss:%shmem_rss_kb:number%kB

# --- crashes of user processes: segmentation faults (6.x adds "likely on CPU n ..."),
# general protection faults and other traps
rule=kernel,segfault:%program:char-to:[%[%pid:number%]: segfault at %fault_addr:word% ip %ip:word% sp %sp:word% error %error_code:word% in %object:char-to:[%[%-:char-to:]%]%-:rest%
rule=kernel,segfault:[%-:char-sep:0123456789%%kernel_ts:float%] %program:char-to:[%[%pid:number%]: segfault at %fault_addr:word% ip %ip:word% sp %sp:word% error %error_code:word% in %object:char-to:[%[%-:char-to:]%]%-:rest%
rule=kernel,segfault:%program:char-to:[%[%pid:number%]: segfault at %fault_addr:word% ip %ip:word% sp %sp:word% error %error_code:word%%-:rest%
rule=kernel,segfault:[%-:char-sep:0123456789%%kernel_ts:float%] %program:char-to:[%[%pid:number%]: segfault at %fault_addr:word% ip %ip:word% sp %sp:word% error %error_code:word%%-:rest%
rule=kernel,segfault,gpf:traps: %program:char-to:[%[%pid:number%] general protection fault ip:%ip:word% sp:%sp:word% error:%error_code:word% in %object:char-to:[%[%-:char-to:]%]%-:rest%
rule=kernel,segfault,gpf:[%-:char-sep:0123456789%%kernel_ts:float%] traps: %program:char-to:[%[%pid:number%] general protection fault ip:%ip:word% sp:%sp:word% error:%error_code:word% in %object:char-to:[%[%-:char-to:]%]%-:rest%
rule=kernel,segfault,gpf:traps: %program:char-to:[%[%pid:number%] general protection fault ip:%ip:word% sp:%sp:word% error:%error_code:word%%-:rest%
rule=kernel,segfault,gpf:[%-:char-sep:0123456789%%kernel_ts:float%] traps: %program:char-to:[%[%pid:number%] general protection fault ip:%ip:word% sp:%sp:word% error:%error_code:word%%-:rest%
rule=kernel,trap:traps: %program:char-to:[%[%pid:number%] trap %trap:string-to: ip:% ip:%ip:word% sp:%sp:word% error:%error_code:word% in %object:char-to:[%[%-:char-to:]%]%-:rest%
rule=kernel,trap:[%-:char-sep:0123456789%%kernel_ts:float%] traps: %program:char-to:[%[%pid:number%] trap %trap:string-to: ip:% ip:%ip:word% sp:%sp:word% error:%error_code:word% in %object:char-to:[%[%-:char-to:]%]%-:rest%
rule=kernel,trap:traps: %program:char-to:[%[%pid:number%] trap %trap:string-to: ip:% ip:%ip:word% sp:%sp:word% error:%error_code:word%%-:rest%
rule=kernel,trap:[%-:char-sep:0123456789%%kernel_ts:float%] traps: %program:char-to:[%[%pid:number%] trap %trap:string-to: ip:% ip:%ip:word% sp:%sp:word% error:%error_code:word%%-:rest%

# --- network links: the driver's own line ("DRIVER: IF ..." in old kernels, "DRIVER BUS-ID
# IF: ..." from netdev_info), phylib, the generic MII helper, IPv6 address configuration
rule=kernel,link-up:%driver:char-to::%: %interface:word% NIC Link is Up %speed_mbps:number% Mbps %duplex:word% Duplex, Flow Control: %flow_control:rest%
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:char-to::%: %interface:word% NIC Link is Up %speed_mbps:number% Mbps %duplex:word% Duplex, Flow Control: %flow_control:rest%
rule=kernel,link-down:%driver:char-to::%: %interface:word% NIC Link is Down
rule=kernel,link-down:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:char-to::%: %interface:word% NIC Link is Down
rule=kernel,link-up:%driver:word% %device:word% %interface:char-to::%: NIC Link is Up %speed_mbps:number% Mbps %duplex:word% Duplex, Flow Control: %flow_control:rest%
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: NIC Link is Up %speed_mbps:number% Mbps %duplex:word% Duplex, Flow Control: %flow_control:rest%
rule=kernel,link-up:%driver:word% %device:word% %interface:char-to::%: %-:char-to::%: %-:word% NIC Link is Up %speed_mbps:number% Mbps %duplex:word% Duplex, Flow Control: %flow_control:rest%
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: %-:char-to::%: %-:word% NIC Link is Up %speed_mbps:number% Mbps %duplex:word% Duplex, Flow Control: %flow_control:rest%
rule=kernel,link-up:%driver:word% %device:word% %interface:char-to::%: NIC Link is Up %speed_gbps:float% Gbps, Flow Control: %flow_control:rest%
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: NIC Link is Up %speed_gbps:float% Gbps, Flow Control: %flow_control:rest%
rule=kernel,link-up:%driver:word% %device:word% %interface:char-to::%: NIC Link is Up %speed_mbps:number% Mbps, Flow Control: %flow_control:rest%
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: NIC Link is Up %speed_mbps:number% Mbps, Flow Control: %flow_control:rest%
rule=kernel,link-up:%driver:word% %device:word% %interface:char-to::%: NIC Link is Up, %speed_gbps:float% Gbps %duplex:word% Duplex, %-:rest%
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: NIC Link is Up, %speed_gbps:float% Gbps %duplex:word% Duplex, %-:rest%
rule=kernel,link-down:%driver:word% %device:word% %interface:char-to::%: NIC Link is Down
rule=kernel,link-down:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: NIC Link is Down
rule=kernel,link-down:%driver:word% %device:word% %interface:char-to::%: %-:char-to::%: %-:word% NIC Link is Down
rule=kernel,link-down:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: %-:char-to::%: %-:word% NIC Link is Down
rule=kernel,link-up:%driver:word% %device:word% %interface:char-to::%: Link is Up - %speed_gbps:float%Gbps/%duplex:word% - flow control %flow_control:rest%
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: Link is Up - %speed_gbps:float%Gbps/%duplex:word% - flow control %flow_control:rest%
rule=kernel,link-up:%driver:word% %device:word% %interface:char-to::%: Link is Up - %speed_mbps:number%Mbps/%duplex:word% - flow control %flow_control:rest%
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: Link is Up - %speed_mbps:number%Mbps/%duplex:word% - flow control %flow_control:rest%
rule=kernel,link-up:%driver:word% %device:word% %interface:char-to::%: Link is up at %speed_mbps:number% Mbps, %duplex:word% duplex
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: Link is up at %speed_mbps:number% Mbps, %duplex:word% duplex
rule=kernel,link-up:%driver:word% %device:word% %interface:char-to::%: Link up
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: Link up
rule=kernel,link-down:%driver:word% %device:word% %interface:char-to::%: Link is Down
rule=kernel,link-down:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: Link is Down
rule=kernel,link-down:%driver:word% %device:word% %interface:char-to::%: Link is down
rule=kernel,link-down:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: Link is down
rule=kernel,link-down:%driver:word% %device:word% %interface:char-to::%: Link down
rule=kernel,link-down:[%-:char-sep:0123456789%%kernel_ts:float%] %driver:word% %device:word% %interface:char-to::%: Link down
rule=kernel,link-up:%interface:char-to::%: link up, %speed_mbps:number%Mbps, %duplex:char-to:-%-duplex, lpa %-:word%
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %interface:char-to::%: link up, %speed_mbps:number%Mbps, %duplex:char-to:-%-duplex, lpa %-:word%
rule=kernel,link-up:%interface:char-to::%: link up
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] %interface:char-to::%: link up
rule=kernel,link-down:%interface:char-to::%: link down
rule=kernel,link-down:[%-:char-sep:0123456789%%kernel_ts:float%] %interface:char-to::%: link down
rule=kernel,link-up:IPv6: ADDRCONF(NETDEV_CHANGE): %interface:char-to::%: link becomes ready
rule=kernel,link-up:[%-:char-sep:0123456789%%kernel_ts:float%] IPv6: ADDRCONF(NETDEV_CHANGE): %interface:char-to::%: link becomes ready
rule=kernel,link,not-ready:IPv6: ADDRCONF(NETDEV_UP): %interface:char-to::%: link is not ready
rule=kernel,link,not-ready:[%-:char-sep:0123456789%%kernel_ts:float%] IPv6: ADDRCONF(NETDEV_UP): %interface:char-to::%: link is not ready
rule=kernel,bridge:%bridge:char-to::%: port %port:number%(%interface:char-to:)%) entered %state:word% state
rule=kernel,bridge:[%-:char-sep:0123456789%%kernel_ts:float%] %bridge:char-to::%: port %port:number%(%interface:char-to:)%) entered %state:word% state
rule=kernel,promiscuous:device %interface:word% entered promiscuous mode
rule=kernel,promiscuous:[%-:char-sep:0123456789%%kernel_ts:float%] device %interface:word% entered promiscuous mode
rule=kernel,promiscuous:%interface:char-to::%: entered promiscuous mode
rule=kernel,promiscuous:[%-:char-sep:0123456789%%kernel_ts:float%] %interface:char-to::%: entered promiscuous mode

# --- disks and file systems
rule=kernel,io,error:blk_update_request: I/O error, dev %device:char-to:,%, sector %sector:number%%-:rest%
rule=kernel,io,error:[%-:char-sep:0123456789%%kernel_ts:float%] blk_update_request: I/O error, dev %device:char-to:,%, sector %sector:number%%-:rest%
rule=kernel,io,error:I/O error, dev %device:char-to:,%, sector %sector:number%%-:rest%
rule=kernel,io,error:[%-:char-sep:0123456789%%kernel_ts:float%] I/O error, dev %device:char-to:,%, sector %sector:number%%-:rest%
rule=kernel,io,error:end_request: I/O error, dev %device:char-to:,%, sector %sector:number%
rule=kernel,io,error:[%-:char-sep:0123456789%%kernel_ts:float%] end_request: I/O error, dev %device:char-to:,%, sector %sector:number%
rule=kernel,io,error:Buffer I/O error on dev %device:char-to:,%, logical block %block:number%, %-:rest%
rule=kernel,io,error:[%-:char-sep:0123456789%%kernel_ts:float%] Buffer I/O error on dev %device:char-to:,%, logical block %block:number%, %-:rest%
rule=kernel,io,error:Buffer I/O error on device %device:char-to:,%, logical block %block:number%%-:rest%
rule=kernel,io,error:[%-:char-sep:0123456789%%kernel_ts:float%] Buffer I/O error on device %device:char-to:,%, logical block %block:number%%-:rest%
rule=kernel,fs,error:EXT4-fs error (device %device:char-to:)%): %reason:rest%
rule=kernel,fs,error:[%-:char-sep:0123456789%%kernel_ts:float%] EXT4-fs error (device %device:char-to:)%): %reason:rest%

# --- stalls, panics and the network stack under pressure
rule=kernel,hung-task:INFO: task %program:char-to::%:%pid:number% blocked for more than %seconds:number% seconds.
rule=kernel,hung-task:[%-:char-sep:0123456789%%kernel_ts:float%] INFO: task %program:char-to::%:%pid:number% blocked for more than %seconds:number% seconds.
rule=kernel,hung-task:INFO: task %task:string-to: blocked for more than % blocked for more than %seconds:number% seconds.
rule=kernel,hung-task:[%-:char-sep:0123456789%%kernel_ts:float%] INFO: task %task:string-to: blocked for more than % blocked for more than %seconds:number% seconds.
rule=kernel,lockup:watchdog: BUG: soft lockup - CPU#%cpu:number% stuck for %seconds:number%s! [%task:char-to:]%]
rule=kernel,lockup:[%-:char-sep:0123456789%%kernel_ts:float%] watchdog: BUG: soft lockup - CPU#%cpu:number% stuck for %seconds:number%s! [%task:char-to:]%]
rule=kernel,lockup:NMI watchdog: BUG: soft lockup - CPU#%cpu:number% stuck for %seconds:number%s! [%task:char-to:]%]
rule=kernel,lockup:[%-:char-sep:0123456789%%kernel_ts:float%] NMI watchdog: BUG: soft lockup - CPU#%cpu:number% stuck for %seconds:number%s! [%task:char-to:]%]
rule=kernel,lockup:BUG: soft lockup - CPU#%cpu:number% stuck for %seconds:number%s! [%task:char-to:]%]
rule=kernel,lockup:[%-:char-sep:0123456789%%kernel_ts:float%] BUG: soft lockup - CPU#%cpu:number% stuck for %seconds:number%s! [%task:char-to:]%]
rule=kernel,panic:Kernel panic - not syncing: %reason:rest%
rule=kernel,panic:[%-:char-sep:0123456789%%kernel_ts:float%] Kernel panic - not syncing: %reason:rest%
rule=kernel,conntrack,drop:nf_conntrack: table full, dropping packet
rule=kernel,conntrack,drop:[%-:char-sep:0123456789%%kernel_ts:float%] nf_conntrack: table full, dropping packet
rule=kernel,conntrack,drop:nf_conntrack: nf_conntrack: table full, dropping packet
rule=kernel,conntrack,drop:[%-:char-sep:0123456789%%kernel_ts:float%] nf_conntrack: nf_conntrack: table full, dropping packet
rule=kernel,syn-flood:TCP: %-:char-to::%: Possible SYN flooding on port %dst_port:number%. %action:char-to:.%.%-:rest%
rule=kernel,syn-flood:[%-:char-sep:0123456789%%kernel_ts:float%] TCP: %-:char-to::%: Possible SYN flooding on port %dst_port:number%. %action:char-to:.%.%-:rest%
rule=kernel,syn-flood:TCP: %-:char-to::%: Possible SYN flooding on port %listen:string-to:. %. %action:char-to:.%.%-:rest%
rule=kernel,syn-flood:[%-:char-sep:0123456789%%kernel_ts:float%] TCP: %-:char-to::%: Possible SYN flooding on port %listen:string-to:. %. %action:char-to:.%.%-:rest%

# --- boot: the kernel version, command line, memory (and the firmware's memory map, which
# older kernels print indented), CPU speed
rule=kernel,boot:Linux version %version:word% %-:rest%
rule=kernel,boot:[%-:char-sep:0123456789%%kernel_ts:float%] Linux version %version:word% %-:rest%
rule=kernel,boot:Kernel command line: %cmdline:rest%
rule=kernel,boot:[%-:char-sep:0123456789%%kernel_ts:float%] Kernel command line: %cmdline:rest%
rule=kernel,boot,memory:Memory: %memory_available:char-to:/%/%memory_total:word% available%-:rest%
rule=kernel,boot,memory:[%-:char-sep:0123456789%%kernel_ts:float%] Memory: %memory_available:char-to:/%/%memory_total:word% available%-:rest%
rule=kernel,boot,memory:BIOS-e820: [mem %range_start:char-to:-%-%range_end:char-to:]%] %range_type:rest%
rule=kernel,boot,memory:[%-:char-sep:0123456789%%kernel_ts:float%] BIOS-e820: [mem %range_start:char-to:-%-%range_end:char-to:]%] %range_type:rest%
rule=kernel,boot,memory:BIOS-e820: %range_start:word% - %range_end:word% (%range_type:char-to:)%)
rule=kernel,boot,memory:[%-:char-sep:0123456789%%kernel_ts:float%] BIOS-e820: %range_start:word% - %range_end:word% (%range_type:char-to:)%)
rule=kernel,boot,memory:%-:whitespace%BIOS-e820: %range_start:word% - %range_end:word% (%range_type:char-to:)%)
rule=kernel,boot,memory:[%-:char-sep:0123456789%%kernel_ts:float%] %-:whitespace%BIOS-e820: %range_start:word% - %range_end:word% (%range_type:char-to:)%)
rule=kernel,boot,cpu:Detected %cpu_mhz:float% MHz processor.
rule=kernel,boot,cpu:[%-:char-sep:0123456789%%kernel_ts:float%] Detected %cpu_mhz:float% MHz processor.
rule=kernel,boot,cpu:tsc: Detected %cpu_mhz:float% MHz processor
rule=kernel,boot,cpu:[%-:char-sep:0123456789%%kernel_ts:float%] tsc: Detected %cpu_mhz:float% MHz processor
rule=kernel,boot,klogd:klogd %version:char-to:,%, log source = %source:word% started.
rule=kernel,boot,klogd:[%-:char-sep:0123456789%%kernel_ts:float%] klogd %version:char-to:,%, log source = %source:word% started.
