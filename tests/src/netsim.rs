//! A userspace UDP proxy that sits between agents and the collector and misbehaves on purpose:
//! loss, delay and jitter, reordering, duplication, a bandwidth limit, and partitions (total or
//! one way). It needs no privileges, so every CI run uses it.
//!
//! The decisions come from [`LinkModel`], a pure function of a seed and the datagrams seen, so
//! a failing run's seed reproduces the same fault pattern; the proxy only carries datagrams and
//! sleeps.

use pasopati_common::fixtures::SimRng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

/// How one direction of the link behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkConfig {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra delay, uniform in `[0, jitter]`; independent per datagram, so it reorders too.
    pub jitter: Duration,
    /// Probability that a datagram is held back an extra `3 * (delay + jitter)` (reordering).
    pub reorder: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Bytes per second, or unlimited.
    pub bandwidth: Option<u64>,
}

/// A small, fast, seeded generator: the protocol simulation's SplitMix64, drawn from here as
/// fractions and inclusive ranges.
#[derive(Clone, Debug)]
pub struct Rng(SimRng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SimRng::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, max]`.
    pub fn below(&mut self, max: u64) -> u64 {
        if max == 0 {
            0
        } else {
            self.next_u64() % (max + 1)
        }
    }
}

/// The fault decisions of one direction: for each datagram, when (after now) each copy is
/// delivered; none means dropped.
#[derive(Clone, Debug)]
pub struct LinkModel {
    config: LinkConfig,
    rng: Rng,
    /// When the bandwidth-limited link is next free, as an offset from the proxy's start.
    busy_until: Duration,
}

impl LinkModel {
    pub fn new(config: LinkConfig, seed: u64) -> LinkModel {
        LinkModel {
            config,
            rng: Rng::new(seed),
            busy_until: Duration::ZERO,
        }
    }

    /// Decides the fate of a datagram of `len` bytes arriving at `now` (since the start).
    pub fn decide(&mut self, now: Duration, len: usize) -> Vec<Duration> {
        let c = self.config;
        if self.rng.unit() < c.loss {
            return Vec::new();
        }
        let mut base = c.delay;
        if let Some(bps) = c.bandwidth {
            let start = self.busy_until.max(now);
            let transmit = Duration::from_secs_f64(len as f64 / bps.max(1) as f64);
            self.busy_until = start + transmit;
            base += self.busy_until - now;
        }
        let copies = if self.rng.unit() < c.duplicate { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                let mut d =
                    base + Duration::from_micros(self.rng.below(c.jitter.as_micros() as u64));
                if self.rng.unit() < c.reorder {
                    d += 3 * (c.delay + c.jitter).max(Duration::from_millis(1));
                }
                d
            })
            .collect()
    }
}

/// A partition state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    None = 0,
    /// Nothing passes.
    Total = 1,
    /// Agent → collector is cut; collector → agent passes.
    Up = 2,
    /// Collector → agent is cut; agent → collector passes.
    Down = 3,
}

/// What the proxy does.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub seed: u64,
    /// Agent → collector.
    pub up: LinkConfig,
    /// Collector → agent.
    pub down: LinkConfig,
}

struct Shared {
    partition: AtomicU8,
    up: Mutex<LinkModel>,
    down: Mutex<LinkModel>,
    start: tokio::time::Instant,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    /// Bytes of datagrams forwarded agent → collector.
    bytes_up: AtomicU64,
}

impl Shared {
    fn blocked(&self, up: bool) -> bool {
        match self.partition.load(Ordering::Relaxed) {
            1 => true,
            2 => up,
            3 => !up,
            _ => false,
        }
    }

    fn plan(&self, up: bool, len: usize) -> Vec<Duration> {
        if self.blocked(up) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        }
        let model = if up { &self.up } else { &self.down };
        let now = self.start.elapsed();
        let plan = match model.lock() {
            Ok(mut m) => m.decide(now, len),
            Err(_) => Vec::new(),
        };
        if plan.is_empty() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.forwarded.fetch_add(1, Ordering::Relaxed);
            if up {
                self.bytes_up
                    .fetch_add((len * plan.len()) as u64, Ordering::Relaxed);
            }
        }
        plan
    }
}

/// A running proxy. Dropping it stops it.
pub struct UdpProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpProxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, config: ProxyConfig) -> std::io::Result<UdpProxy> {
        let listener = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            partition: AtomicU8::new(Partition::None as u8),
            up: Mutex::new(LinkModel::new(config.up, config.seed)),
            down: Mutex::new(LinkModel::new(config.down, config.seed ^ 0x5eed_d0d0)),
            start: tokio::time::Instant::now(),
            forwarded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
        });
        let task = tokio::spawn(run(listener, upstream, shared.clone()));
        Ok(UdpProxy { addr, shared, task })
    }

    /// Sets the partition state.
    pub fn partition(&self, p: Partition) {
        self.shared.partition.store(p as u8, Ordering::Relaxed);
    }

    /// Bytes forwarded agent → collector so far.
    pub fn bytes_up(&self) -> u64 {
        self.shared.bytes_up.load(Ordering::Relaxed)
    }

    /// Datagrams forwarded and dropped so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.shared.forwarded.load(Ordering::Relaxed),
            self.shared.dropped.load(Ordering::Relaxed),
        )
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn deliver(socket: Arc<UdpSocket>, data: Vec<u8>, to: Option<SocketAddr>, delays: Vec<Duration>) {
    for delay in delays {
        let socket = socket.clone();
        let data = data.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let _ = match to {
                Some(addr) => socket.send_to(&data, addr).await,
                None => socket.send(&data).await,
            };
        });
    }
}

async fn run(listener: Arc<UdpSocket>, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut clients: HashMap<SocketAddr, (Arc<UdpSocket>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = listener.recv_from(&mut buf).await else {
            continue;
        };
        let up = match clients.get(&from) {
            Some((socket, _)) => socket.clone(),
            None => {
                // One upstream socket per agent, so the collector sees distinct addresses.
                let Ok(socket) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                if socket.connect(upstream).await.is_err() {
                    continue;
                }
                let socket = Arc::new(socket);
                let back = socket.clone();
                let listener = listener.clone();
                let shared = shared.clone();
                let task = tokio::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    loop {
                        let n = match back.recv(&mut buf).await {
                            Ok(n) => n,
                            // While the collector is down, the kernel reports the ICMP "port
                            // unreachable" on this connected socket; it comes back later.
                            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                            Err(_) => break,
                        };
                        let plan = shared.plan(false, n);
                        deliver(listener.clone(), buf[..n].to_vec(), Some(from), plan);
                    }
                });
                clients.insert(from, (socket.clone(), task));
                socket
            }
        };
        let plan = shared.plan(true, n);
        deliver(up, buf[..n].to_vec(), None, plan);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_reproducible_from_its_seed() {
        let config = LinkConfig {
            loss: 0.2,
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            reorder: 0.1,
            duplicate: 0.1,
            bandwidth: Some(100_000),
        };
        let run = |seed| {
            let mut m = LinkModel::new(config, seed);
            (0..1000)
                .map(|i| m.decide(Duration::from_millis(i), 1200))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let plans = run(7);
        let dropped = plans.iter().filter(|p| p.is_empty()).count();
        let doubled = plans.iter().filter(|p| p.len() == 2).count();
        assert!(
            (120..280).contains(&dropped),
            "{dropped} dropped of 1000 at 20 %"
        );
        assert!(
            (40..140).contains(&doubled),
            "{doubled} duplicated of 1000 at 10 %"
        );
    }

    #[test]
    fn bandwidth_spaces_datagrams_out() {
        let mut m = LinkModel::new(
            LinkConfig {
                bandwidth: Some(1000),
                ..LinkConfig::default()
            },
            1,
        );
        let a = m.decide(Duration::ZERO, 500);
        let b = m.decide(Duration::ZERO, 500);
        assert_eq!(a, vec![Duration::from_millis(500)]);
        assert_eq!(b, vec![Duration::from_millis(1000)]);
    }
}
