//! The PASOPATI Edge collector.
//!
//! [`Collector::open`] loads a data directory made by [`init`]; [`Collector::bind`] opens the
//! QUIC listener (and the local control socket) and returns a [`Server`] whose
//! [`Server::run`] serves until its shutdown token is cancelled, so tests run it in-process on
//! port 0. Admin subcommands go through [`call`], which reaches the running daemon over its
//! control socket or opens the store directly when no daemon runs.

pub mod admin;
pub mod attachments;
pub mod authority;
pub mod backup;
pub mod cli;
mod cluster;
pub mod config;
pub mod control;
pub mod events;
pub mod fleet;
mod group_commit;
pub mod newsroom;
mod next_step;
pub mod notify;
pub mod report_index;
pub mod risk;
mod server;
pub mod smtp;
pub mod sources;
pub mod store;
pub mod web;

use crate::authority::Authority;
use crate::config::CollectorConfig;
use crate::control::{CollectorRequest, CollectorResponse};
use crate::events::CollectorEvent;
use crate::server::ServerState;
use crate::store::{Store, StoreError, StoreLocation};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Anything the collector can fail at, each with a message an admin can act on.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("certificates: {0}")]
    Pki(#[from] pasopati_common::pki::PkiError),
    #[error("{0} already holds a collector (collector.toml exists); use another directory or remove it first")]
    AlreadyInitialised(String),
    #[error("cannot listen on {addr} (`{setting}` in collector.toml): {source}. Another program (or another collector) uses it: stop that, or choose another address in collector.toml")]
    Listen {
        addr: String,
        setting: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("a collector is already running for {0} (its control socket answers)")]
    AlreadyRunning(String),
    #[error(transparent)]
    Control(#[from] pasopati_common::control::ControlError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Task(#[from] pasopati_common::task::TaskFailed),
    #[error("{0}")]
    Admin(String),
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
}

/// Options of `init`.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    pub quic_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub public_addr: Option<String>,
    /// A PostgreSQL store instead of the embedded one (`[store]`).
    pub store: Option<config::StoreSettings>,
}

/// Creates a collector data directory: configuration, CA, server certificate and empty store.
pub fn init(data_dir: &Path, options: InitOptions) -> Result<CollectorConfig, CollectorError> {
    if CollectorConfig::path(data_dir).exists() {
        return Err(CollectorError::AlreadyInitialised(
            data_dir.display().to_string(),
        ));
    }
    let mut config = CollectorConfig::with_defaults(
        options.quic_listen,
        options.http_listen,
        options.public_addr,
    );
    config.store = options.store;
    config.check().map_err(CollectorError::Admin)?;
    let existed = data_dir.exists();
    pasopati_common::storage::create_private_dir(data_dir).map_err(|source| {
        CollectorError::Io {
            what: format!("creating {}", data_dir.display()),
            source,
        }
    })?;
    if let Err(e) = prepare_store(data_dir, &mut config) {
        // Nothing half-made stays: a directory made now goes, else only the CA copied now.
        if existed {
            let _ = std::fs::remove_file(data_dir.join(STORE_CA_FILE));
        } else {
            let _ = std::fs::remove_dir_all(data_dir);
        }
        return Err(e);
    }
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    for addr in pasopati_common::collector_addrs(&config.public_addr) {
        if let Some((host, _)) = addr.rsplit_once(':') {
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            if !host.is_empty() && !names.contains(&host) {
                names.push(host);
            }
        }
    }
    Authority::create(data_dir, &names)?;
    // The config is written last: its presence marks a complete data directory.
    config.save(data_dir)?;
    pasopati_common::storage::make_private(data_dir).map_err(|source| CollectorError::Io {
        what: format!(
            "making {} private (mode 0700, files 0600)",
            data_dir.display()
        ),
        source,
    })?;
    Ok(config)
}

/// Opens the store of the collector in `data_dir` (the one its configuration names), for
/// tools and tests that read a stopped collector's data.
pub fn open_store(data_dir: &Path) -> Result<Store, CollectorError> {
    let config = CollectorConfig::load(data_dir)?;
    Ok(Store::open_at(&config.store_location(data_dir), data_dir)?)
}

/// The copy `init --store-ca` keeps of the database's CA certificate.
pub const STORE_CA_FILE: &str = "store-ca.pem";

