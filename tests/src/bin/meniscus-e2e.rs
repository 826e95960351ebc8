//! The `meniscus` command line as the end-to-end tests run it: the same code as the worker's
//! `meniscus` binary, built with this package so `cargo test` always rebuilds it.

fn main() -> std::process::ExitCode {
    meniscus_worker::cli::main()
}
