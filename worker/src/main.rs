//! `meniscus`: the Meniscus worker binary (see `meniscus_worker::cli`).

fn main() -> std::process::ExitCode {
    meniscus_worker::cli::main()
}
