//! `pasopati-collector`: everything but this line is in the library (pasopati_collector::cli).

fn main() -> std::process::ExitCode {
    pasopati_collector::cli::main()
}
