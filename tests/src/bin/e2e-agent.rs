//! The agent binary, built in this package so the tests can run it.

fn main() -> std::process::ExitCode {
    pasopati_agent::cli::main()
}
