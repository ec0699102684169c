//! A `dfa worker` child process: signals (TERM, KILL, STOP/CONT), its log,
//! and its /metrics and /healthz endpoints.
#![allow(dead_code)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Worker {
    child: Option<Child>,
    pub log: std::path::PathBuf,
}

impl Worker {
    pub fn new(child: Child, log: std::path::PathBuf) -> Worker {
        Worker {
            child: Some(child),
            log,
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address of /healthz and /metrics, as the worker logged it at
    /// start (waiting for that line, with a bound).
    fn metrics_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let log = self.stderr();
            let addr = log
                .split("bound=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next());
            if let Some(addr) = addr {
                return addr.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the worker never logged its metrics address: {log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The worker's Prometheus text.
    pub async fn metrics(&self) -> String {
        let addr = self.metrics_addr();
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// Freezes the process (SIGSTOP): nothing it does changes until `resume`.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// The value of one series (`name` or `name{labels}`) in the worker's
    /// /metrics, summed over the series it prefixes; 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_sum(&self.metrics().await, series)
    }

    /// Waits until `series` reaches `at_least`; returns its last value.
    pub async fn wait_metric(&self, series: &str, at_least: f64, timeout: Duration) -> f64 {
        let every = Duration::from_millis(100);
        super::poll_until(timeout, every, || self.metric(series), |v| *v >= at_least).await
    }

    /// The HTTP status of the worker's /healthz.
    pub async fn healthz(&self) -> u16 {
        reqwest::get(format!("http://{}/healthz", self.metrics_addr()))
            .await
            .expect("GET /healthz")
            .status()
            .as_u16()
    }

    /// The status and body of the worker's /healthz.
    pub async fn healthz_body(&self) -> (u16, String) {
        let r = reqwest::get(format!("http://{}/healthz", self.metrics_addr()))
            .await
            .expect("GET /healthz");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// Waits until the worker exits; its exit code, or None after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let c = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits until /healthz answers `status`; returns the last status seen.
    pub async fn wait_healthz(&self, status: u16, timeout: Duration) -> u16 {
        let every = Duration::from_millis(100);
        super::poll_until(timeout, every, || self.healthz(), |s| *s == status).await
    }

    /// The first line of the worker's log containing `needle`.
    pub fn log_line(&self, needle: &str) -> Option<String> {
        self.stderr()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
    }

    pub fn kill(&mut self) {
        self.signal("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit; returns (success, stderr).
    pub fn terminate(&mut self, timeout: Duration) -> (bool, String) {
        self.signal("-TERM");
        let Some(mut c) = self.child.take() else {
            return (false, String::new());
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return (status.success(), self.stderr());
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return (false, "did not exit in time".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sums the samples of every series `series` prefixes in Prometheus text
/// (`name{label="x"}` picks one series, `name` the whole family).
pub fn metric_sum(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(name, _)| {
            name.strip_prefix(series)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

/// The value of `key=` in a log line (tracing's `key=value` fields).
pub fn log_field(line: &str, key: &str) -> Option<i64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

impl Worker {
    /// The worker's peak resident set so far, in bytes: VmHWM from
    /// /proc/<pid>/status (the kernel's high-water mark, no sampling gaps).
    /// None once the process has been reaped.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kib * 1024)
    }
}
