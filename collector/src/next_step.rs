//! What the `pasopati-collector` command line tells the admin to do after a failure. The
//! library's errors say what is wrong; which command puts it right is the command line's to say,
//! so the commands and flags are named here, once, and nowhere in the library's errors.

use crate::config::ConfigError;
use crate::CollectorError;

/// Prints a failed command's error and, where there is one, the command to run next.
pub(crate) fn report_failure(e: &anyhow::Error) -> std::process::ExitCode {
    pasopati_common::errln!(
        "error: {}",
        pasopati_common::terminal::error_text(e.as_ref())
    );
    if let Some(step) = next_step(e) {
        pasopati_common::errln!("{step}");
    }
    std::process::ExitCode::FAILURE
}

/// The admin's next step after `e`, or `None` when the error says all there is.
fn next_step(e: &anyhow::Error) -> Option<String> {
    let config_step = |c: &ConfigError| match c {
        ConfigError::NotInitialised { dir, .. } => Some(format!(
            "Create one with `pasopati-collector init --data-dir {dir}`."
        )),
        ConfigError::File(_) => None,
    };
    e.chain().find_map(|cause| {
        if let Some(c) = cause.downcast_ref::<CollectorError>() {
            return match c {
                CollectorError::Config(c) => config_step(c),
                CollectorError::AlreadyRunning(_) => Some(
                    "Stop it first (`systemctl stop pasopati-collector`), or use the CLI commands, which talk to it.".into(),
                ),
                _ => None,
            };
        }
        cause.downcast_ref::<ConfigError>().and_then(config_step)
    })
}