/// Makes the store of a new data directory: copies the database's CA certificate in (so the
/// service user can read it and backups hold it), and opens the store, which makes the
/// schema of a PostgreSQL one; a database that cannot be reached fails `init` here.
fn prepare_store(data_dir: &Path, config: &mut CollectorConfig) -> Result<(), CollectorError> {
    if let Some(settings) = &mut config.store {
        if let Some(ca) = settings.ca_file.take() {
            std::fs::copy(&ca, data_dir.join(STORE_CA_FILE)).map_err(|source| {
                CollectorError::Io {
                    what: format!("copying the database's CA certificate {}", ca.display()),
                    source,
                }
            })?;
            settings.ca_file = Some(PathBuf::from(STORE_CA_FILE));
        }
    }
    Store::open_at(&config.store_location(data_dir), data_dir)?;
    Ok(())
}

/// An opened collector data directory.
pub struct Collector {
    data_dir: PathBuf,
    config: CollectorConfig,
    store: Arc<Store>,
    authority: Arc<Authority>,
}

/// How to bind.
#[derive(Clone, Debug)]
pub struct BindOptions {
    /// Listen here instead of the configured address (tests use `127.0.0.1:0`).
    pub quic_listen: Option<SocketAddr>,
    /// Serve the control socket in the data directory.
    pub control_socket: bool,
    /// Write the bound address into new enrollment tokens instead of the configured public
    /// address (for loopback demos and tests on port 0).
    pub advertise_bound_addr: bool,
    /// Serve the dashboard and API.
    pub dashboard: bool,
    /// Serve it here instead of the configured `http_listen` (tests use `127.0.0.1:0`).
    pub http_listen: Option<SocketAddr>,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            quic_listen: None,
            control_socket: true,
            advertise_bound_addr: false,
            dashboard: true,
            http_listen: None,
        }
    }
}

impl Collector {
    /// Opens the configuration, certificates and store of `data_dir`; fails at once if another
    /// process holds the store.
    pub fn open(data_dir: &Path) -> Result<Collector, CollectorError> {
        Self::open_with(data_dir, Store::open_at)
    }

    /// Like [`Collector::open`], but waits up to thirty seconds while a CLI command holds the
    /// store briefly: an admin's `site list` racing the daemon's start must not kill the daemon.
    pub fn open_for_daemon(data_dir: &Path) -> Result<Collector, CollectorError> {
        if pasopati_common::control::daemon_answers(data_dir) {
            return Err(CollectorError::AlreadyRunning(
                data_dir.display().to_string(),
            ));
        }
        Self::open_with(data_dir, open_store_waiting)
    }

