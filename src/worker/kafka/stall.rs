//! `/healthz` for producing: a send that keeps failing holds its message,
//! and with it every later offset of its partition, so the broker check
//! fails (naming the topic and the error) while any send has been retried
//! more than a few times, and passes again once those sends end. A fatal
//! producer error fails it for good: the producer is unusable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::worker::health::{Check, Health};

/// Retries of one send after which its message counts as held still.
pub const STALL_AFTER_RETRIES: u32 = 2;

#[derive(Clone)]
pub struct SendHealth {
    health: Health,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Per topic: sends held now, and the latest error.
    stalled: BTreeMap<String, (usize, String)>,
    fatal: Option<String>,
}

impl State {
    fn reason(&self) -> Option<String> {
        if let Some(fatal) = &self.fatal {
            return Some(format!("producer failed fatally: {fatal}"));
        }
        if self.stalled.is_empty() {
            return None;
        }
        let each = self.stalled.iter().map(|(topic, (held, error))| {
            format!("{topic}: {error} ({held} message(s) held, retrying)")
        });
        Some(each.collect::<Vec<_>>().join("; "))
    }
}

impl SendHealth {
    pub fn new(health: Health) -> SendHealth {
        SendHealth {
            health,
            state: Arc::default(),
        }
    }

    /// Watches one send to `topic`; dropping the watch ends it.
    pub fn watch(&self, topic: &str) -> SendWatch<'_> {
        SendWatch {
            owner: self,
            topic: topic.to_string(),
            retries: 0,
            stalled: false,
        }
    }

    /// The producer is unusable: every send from now on fails.
    pub fn fatal(&self, reason: &str) {
        self.update(|s| {
            s.fatal.get_or_insert_with(|| reason.to_string());
        });
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        change(&mut state);
        // Reported under the lock, so concurrent sends report in order.
        match state.reason() {
            Some(reason) => self.health.fail(Check::Broker, reason),
            None => self.health.pass(Check::Broker),
        }
    }
}

/// One send in progress.
pub struct SendWatch<'a> {
    owner: &'a SendHealth,
    topic: String,
    retries: u32,
    stalled: bool,
}

impl SendWatch<'_> {
    /// The send failed transiently and will be retried.
    pub fn retrying(&mut self, error: &str) {
        self.retries += 1;
        if self.retries < STALL_AFTER_RETRIES {
            return;
        }
        let newly = !self.stalled;
        self.stalled = true;
        self.owner.update(|s| {
            let entry = s
                .stalled
                .entry(self.topic.clone())
                .or_insert((0, String::new()));
            entry.0 += usize::from(newly);
            entry.1 = error.to_string();
        });
    }
}

impl Drop for SendWatch<'_> {
    fn drop(&mut self) {
        if !self.stalled {
            return;
        }
        self.owner.update(|s| {
            if let Some(entry) = s.stalled.get_mut(&self.topic) {
                entry.0 = entry.0.saturating_sub(1);
                if entry.0 == 0 {
                    s.stalled.remove(&self.topic);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(h: &Health) -> Option<String> {
        h.failing(Check::Broker)
    }

    #[test]
    fn a_send_retried_past_the_bound_fails_the_check_until_it_ends() {
        let health = Health::new();
        let sends = SendHealth::new(health.clone());
        let mut watch = sends.watch("dfa.results");
        watch.retrying("Local: Unknown topic");
        assert_eq!(broker(&health), None, "one retry is not a stall");
        watch.retrying("Local: Unknown topic");
        let reason = broker(&health).unwrap_or_default();
        assert!(
            reason.starts_with("dfa.results: Local: Unknown topic"),
            "{reason}"
        );
        watch.retrying("Local: Message timed out");
        assert!(broker(&health).unwrap_or_default().contains("timed out"));
        drop(watch);
        assert_eq!(broker(&health), None, "passes once the send ends");
    }

    #[test]
    fn the_check_passes_only_when_every_held_send_has_ended() {
        let health = Health::new();
        let sends = SendHealth::new(health.clone());
        let mut a = sends.watch("results");
        let mut b = sends.watch("results");
        let mut c = sends.watch("dlq");
        for w in [&mut a, &mut b, &mut c] {
            w.retrying("down");
            w.retrying("down");
        }
        let reason = broker(&health).unwrap_or_default();
        assert!(reason.contains("results: down (2 message(s)"), "{reason}");
        assert!(reason.contains("dlq: down (1 message(s)"), "{reason}");
        drop(a);
        drop(c);
        assert!(broker(&health).is_some(), "b still holds its partition");
        drop(b);
        assert_eq!(broker(&health), None);
        // A send that never stalled changes nothing.
        let mut quick = sends.watch("results");
        quick.retrying("blip");
        drop(quick);
        assert!(health.is_healthy());
    }

    #[test]
    fn a_fatal_producer_fails_the_check_for_good() {
        let health = Health::new();
        let sends = SendHealth::new(health.clone());
        sends.fatal("OutOfOrderSequenceNumber");
        let mut w = sends.watch("results");
        w.retrying("x");
        w.retrying("x");
        drop(w);
        let reason = broker(&health).unwrap_or_default();
        assert!(reason.contains("OutOfOrderSequenceNumber"), "{reason}");
    }
}
