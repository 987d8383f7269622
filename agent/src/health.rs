//! The agent's health as the heartbeat reports it: CPU, memory, free disk on the outbox's
//! volume, uptime (sysinfo), and the outbox's backlog.

use crate::outbox::OutboxStats;
use pasopati_common::frame::Heartbeat;
use pasopati_common::Timestamp;
use std::path::{Path, PathBuf};

/// Samples the machine. Keeps one `System` so CPU usage is measured between two samples.
pub(crate) struct HealthProbe {
    system: Option<sysinfo::System>,
    data_dir: PathBuf,
}

impl HealthProbe {
    pub(crate) fn new(data_dir: &Path) -> HealthProbe {
        let system = sysinfo::System::new().ok();
        HealthProbe {
            system,
            data_dir: data_dir.to_owned(),
        }
    }

    /// A heartbeat for the outbox counters `stats`.
    pub(crate) fn heartbeat(&mut self, stats: &OutboxStats) -> Heartbeat {
        let (cpu_percent, mem_used_bytes) = match self.system.as_mut() {
            Some(system) => {
                system.refresh_cpu_usage();
                system.refresh_memory();
                (system.global_cpu_usage(), system.used_memory())
            }
            None => (0.0, 0),
        };
        Heartbeat {
            agent_time: Timestamp::now(),
            agent_version: pasopati_common::version().to_owned(),
            backlog: stats.backlog,
            oldest_unsent_at: stats.oldest_unsent_at,
            last_sync_at: stats.last_sync_at,
            cpu_percent,
            mem_used_bytes,
            disk_free_bytes: disk_free(&self.data_dir),
            uptime_secs: sysinfo::System::uptime().unwrap_or(0),
            quota_full: stats.quota_full,
        }
        .bounded()
    }
}

/// Free bytes on the volume whose mount point is the longest prefix of `dir`.
fn disk_free(dir: &Path) -> u64 {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let Ok(disks) = sysinfo::Disks::new_with_refreshed_list() else {
        return 0;
    };
    disks
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| d.available_space())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_reports_the_machine_and_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let mut probe = HealthProbe::new(dir.path());
        let stats = OutboxStats {
            epoch: pasopati_common::Epoch(1),
            backlog: 3,
            queued_urgent: 0,
            oldest_unsent_at: Some(Timestamp(5)),
            acked_seq: 0,
            next_seq: 1,
            last_sync_at: None,
            unsent_bytes: 10,
            max_bytes: 100,
            quota_full: false,
            attachments_pending: 0,
        };
        let hb = probe.heartbeat(&stats);
        assert_eq!(hb.backlog, 3);
        assert!(hb.mem_used_bytes > 0, "memory not read");
        assert!(hb.disk_free_bytes > 0, "free disk not read");
        assert!(hb.cpu_percent >= 0.0);
    }
}
