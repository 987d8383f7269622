//! `pasopati-agent`: everything but this line is in the library (pasopati_agent::cli).

fn main() -> std::process::ExitCode {
    pasopati_agent::cli::main()
}
