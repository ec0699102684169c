//! Which items a retraining run learns from and is judged on: new
//! corrections, a replay sample of earlier ones, dataset items, and the
//! held-out split.

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{ImageBuffer, Rgb};

use super::dataset::{parse_dataset, LineError};
use super::items::{correction_item, is_held_out, rephrased, with_replay, ImageRef, Item, Origin};
use super::record::{watermark, DatasetRecord, TrainingData};
use super::RetrainOptions;
use crate::domain::adapter::AdapterRecord;
use crate::domain::prompts::Prompts;
use crate::domain::{sha256_hex, CropSquare};
use crate::faces::crop_to;
use crate::images::ImageStore;
use crate::intake::{decode_image, DecodedImage};
use crate::settings::Settings;
use crate::store::Store;

pub(super) struct Plan {
    pub active: Option<AdapterRecord>,
    pub watermark: i64,
    pub max_revision: i64,
    pub train: Vec<Item>,
    pub heldout: Vec<Item>,
    pub new_corrections: Vec<Item>,
    pub replayed: usize,
    pub dataset_items: usize,
    pub dataset: Option<(PathBuf, String)>,
    pub skipped: Vec<String>,
}

impl Plan {
    /// Whether the training set holds anything not learned before (replayed
    /// corrections alone would only repeat the active adapter).
    pub fn learnable(&self) -> bool {
        self.train
            .iter()
            .any(|i| i.is_new_correction() || i.is_dataset())
    }

    pub fn new_in_training(&self) -> usize {
        self.train.iter().filter(|i| i.is_new_correction()).count()
    }

    pub fn dataset_in_training(&self) -> usize {
        self.train.iter().filter(|i| i.is_dataset()).count()
    }

    /// What the registry records about this run's data; `skipped` counts the
    /// items left out before training.
    pub fn training_data(&self, skipped: usize) -> TrainingData {
        TrainingData {
            max_revision: self.max_revision,
            since_revision: self.watermark,
            new_corrections: self
                .new_corrections
                .iter()
                .filter_map(|i| match i.origin {
                    Origin::Correction { request_id, .. } => Some(request_id.to_string()),
                    Origin::Dataset { .. } => None,
                })
                .collect(),
            replayed_corrections: self.replayed,
            dataset: self.dataset.as_ref().map(|(path, sha256)| DatasetRecord {
                path: path.clone(),
                sha256: sha256.clone(),
                items: self.dataset_items,
            }),
            training_items: self.train.len(),
            heldout_items: self.heldout.len(),
            skipped,
        }
    }
}

