//! Rulebases shipped with Meniscus, embedded at build time. Each file documents its
//! rules and fields in its header comment.

pub(crate) const NAMES: &[&str] = &[
    "sshd",
    "sudo",
    "cron",
    "iptables",
    "access-log",
    "postfix",
    "cisco-asa",
    "su",
    "systemd",
    "kernel",
    "apache-error",
    "nginx-error",
];

pub(crate) fn text(name: &str) -> Option<&'static str> {
    Some(match name {
        "sshd" => include_str!("../builtin/sshd.rb"),
        "sudo" => include_str!("../builtin/sudo.rb"),
        "cron" => include_str!("../builtin/cron.rb"),
        "iptables" => include_str!("../builtin/iptables.rb"),
        "access-log" => include_str!("../builtin/access-log.rb"),
        "postfix" => include_str!("../builtin/postfix.rb"),
        "cisco-asa" => include_str!("../builtin/cisco-asa.rb"),
        "su" => include_str!("../builtin/su.rb"),
        "systemd" => include_str!("../builtin/systemd.rb"),
        "kernel" => include_str!("../builtin/kernel.rb"),
        "apache-error" => include_str!("../builtin/apache-error.rb"),
        "nginx-error" => include_str!("../builtin/nginx-error.rb"),
        _ => return None,
    })
}
