//! Where the benchmarks' figures go besides stdout: each benchmark owns one
//! section of docs/BENCHMARKS.md, between its markers, so a run of one
//! leaves the others' figures alone. Also the process-memory readings the
//! reports quote.

use std::path::Path;

use anyhow::Context;

/// One benchmark's section of the report.
pub(super) struct Section {
    /// Names the markers.
    pub key: &'static str,
    pub title: &'static str,
    /// The script that reproduces the figures.
    pub command: &'static str,
}

/// Replaces `section` of the report at `path` (between its markers), or
/// appends it when the markers are missing.
pub(super) fn update(path: &Path, section: &Section, body: &str) -> anyhow::Result<()> {
    let Section {
        key,
        title,
        command,
    } = section;
    let start = format!("<!-- dfa bench: {key} (start) -->");
    let end = format!("<!-- dfa bench: {key} (end) -->");
    let section = format!(
        "{start}\n## {title}\n\nCommand: `{command}` (`cargo run --locked -- bench`; dependencies are built at opt-level 3). Measured {}.\n\n{body}{end}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\n".into());
    let new = match (old.find(&start), old.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{section}{}", &old[..a], &old[b + end.len()..]),
        _ => format!("{}\n{section}\n", old.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

/// Peak resident set size (VmHWM) of this process.
pub(super) fn peak_rss_mib() -> f64 {
    proc_status_mib("VmHWM:")
}

/// Current resident set size (VmRSS) of this process.
pub(super) fn current_rss_mib() -> f64 {
    proc_status_mib("VmRSS:")
}

/// A memory line of /proc/self/status (in kB there), in MiB.
fn proc_status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::{update, Section};

    const A: Section = Section {
        key: "a",
        title: "A",
        command: "scripts/a",
    };
    const B: Section = Section {
        key: "b",
        title: "B",
        command: "scripts/b",
    };

    #[test]
    fn a_section_is_appended_once_then_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("BENCHMARKS.md");
        update(&path, &A, "first a\n").unwrap();
        update(&path, &B, "only b\n").unwrap();
        update(&path, &A, "second a\n").unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Benchmarks\n"), "{text}");
        assert!(!text.contains("first a"), "{text}");
        assert_eq!(text.matches("<!-- dfa bench: a (start) -->").count(), 1);
        let a = text.find("second a").expect("a's new body");
        let b = text.find("only b").expect("b's body kept");
        assert!(a < b, "a stays where it was, before b: {text}");
        assert!(text.contains("## A\n\nCommand: `scripts/a`"), "{text}");
    }
}
