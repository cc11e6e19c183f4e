//! The Go etcd tools' output helpers that etcdctl and etcdutl share:
//! etcdctl's table layout ([`table`]) and go-humanize's byte sizes.

pub mod table;

/// Bytes in SI units as go-humanize prints them (`20 kB`, `1.2 MB`).
pub fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 10.0 {
        return format!("{} B", n as u64);
    }
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = (n.ln() / 1000f64.ln()).floor();
    let val = (n / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let unit = UNITS[e as usize];
    if val < 10.0 {
        format!("{val:.1} {unit}")
    } else {
        format!("{val:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_go_humanize_prints_them() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
        assert_eq!(human_bytes(25_000_000), "25 MB");
    }
}
