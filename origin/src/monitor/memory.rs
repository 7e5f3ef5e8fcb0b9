//! Resident memory of this process, as the operating system reports it.

/// Reads the resident set size in bytes from the `VmRSS` line of
/// `/proc/self/status`. Returns `None` where that file does not exist (any OS
/// but Linux) or has no such line.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// Finds `VmRSS:   23456 kB` and returns it in bytes. The kernel always reports it in kB (KiB).
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let kibibytes: u64 = fields.next()?.parse().ok()?;
    if fields.next() != Some("kB") {
        return None;
    }
    kibibytes.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_line_is_parsed() {
        let status = "Name:\tvelro-origin\nVmPeak:\t  90000 kB\nVmRSS:\t   23456 kB\nThreads:\t8\n";
        assert_eq!(parse_vm_rss(status), Some(23456 * 1024));
    }

    #[test]
    fn missing_or_odd_vm_rss_is_none() {
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tmany kB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_rss_is_read_on_linux() {
        assert!(resident_bytes().is_some_and(|bytes| bytes > 0));
    }
}
