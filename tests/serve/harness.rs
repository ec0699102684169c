//! One test's `dfa serve`: a fresh database and topics (`Env`), the tiny
//! model's engine, the API on a free loopback port, tokens of every role,
//! and rows seeded straight into Postgres.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dfa::domain::access::{NewToken, Role};
use dfa::domain::prompts::Prompts;
use dfa::domain::{
    Artifact, BBox, CropSquare, FaceMode, FaceVerdict, FacesSkipped, ForgeryType, Label,
    ModelIdentity, TypeScores, Verdict,
};
use dfa::engine::analyze::image_verdict;
use dfa::images::ImageStore;
use dfa::serve::App;
use dfa::settings::Settings;
use dfa::store::{NewVerdict, Source, Store, Written};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common;
use common::services::Env;

pub struct Harness {
    pub env: Env,
    pub app: Arc<App>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub http: reqwest::Client,
    pub stop: CancellationToken,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// The embedded settings pointed at `env`'s broker, topics, database and
/// stores, with small generation limits so the tiny model answers fast.
pub fn settings(env: &Env) -> Settings {
    let mut s = common::settings();
    s.kafka.brokers = common::services::brokers();
    s.kafka.requests_topic = env.requests.clone();
    s.kafka.results_topic = env.results.clone();
    s.kafka.dlq_topic = env.dlq.clone();
    s.kafka.feedback_topic = env.feedback.clone();
    s.kafka.group_id = env.group.clone();
    s.database.url = env.db_url.clone().into();
    s.image_store.dir = env.dir.join("images").to_string_lossy().into_owned();
    s.adapters.dir = env.dir.join("adapters").to_string_lossy().into_owned();
    s.adapters.poll_interval = std::time::Duration::from_millis(300);
    s.serve.addr = "127.0.0.1:0".into();
    s
}

impl Harness {
    pub async fn start(test: &str) -> Harness {
        Self::start_with(test, |_| {}).await
    }

    /// Starts with settings changed by `tweak` (rate limits, signing key...).
    pub async fn start_with(test: &str, tweak: impl FnOnce(&mut Settings)) -> Harness {
        Self::start_on(test, tweak, common::engine_config(None)).await
    }

    /// A new token's secret.
    pub async fn token(&self, role: Role, name: &str, tenant: Option<&str>) -> String {
        let t = NewToken::generate();
        self.app
            .store
            .create_token(name, role, tenant, &t.sha256)
            .await
            .expect("create token");
        t.secret
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with a bearer token (`None`: no Authorization header).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        json_response(req.send().await.expect("request")).await
    }

    /// GET a text body (CSV, JSON lines) with a bearer token.
    #[allow(dead_code)]
    pub async fn get_text(&self, path: &str, token: &str) -> String {
        let r = self.http.get(self.url(path)).bearer_auth(token).send();
        r.await.expect("request").text().await.expect("body")
    }

    /// POST a JSON body with a bearer token.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        json_response(req.send().await.expect("request")).await
    }

    pub fn images(&self) -> ImageStore {
        self.app.images.clone()
    }

    /// Stores `bytes` in the image store and the `images` table; returns the sha256.
    pub async fn put_image(&self, bytes: &[u8]) -> String {
        let sha = dfa::domain::sha256_hex(bytes);
        self.app
            .images
            .put(&sha, std::sync::Arc::new(bytes.to_vec()))
            .await
            .expect("store image");
        sqlx::query(
            "INSERT INTO images (sha256, byte_size, first_source) VALUES ($1, $2, 'test') ON CONFLICT DO NOTHING",
        )
        .bind(&sha)
        .bind(bytes.len() as i64)
        .execute(&self.env.pool)
        .await
        .expect("images row");
        sha
    }

    /// Inserts a verdict row as a worker would have stored it.
    pub async fn seed(&self, v: &Seed) {
        seed_verdict(&self.env.pool, v).await
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }
}

