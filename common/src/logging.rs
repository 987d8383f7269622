//! The one setup of the command lines (`pasopati-agent`, `pasopati-collector`, `pasopati-demo`):
//! logs to standard error filtered by an environment variable, the async runtime, and how a
//! command's outcome becomes the exit status.

use std::future::Future;
use std::process::ExitCode;

/// Where a command line's log filter comes from.
#[derive(Clone, Copy, Debug)]
pub struct LogConfig {
    /// The environment variable holding a filter (`tracing_subscriber::EnvFilter` syntax).
    pub env_var: &'static str,
    /// The filter used when the variable is unset or unreadable.
    pub default_filter: &'static str,
}

impl LogConfig {
    /// The daemons and their command lines: `PASOPATI_LOG`, else `info`, with quinn and rustls
    /// at `warn`.
    pub const DAEMON: LogConfig = LogConfig {
        env_var: "PASOPATI_LOG",
        default_filter: "info,quinn=warn,rustls=warn",
    };

    /// The filter this configuration gives in the current environment.
    pub fn filter(&self) -> tracing_subscriber::EnvFilter {
        tracing_subscriber::EnvFilter::try_from_env(self.env_var)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(self.default_filter))
    }
}

/// Sends log lines to standard error (coloured only on a terminal), filtered as `config` says.
/// Call once, first thing in `main`.
pub fn init_logging(config: LogConfig) {
    // A closed log pipe (`… 2>&1 | head -1`) must never decide whether the daemon lives: the
    // subscriber's own report of a failed write goes to the same closed stderr through
    // `eprintln!`, which panics (it once took the signal task down, so SIGTERM was ignored). So
    // that report is switched off, and log lines that cannot be written are dropped.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(config.filter())
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter_reloading();
    let handle = builder.reload_handle();
    builder.init();
    let _ = LEVEL.set(Box::new(move |filter| {
        handle.reload(filter).map_err(|e| e.to_string())
    }));
}

type Reload = Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync>;

/// Changes the level of the filter [`init_logging`] set up.
static LEVEL: std::sync::OnceLock<Reload> = std::sync::OnceLock::new();

/// Logs at `level` (`error`, `warn`, `info`, `debug`) from now on, quinn and rustls staying at
/// `warn` (the agent's `[log] level`, which the center may set). Nothing happens in a process
/// whose logging was not set up by [`init_logging`] (tests, in-process daemons).
pub fn set_level(level: &str) {
    let Some(reload) = LEVEL.get() else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("{level},quinn=warn,rustls=warn"));
    if let Err(e) = reload(filter) {
        tracing::warn!("cannot change the log level: {e}");
    }
}

/// Runs a command on a multi-threaded runtime (`worker_threads` of them, or one per core) and
/// turns its outcome into the exit status: success; success too for output into a closed pipe,
/// which ends a command quietly; otherwise what `failed` makes of the error (it tells the
/// person).
pub fn run_command<E>(
    worker_threads: Option<usize>,
    command: impl Future<Output = Result<(), E>>,
    failed: impl FnOnce(&E) -> ExitCode,
) -> ExitCode
where
    E: AsRef<dyn std::error::Error + Send + Sync + 'static>,
{
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            crate::errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if crate::terminal::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => failed(&e),
    }
}
