//! A stage the worker cannot run without (the engine thread, the batched
//! writer) has ended. The worker must not linger as a zombie that keeps its
//! partitions and answers nothing: it stops consuming, leaves the group and
//! exits non-zero, so the orchestrator restarts it.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Fatal {
    raised: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Fatal {
    pub fn new() -> Fatal {
        Fatal::default()
    }

    /// Records the first reason and wakes whoever waits in `raised`.
    pub fn raise(&self, reason: impl Into<String>) {
        if let Ok(mut r) = self.reason.lock() {
            if r.is_none() {
                let reason = reason.into();
                tracing::error!(%reason, "fatal: the worker cannot go on");
                *r = Some(reason);
            }
        }
        self.raised.cancel();
    }

    pub async fn raised(&self) {
        self.raised.cancelled().await
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok()?.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_is_kept_and_waiters_wake() {
        let f = Fatal::new();
        assert_eq!(f.reason(), None);
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.raised().await }
        });
        f.raise("engine thread ended");
        f.raise("writer ended");
        assert!(waiter.await.is_ok());
        assert_eq!(f.reason().as_deref(), Some("engine thread ended"));
    }
}