pub async fn json_response(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let bytes = r.bytes().await.expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

/// A stored verdict's fields that tests vary.
#[derive(Debug, Clone)]
pub struct Seed {
    pub request_id: Uuid,
    pub tenant: Option<String>,
    pub label: &'static str,
    pub p_fake: f32,
    pub forgery_type: Option<&'static str>,
    pub explanation: Option<String>,
    pub adapter_id: Option<String>,
    pub image_sha256: String,
    pub created_at: DateTime<Utc>,
}

impl Seed {
    /// A real-looking fake verdict of `image_sha256` made at `created_at`.
    pub fn new(image_sha256: &str, created_at: DateTime<Utc>) -> Seed {
        Seed {
            request_id: Uuid::new_v4(),
            tenant: None,
            label: "fake",
            p_fake: 0.9,
            forgery_type: Some("face_swap"),
            explanation: Some("1. Eyes: the reflections differ.".into()),
            adapter_id: None,
            image_sha256: image_sha256.to_string(),
            created_at,
        }
    }
}

/// Inserts one verdict row (and its image row when missing).
pub async fn seed_verdict(pool: &sqlx::PgPool, v: &Seed) {
    sqlx::query(
        "INSERT INTO images (sha256, byte_size, first_source) VALUES ($1, 0, 'seed') ON CONFLICT DO NOTHING",
    )
    .bind(&v.image_sha256)
    .execute(pool)
    .await
    .expect("images row");
    let artifacts = if v.explanation.is_some() {
        serde_json::json!([{"region": "Eyes", "text": "the reflections differ."}])
    } else {
        serde_json::json!([])
    };
    sqlx::query(
        "INSERT INTO verdicts (request_id, tenant, label, p_fake, forgery_type, type_scores, artifacts, \
            explanation, answers, image_sha256, image_source, base_model_sha256, mmproj_sha256, adapter_id, \
            adapter_sha256, processing_ms, timings_ms, metadata, source_topic, source_partition, source_offset, \
            result, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '[]'::jsonb, $9, $10, 'b', 'm', $11, NULL, 12.5, '{}'::jsonb, \
            '{}'::jsonb, 'seed', 0, 0, '{}'::json, $12)",
    )
    .bind(v.request_id)
    .bind(&v.tenant)
    .bind(v.label)
    .bind(v.p_fake)
    .bind(v.forgery_type)
    .bind(serde_json::json!({"face_swap": 0.7, "face_reenactment": 0.1, "face_editing": 0.1, "entire_face_synthesis": 0.1}))
    .bind(artifacts)
    .bind(&v.explanation)
    .bind(&v.image_sha256)
    .bind(format!("sha256:{}", v.image_sha256))
    .bind(&v.adapter_id)
    .bind(v.created_at)
    .execute(pool)
    .await
    .expect("verdict row");
}

/// A PNG of the tiny model's input size, different per seed.
pub fn png(seed: u32) -> Vec<u8> {
    common::encode(&common::picture(seed, 64, 64), image::ImageFormat::Png)
}

impl Harness {
    /// Stores `verdict` as the worker does (`Store::insert_verdicts`: the
    /// verdict row, its faces rows, its image row), made from the stored
    /// image `image_sha256` of `image_bytes` bytes.
    pub async fn store_verdict(&self, verdict: Verdict, image_sha256: &str, image_bytes: usize) {
        let result = serde_json::to_string(&verdict).expect("result message");
        let new = NewVerdict {
            verdict,
            tenant: None,
            metadata: serde_json::json!({}),
            image_sha256: image_sha256.to_string(),
            image_bytes: image_bytes as i64,
            image_source: format!("sha256:{image_sha256}"),
            request_sha256: dfa::domain::sha256_hex(result.as_bytes()),
            source: Source {
                topic: "seed".into(),
                partition: 0,
                offset: 0,
            },
            result,
        };
        let written = self
            .app
            .store
            .insert_verdicts(&[new])
            .await
            .expect("stored");
        assert_eq!(written, [Written::Inserted]);
    }
}

/// The model every face verdict here comes from.
pub fn model() -> ModelIdentity {
    ModelIdentity {
        base_sha256: "b".into(),
        mmproj_sha256: "m".into(),
        adapter: None,
    }
}

/// Face `index` of `common::two_faces()`, where it was pasted
/// (`common::TWO_FACES_AT`), screened with `p_fake` (threshold 0.5), with
/// an artifact description when fake.
pub fn pasted_face(index: u32, p_fake: f32) -> FaceVerdict {
    let (x, y, w, h) = common::TWO_FACES_AT[index as usize];
    let label = Label::from_score(p_fake, 0.5);
    let fake = label == Label::Fake;
    FaceVerdict {
        index,
        bbox: BBox { x, y, w, h },
        detector_score: 18.5,
        crop: CropSquare {
            x: x.saturating_sub(w * 15 / 100),
            y: y.saturating_sub(h * 15 / 100),
            side: w * 13 / 10,
        },
        label,
        p_fake,
        forgery_type: fake.then_some(ForgeryType::FaceSwap),
        type_scores: TypeScores::from_array([0.7, 0.1, 0.1, 0.1]),
        artifacts: if fake {
            vec![Artifact {
                region: "Jaw".into(),
                text: format!("face {index}: the blending edge shows."),
            }]
        } else {
            vec![]
        },
        explanation: fake.then(|| format!("1. Jaw: face {index}: the blending edge shows.")),
    }
}

/// The verdict the worker makes of `common::two_faces()` with
/// `faces.mode = "detect"`: face 0 real (0.2), face 1 fake (0.9), so the
/// image's verdict is face 1's; one more face was too small.
pub fn two_faces_verdict() -> Verdict {
    image_verdict(
        Uuid::new_v4(),
        vec![pasted_face(0, 0.2), pasted_face(1, 0.9)],
        FacesSkipped {
            too_small: 1,
            over_cap: 0,
        },
        FaceMode::Detect,
        model(),
        &[],
    )
}

/// The verdict the worker makes of an image without a face.
pub fn no_face_verdict() -> Verdict {
    dfa::engine::analyze::no_face_verdict(Uuid::new_v4(), FacesSkipped::default(), model())
}

impl Harness {
    /// As `start_with`, on an engine of its own configuration (an adapter,
    /// longer answers...): `common::engine_config(..)` changed as needed.
    pub async fn start_on(
        test: &str,
        tweak: impl FnOnce(&mut Settings),
        engine: dfa::engine::EngineConfig,
    ) -> Harness {
        let env = Env::new(test).await;
        let mut s = settings(&env);
        tweak(&mut s);
        std::fs::create_dir_all(&s.image_store.dir).expect("image store dir");
        let store = Store::connect(&env.db_url, 4).await.expect("connect");
        let initial = engine.adapter.clone();
        let engine = dfa::engine::Engine::start(engine)
            .await
            .expect("engine starts");
        let producer = dfa::worker::kafka::producer(&s.kafka).expect("producer");
        let app = Arc::new(
            App::new(s, Prompts::embedded(), store, engine, initial, producer).expect("app"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let server = tokio::spawn(dfa::serve::serve_on(listener, app.clone(), stop.clone()));
        Harness {
            env,
            app,
            base,
            http: reqwest::Client::new(),
            stop,
            server: Some(server),
        }
    }
}