    fn open_with(
        data_dir: &Path,
        open_store: fn(&StoreLocation, &Path) -> Result<Store, StoreError>,
    ) -> Result<Collector, CollectorError> {
        let config = CollectorConfig::load(data_dir)?;
        let authority = Arc::new(Authority::load(data_dir)?);
        let store = Arc::new(open_store(&config.store_location(data_dir), data_dir)?);
        if let Err(e) = pasopati_common::storage::make_private(data_dir) {
            tracing::warn!(dir = %data_dir.display(), "cannot make the data directory private (mode 0700, files 0600): {e}");
        }
        Ok(Collector {
            data_dir: data_dir.to_owned(),
            config,
            store,
            authority,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CollectorConfig {
        &self.config
    }

    /// The store, for in-process callers.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Registers a site and returns its enrollment token (in-process form of `site add`).
    pub fn site_add(&self, args: admin::SiteAdd) -> Result<String, CollectorError> {
        admin::site_add(
            &self.store,
            &self.authority,
            &self.config,
            args,
            &admin::local_actor(None),
        )
        .map_err(|e| CollectorError::Admin(e.to_string()))
    }

    /// Opens the QUIC listener (and control socket). Nothing is accepted until [`Server::run`].
    pub fn bind(self, options: BindOptions) -> Result<Server, CollectorError> {
        let mut config = self.config.clone();
        if let Some(addr) = options.quic_listen {
            config.quic_listen = addr;
        }
        let server_config = self.authority.server_config()?;
        let listen_err = |source: std::io::Error| CollectorError::Listen {
            addr: config.quic_listen.to_string(),
            setting: "quic_listen",
            source,
        };
        let socket = quic_socket(config.quic_listen).map_err(listen_err)?;
        let endpoint = quinn::Endpoint::new(
            endpoint_config(&self.data_dir)?,
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(listen_err)?;
        if options.advertise_bound_addr {
            let bound = endpoint.local_addr().map_err(|source| CollectorError::Io {
                what: "reading the bound address".into(),
                source,
            })?;
            config.public_addr = bound.to_string();
        }
        let control = if options.control_socket {
            Some(pasopati_common::control::bind(&self.data_dir)?)
        } else {
            None
        };
        let http = if options.dashboard {
            let addr = options.http_listen.unwrap_or(config.http_listen);
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|_| l))
                .map_err(|source| CollectorError::Listen {
                    addr: addr.to_string(),
                    setting: "http_listen",
                    source,
                })?;
            Some(listener)
        } else {
            None
        };
        let (events, _) = broadcast::channel(4096);
        let index = report_index::ReportIndex::open(&self.data_dir)
            .map_err(|e| CollectorError::Admin(e.to_string()))?;
        let state = Arc::new(ServerState::new(
            self.store.clone(),
            self.authority.clone(),
            config,
            events,
            Arc::new(index),
        )?);
        Ok(Server {
            endpoint,
            state,
            control,
            http,
            data_dir: self.data_dir,
        })
    }
}

/// Opens the store for the daemon, waiting up to thirty seconds while another process holds it.
/// A damaged store is moved aside (never deleted) and the daemon stops with instructions, so it
/// neither crash-loops on the file nor silently starts empty.
fn open_store_waiting(location: &StoreLocation, data_dir: &Path) -> Result<Store, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut said = false;
    loop {
        match Store::open_at(location, data_dir) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                if !said {
                    said = true;
                    tracing::warn!(dir = %data_dir.display(),
                        "the store is held by another process (a CLI command, or a collector starting or stopping); waiting up to 30 s for it");
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(StoreError::Damaged { path, reason }) => {
                let moved = pasopati_common::storage::move_damaged_aside(&path, &reason)
                    .map_err(|message| StoreError::Open { path, message })?;
                return Err(StoreError::MovedAside {
                    moved: moved.display().to_string(),
                    reason,
                });
            }
            other => return other,
        }
    }
}

/// The file holding the key of the collector's QUIC stateless resets.
pub const RESET_KEY_FILE: &str = "reset.key";

/// How much the QUIC socket asks the kernel to buffer each way. Hundreds of sites sending at
/// once overflow Linux's default (about 200 KiB): a datagram dropped there costs its sender a
/// retransmission timeout, and a dropped handshake or first batch seconds of backoff.
const QUIC_SOCKET_BUFFER: usize = 8 << 20;

/// The collector's UDP socket, bound to `addr`, with the buffers of [`QUIC_SOCKET_BUFFER`]
/// where the kernel allows them (`net.core.rmem_max` and `wmem_max` cap what it grants).
fn quic_socket(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Larger buffers are a help, not a requirement: a refusal leaves the kernel's default.
    let _ = socket.set_recv_buffer_size(QUIC_SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(QUIC_SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    let reported = socket.recv_buffer_size().unwrap_or(0);
    // Linux reports twice what it grants, for its bookkeeping.
    let granted = if cfg!(target_os = "linux") {
        reported / 2
    } else {
        reported
    };
    if granted < QUIC_SOCKET_BUFFER {
        tracing::info!(
            granted_bytes = granted,
            wanted_bytes = QUIC_SOCKET_BUFFER,
            "the QUIC socket's receive buffer is smaller than wanted; raise net.core.rmem_max \
             (see packaging/INSTALL.md) if many sites sync at once"
        );
    }
    Ok(socket.into())
}

/// The endpoint configuration with a stateless-reset key kept in the data directory. A collector
/// restarted after a crash then answers its predecessor's connections with valid stateless
/// resets, so agents notice at once instead of after the idle timeout.
fn endpoint_config(data_dir: &Path) -> Result<quinn::EndpointConfig, CollectorError> {
    let path = data_dir.join(RESET_KEY_FILE);
    let key = match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => bytes,
        Ok(_) | Err(_) => {
            let bytes = pasopati_common::random_bytes::<32>().to_vec();
            pasopati_common::pki::write_private_file(&path, &bytes)?;
            bytes
        }
    };
    // Connection ids carry a hash keyed by the same secret, so the restarted collector also
    // recognises its predecessor's ids as its own and answers them with the reset.
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&pasopati_common::sha256(&key)[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut config = quinn::EndpointConfig::new(Arc::new(hmac));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    Ok(config)
}

/// A bound collector, ready to run.
pub struct Server {
    endpoint: quinn::Endpoint,
    state: Arc<ServerState>,
    control: Option<tokio::net::UnixListener>,
    http: Option<std::net::TcpListener>,
    data_dir: PathBuf,
}

impl Server {
    /// The UDP address actually bound (useful with port 0).
    /// The media desk.
    pub fn newsroom(&self) -> &Arc<newsroom::Newsroom> {
        &self.state.newsroom
    }

    /// The index of the dashboard's report lists.
    pub fn report_index(&self) -> &Arc<report_index::ReportIndex> {
        &self.state.report_index
    }

    /// The dashboard's bound TCP address, if it serves one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> Result<SocketAddr, CollectorError> {
        self.endpoint
            .local_addr()
            .map_err(|source| CollectorError::Io {
                what: "reading the bound address".into(),
                source,
            })
    }

    /// A live feed of what happens (reports stored, sites connecting, refusals).
    pub fn events(&self) -> broadcast::Receiver<CollectorEvent> {
        self.state.events.subscribe()
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.state.store
    }

    /// Registers a site and returns its enrollment token.
    pub fn site_add(&self, args: admin::SiteAdd) -> Result<String, CollectorError> {
        admin::site_add(
            &self.state.store,
            &self.state.authority,
            &self.state.config,
            args,
            &admin::local_actor(None),
        )
        .map_err(|e| CollectorError::Admin(e.to_string()))
    }

    /// Sites with a live session now.
    pub fn connected_sites(&self) -> Vec<pasopati_common::SiteId> {
        self.state.connected_sites()
    }

    /// Serves agents and the control socket until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), CollectorError> {
        let addr = self.local_addr()?;
        tracing::info!(quic = %addr, public = %self.state.config.public_addr, "collector running");
        // Stop on the caller's signal, or by itself when the store cannot go on.
        let stop = shutdown.child_token();
        let fatal = self.state.fatal.clone();
        let stopper = stop.clone();
        tokio::spawn(async move {
            fatal.cancelled().await;
            stopper.cancel();
        });
        let control = self.control.map(|listener| {
            tokio::spawn(control::serve(listener, self.state.clone(), stop.clone()))
        });
        let lead = tokio::spawn(cluster::lead_media_desk(self.state.clone(), stop.clone()));
        let sources = sources::configured(&self.state.config.feeds, &self.state.config.social);
        let feeds = (!sources.is_empty()).then(|| {
            tokio::spawn(sources::poll(
                sources,
                self.state.newsroom.clone(),
                self.state.store.clone(),
                self.state.config.polling.clone(),
                stop.clone(),
            ))
        });
        let snapshots = tokio::spawn(newsroom::keep_snapshots(
            self.state.newsroom.clone(),
            stop.clone(),
        ));
        let placer = newsroom::placer::spawn(self.state.newsroom.clone(), stop.clone()).map_err(
            |source| CollectorError::Io {
                what: "starting the analysis of stored reports".into(),
                source,
            },
        )?;
        let indexer = report_index::spawn_feeder(
            self.state.report_index.clone(),
            self.state.store.clone(),
            stop.clone(),
        )
        .map_err(|source| CollectorError::Io {
            what: "starting the report index".into(),
            source,
        })?;
        let revocations =
            self.state.store.is_postgres().then(|| {
                tokio::spawn(cluster::cut_revoked_sites(self.state.clone(), stop.clone()))
            });
        let live_sites = self
            .state
            .store
            .is_postgres()
            .then(|| tokio::spawn(cluster::share_live_sites(self.state.clone(), stop.clone())));
        let relay = self.state.store.is_postgres().then(|| {
            tokio::spawn(cluster::relay_stored_reports(
                self.state.clone(),
                stop.clone(),
            ))
        });
        let alerts = tokio::spawn(newsroom::keep_alerts(
            self.state.newsroom.clone(),
            stop.clone(),
        ));
        let risk = tokio::spawn(risk::keep(
            self.state.store.clone(),
            self.state.newsroom.clone(),
            self.state.config.clone(),
            stop.clone(),
        ));
        // Notifications, when collector.toml has rules. On a shared PostgreSQL store only the
        // collector leading the media desk gathers and sends.
        let notifications = if self.state.config.notify.is_empty() {
            None
        } else {
            let notifier = notify::Notifier::new(&self.state.config.notify, &self.data_dir)?;
            let store = self.state.store.clone();
            pasopati_common::task::run_blocking("starting the notifications", move || {
                notify::begin(&store)
            })
            .await
            .map_err(|e| CollectorError::Admin(e.to_string()))??;
            Some(tokio::spawn(notify::run(
                Arc::new(notifier),
                self.state.clone(),
                stop.clone(),
            )))
        };
        let dashboard = match self.http {
            Some(listener) => {
                let listener = tokio::net::TcpListener::from_std(listener).map_err(|source| {
                    CollectorError::Io {
                        what: "starting the dashboard".into(),
                        source,
                    }
                })?;
                tracing::info!(http = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "dashboard listening");
                tokio::spawn(web::watch(self.state.clone(), stop.clone()));
                Some(tokio::spawn(web::serve(
                    listener,
                    self.state.clone(),
                    stop.clone(),
                )))
            }
            None => None,
        };
        server::serve(self.endpoint, self.state.clone(), stop).await;
        if let Some(dashboard) = dashboard {
            let _ = dashboard.await;
        }
        if let Some(feeds) = feeds {
            let _ = feeds.await;
        }
        let _ = risk.await;
        let _ = alerts.await;
        if let Some(notifications) = notifications {
            let _ = notifications.await;
        }
        if let Some(revocations) = revocations {
            let _ = revocations.await;
        }
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        if let Some(live_sites) = live_sites {
            let _ = live_sites.await;
        }
        let _ = lead.await;
        let _ = snapshots.await;
        newsroom::placer::wake(&self.state.newsroom);
        let _ = tokio::task::spawn_blocking(move || placer.join()).await;
        report_index::wake(&self.state.report_index);
        let _ = tokio::task::spawn_blocking(move || indexer.join()).await;
        if let Some(control) = control {
            let _ = control.await;
            let _ = std::fs::remove_file(pasopati_common::control::socket_path(&self.data_dir));
        }
        if self.state.fatal.is_cancelled() {
            return Err(CollectorError::Store(StoreError::NeedsReopen));
        }
        tracing::info!("collector stopped");
        Ok(())
    }
}

/// Runs an admin request: through the running daemon if there is one, else directly on the
/// store of `data_dir`. Lists come back in several responses of the same kind.
pub async fn call(
    data_dir: &Path,
    request: CollectorRequest,
) -> Result<Vec<CollectorResponse>, CollectorError> {
    CollectorConfig::load(data_dir)?;
    for attempt in 0..20 {
        if let Some(response) = pasopati_common::control::call(
            data_dir,
            pasopati_common::control::Channel::Collector,
            &request,
        )
        .await?
        {
            return Ok(response);
        }
        let dir = data_dir.to_owned();
        let req = request.clone();
        let direct = pasopati_common::task::run_blocking("admin task", move || {
            let collector = Collector::open(&dir)?;
            let (events, _) = broadcast::channel(1);
            // Nothing lists reports through the index here; the daemon keeps the real one.
            let index = report_index::ReportIndex::in_memory()
                .map_err(|e| CollectorError::Admin(e.to_string()))?;
            let state = ServerState::new(
                collector.store.clone(),
                collector.authority.clone(),
                collector.config.clone(),
                events,
                Arc::new(index),
            )?;
            Ok::<_, CollectorError>(control::answer(&state, req, &admin::local_actor(None)))
        })
        .await?;
        match direct {
            Err(CollectorError::Store(StoreError::Locked { .. })) if attempt < 19 => {
                // A daemon is starting or stopping; its socket will answer shortly.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
    Err(CollectorError::Admin(
        "the store is held by a process that does not answer on control.sock".into(),
    ))
}
