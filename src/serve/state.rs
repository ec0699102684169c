//! What every handler shares: settings, the database, the image store, the
//! engine for follow-ups, the feedback producer, rate limits and metrics.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rdkafka::producer::FutureProducer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::metrics::ServeMetrics;
use crate::domain::prompts::Prompts;
use crate::engine::{AdapterSpec, Engine};
use crate::faces::{FaceError, FaceStage};
use crate::images::ImageStore;
use crate::intake::Intake;
use crate::settings::{ServeSettings, Settings};
use crate::store::Store;

pub struct App {
    pub settings: Settings,
    pub prompts: Prompts,
    pub store: Store,
    pub images: ImageStore,
    /// Decodes stored images for follow-ups, within `image.decode_budget_bytes`.
    pub intake: Intake,
    /// Crops a verdict's faces for follow-ups about them.
    pub faces: FaceStage,
    pub engine: Arc<Engine>,
    /// The adapter the engine started with: served while the registry has none.
    pub initial_adapter: Option<AdapterSpec>,
    pub producer: FutureProducer,
    /// Follow-up questions per token id.
    pub question_limit: DefaultKeyedRateLimiter<i64>,
    pub metrics: ServeMetrics,
}

impl App {
    pub fn new(
        settings: Settings,
        prompts: Prompts,
        store: Store,
        engine: Engine,
        initial_adapter: Option<AdapterSpec>,
        producer: FutureProducer,
    ) -> Result<App, FaceError> {
        let images = ImageStore::new(PathBuf::from(&settings.image_store.dir));
        let question_limit = RateLimiter::keyed(question_quota(&settings.serve));
        Ok(App {
            intake: Intake::new(&settings.image),
            faces: FaceStage::new(&settings.faces)?,
            images,
            engine: Arc::new(engine),
            initial_adapter,
            producer,
            question_limit,
            metrics: ServeMetrics::new(),
            settings,
            prompts,
            store,
        })
    }

    /// Hot swap as in the workers: the engine serves the registry's active
    /// adapter, checked within `adapters.poll_interval`.
    pub fn follow_registry(&self, stop: CancellationToken) -> Option<JoinHandle<()>> {
        self.settings.adapters.follow_registry.then(|| {
            let metrics = self.metrics.clone();
            tokio::spawn(crate::registry::follow_registry(
                self.store.clone(),
                self.engine.clone(),
                self.settings.clone(),
                self.initial_adapter.clone(),
                move |id: &str| metrics.set_serving_adapter(id),
                stop,
            ))
        })
    }
}

fn question_quota(s: &ServeSettings) -> Quota {
    // Validation keeps both at least 1.
    let per_minute = NonZeroU32::new(s.questions_per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(s.questions_burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}