pub(super) async fn plan(
    settings: &Settings,
    store: &Store,
    prompts: &Prompts,
    opts: &RetrainOptions,
) -> anyhow::Result<Plan> {
    let r = &settings.retrain;
    let active = store
        .active_adapter()
        .await
        .context("reading the adapter registry")?;
    let watermark = watermark(active.as_ref());
    let rows = store
        .standing_corrections()
        .await
        .context("reading corrections")?;
    let max_revision = rows
        .iter()
        .map(|c| c.revision)
        .max()
        .unwrap_or(0)
        .max(watermark);
    let mut skipped = Vec::new();
    let (mut new, mut old, mut heldout) = (Vec::new(), Vec::new(), Vec::new());
    let mut new_corrections = Vec::new();
    for row in &rows {
        let Some(mut item) = correction_item(row, prompts, watermark) else {
            skipped.push(format!("correction {}: unreadable label", row.request_id));
            continue;
        };
        item.turns = rephrased(&item.turns, prompts, r.train.seed, &item.key);
        if item.is_new_correction() {
            new_corrections.push(item.clone());
        }
        if is_held_out(&item.key, r.eval_fraction) {
            heldout.push(item);
        } else if item.is_new_correction() {
            new.push(item);
        } else {
            old.push(item);
        }
    }
    let (mut train, replayed) = with_replay(new, old, r.replay_ratio, r.train.seed);

    let mut dataset = None;
    let mut dataset_items = 0;
    if let Some(path) = &opts.dataset {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the dataset {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let (items, errors) = parse_dataset(&text, base, prompts);
        report_bad_lines(path, &errors, opts.strict)?;
        skipped.extend(
            errors
                .iter()
                .map(|e| format!("dataset {}: {e}", path.display())),
        );
        dataset_items = items.len();
        for item in items {
            if is_held_out(&item.key, r.eval_fraction) {
                heldout.push(item);
            } else {
                train.push(item);
            }
        }
        // The digest of the very bytes that were parsed.
        dataset = Some((path.clone(), sha256_hex(text.as_bytes())));
    }
    Ok(Plan {
        active,
        watermark,
        max_revision,
        train,
        heldout,
        new_corrections,
        replayed,
        dataset_items,
        dataset,
        skipped,
    })
}

fn report_bad_lines(path: &Path, errors: &[LineError], strict: bool) -> anyhow::Result<()> {
    for e in errors {
        eprintln!(
            "dfa retrain: dataset {}: {e}{}",
            path.display(),
            if strict { "" } else { " (skipped)" }
        );
    }
    if strict && !errors.is_empty() {
        anyhow::bail!(
            "{} bad line(s) in {} and --strict is set (first: {})",
            errors.len(),
            path.display(),
            errors[0]
        );
    }
    Ok(())
}

/// The item's image as the model is to see it: decoded, and cut to the
/// item's crop (resized to `faces.crop_px`, as the face stage does).
pub(super) fn load_image(
    item: &Item,
    images: &ImageStore,
    settings: &Settings,
) -> Result<DecodedImage, String> {
    let bytes = match &item.image {
        ImageRef::Stored(sha) => images.get(sha).map_err(|e| e.to_string())?,
        ImageRef::File(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
    };
    let image = decode_image(&bytes, &settings.image).map_err(|e| format!("image: {e}"))?;
    match item.crop {
        Some(square) => crop(image, square, settings.faces.crop_px),
        None => Ok(image),
    }
}

/// `square` of `image`, resized to `size`×`size`.
fn crop(image: DecodedImage, square: CropSquare, size: u32) -> Result<DecodedImage, String> {
    let mut parts = image.split_into(|w, h, rgb| {
        ImageBuffer::<Rgb<u8>, &[u8]>::from_raw(w, h, rgb)
            .map(|view| vec![(size, size, crop_to(&view, square, size).into_raw())])
            .unwrap_or_default()
    });
    parts
        .pop()
        .ok_or_else(|| "image: the face's crop could not be cut".to_string())
}

pub(super) fn describe(item: &Item) -> String {
    match &item.origin {
        Origin::Correction { request_id, .. } => format!("correction {request_id}"),
        Origin::Dataset { line } => format!("dataset line {line}"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A 40×20 PNG: red on the left half, blue on the right.
    fn halves() -> Vec<u8> {
        let img = image::RgbImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn an_item_with_a_crop_is_learned_from_that_square_only() {
        let settings = Settings::embedded().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("halves.png");
        std::fs::write(&path, halves()).unwrap();
        let images = ImageStore::new(dir.path());
        let mut item = Item {
            key: "k".into(),
            origin: Origin::Dataset { line: 1 },
            image: ImageRef::File(path),
            crop: None,
            turns: vec![],
            history_per_turn: false,
            label: None,
            forgery_type: None,
        };
        let whole = load_image(&item, &images, &settings).unwrap();
        assert_eq!((whole.width(), whole.height()), (40, 20));
        item.crop = Some(CropSquare {
            x: 22,
            y: 2,
            side: 16,
        });
        let face = load_image(&item, &images, &settings).unwrap();
        let size = settings.faces.crop_px;
        assert_eq!((face.width(), face.height()), (size, size));
        assert!(
            face.rgb().chunks(3).all(|p| p == [0, 0, 255]),
            "only the right (blue) half's square"
        );
    }
}
