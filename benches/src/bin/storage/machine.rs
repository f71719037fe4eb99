//! What the table says about the machine and the S3 server it ran on.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The machine's memory from `/proc/meminfo`, in GiB.
pub fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB RAM", kib / (1 << 20) as f64))
        })
        .unwrap_or_else(|| "RAM unknown".to_owned())
}

/// What this process has used so far, on all its threads (those that have
/// ended included), from `/proc/self/stat`.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User and system CPU time, in clock ticks of 10 ms.
    pub cpu: Duration,
    /// Minor page faults: pages the kernel had to map (and zero) for it.
    pub minor_faults: u64,
}

impl Usage {
    /// The usage now, or `None` off Linux.
    pub fn now() -> Option<Self> {
        /// Linux reports these times in USER_HZ, 100 per second.
        const TICKS_PER_SECOND: u64 = 100;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name, in parentheses, may hold spaces: count the
        // fields after it. minflt, utime and stime are fields 10, 14 and 15
        // of the whole line.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        Some(Self {
            cpu: Duration::from_millis((field(14)? + field(15)?) * 1000 / TICKS_PER_SECOND),
            minor_faults: field(10)?,
        })
    }

    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
        }
    }
}

/// The version that the s3s-fs binary reports, found where
/// `scripts/s3-server.sh` finds the one it starts: on `PATH`, else in
/// cargo's `bin` directory.
pub fn s3s_fs_version() -> String {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin").join("s3s-fs"));
    let candidates = std::iter::once(PathBuf::from("s3s-fs")).chain(cargo_bin);
    for binary in candidates {
        if let Ok(output) = Command::new(&binary).arg("--version").output()
            && output.status.success()
        {
            let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if !version.is_empty() {
                return version;
            }
        }
    }
    "s3s-fs (version unknown: no s3s-fs binary on PATH or in ~/.cargo/bin)".to_owned()
}
