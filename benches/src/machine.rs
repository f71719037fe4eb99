//! What the table says about the machine it ran on.

use std::path::Path;

/// The first three fields of `/proc/loadavg`: other work on the machine
/// skews every figure, so the table says how busy it was.
pub fn load_average() -> String {
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(text) => text
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        Err(e) => format!("unknown ({e})"),
    }
}

/// The type of the file system that holds `path`, from `/proc/mounts`.
pub fn file_system(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "file system unknown".to_owned();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_device, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount)
                .then_some((mount.len(), kind.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "file system unknown".to_owned(), |(_, kind)| kind)
}

/// The CPU's model name from `/proc/cpuinfo`, or why it is unknown.
pub fn cpu_model() -> String {
    match std::fs::read_to_string("/proc/cpuinfo") {
        Ok(info) => info
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "CPU model not in /proc/cpuinfo".to_owned()),
        Err(e) => format!("CPU model unknown (/proc/cpuinfo: {e})"),
    }
}
