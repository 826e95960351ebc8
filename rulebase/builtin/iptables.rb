version=2
# Built-in rulebase: Linux netfilter log lines (iptables LOG / nftables log), as the
# kernel writes them, with or without the kernel timestamp.
#
# rule tags          fields
# firewall,netfilter prefix (the --log-prefix text, e.g. "[UFW BLOCK]"), fw (object of
#                    IN, OUT, MAC, SRC, DST, LEN, TOS, PROTO, SPT, DPT, ... ; flags such as
#                    DF or SYN map to null), kernel_ts when present
rule=firewall,netfilter:%fw:v2-iptables%
rule=firewall,netfilter:[%kernel_ts:float%] %fw:v2-iptables%
rule=firewall,netfilter:[%-:whitespace%%kernel_ts:float%] %fw:v2-iptables%
rule=firewall,netfilter:[%kernel_ts:float%] %prefix:string-to: IN=% %fw:v2-iptables%
rule=firewall,netfilter:[%-:whitespace%%kernel_ts:float%] %prefix:string-to: IN=% %fw:v2-iptables%
rule=firewall,netfilter:%prefix:string-to: IN=% %fw:v2-iptables%
