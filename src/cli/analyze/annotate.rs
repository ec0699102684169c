//! `dfa analyze --annotate OUT_DIR`: each image written again as a PNG
//! with its faces drawn on it (`draw`), `OUT_DIR/<stem>.faces.png`.
//!
//! The image is decoded again through the command's intake rather than kept
//! from the analysis: the same oriented pixels the boxes were found in, and
//! its memory inside the same decode budget (a copy kept while the faces
//! wait in the engine's queue would sit outside it).

use std::collections::HashMap;
use std::io::BufWriter;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{ImageEncoder, RgbImage};

use super::draw::annotate;
use crate::domain::Verdict;
use crate::intake::{ImageError, Intake};

#[derive(Debug, thiserror::Error)]
pub enum AnnotateError {
    #[error("--annotate: cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--annotate: cannot write into {}: {source}", path.display())]
    Unwritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("decoding the image again to draw on it: {0}")]
    Image(#[from] ImageError),
    #[error("encoding the annotated PNG: {0}")]
    Encode(#[from] image::ImageError),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("drawing failed: {0}")]
    Draw(String),
}

/// Where each input's annotated copy goes, decided once for all inputs so
/// that two inputs with the same stem do not overwrite each other.
pub struct Annotator {
    outputs: Vec<PathBuf>,
}

impl Annotator {
    /// Creates `dir` if missing and checks that files can be made in it, so
    /// that a wrong path fails before the model loads, not after each image.
    pub fn prepare(dir: &Path, inputs: &[PathBuf]) -> Result<Annotator, AnnotateError> {
        std::fs::create_dir_all(dir).map_err(|source| AnnotateError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        tempfile::NamedTempFile::new_in(dir).map_err(|source| AnnotateError::Unwritable {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Annotator {
            outputs: output_names(inputs)
                .into_iter()
                .map(|name| dir.join(name))
                .collect(),
        })
    }

    /// Draws `verdict` on the image in `bytes` (input number `index`) and
    /// writes it; returns the file written. Decoding, drawing and encoding
    /// run on a blocking thread.
    pub async fn write(
        &self,
        index: usize,
        intake: &Intake,
        bytes: Arc<Vec<u8>>,
        verdict: &Verdict,
    ) -> Result<PathBuf, AnnotateError> {
        let path = self.outputs[index].clone();
        let (image, _) = intake.decode(bytes).await;
        let image = image?;
        let verdict = verdict.clone();
        let target = path.clone();
        tokio::task::spawn_blocking(move || {
            // The drawn copy takes the decoded image's place in the budget.
            let drawn = image
                .split_into(|w, h, rgb| {
                    RgbImage::from_raw(w, h, rgb.to_vec())
                        .map(|img| {
                            let out = annotate(img, &verdict);
                            vec![(out.width(), out.height(), out.into_raw())]
                        })
                        .unwrap_or_default()
                })
                .pop()
                .ok_or_else(|| AnnotateError::Draw("the decoded pixels do not fit".into()))?;
            write_png(&target, drawn.width(), drawn.height(), drawn.rgb())
        })
        .await
        .map_err(|e| AnnotateError::Draw(format!("the drawing thread panicked: {e}")))??;
        Ok(path)
    }
}

/// PNG written beside its final name and renamed over it, so an
/// interrupted run never leaves a truncated file under that name.
fn write_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<(), AnnotateError> {
    let io = |source| AnnotateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    // Made as any new file is (0666 less the umask), not private as a
    // temporary file is by default: it is the command's output.
    let mut file = tempfile::Builder::new()
        .prefix(".dfa-annotate-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(io)?;
    image::codecs::png::PngEncoder::new(BufWriter::new(file.as_file_mut())).write_image(
        rgb,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )?;
    file.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// `<stem>.faces.png` per input; a stem shared by several inputs gets each
/// one's input position (`<stem>-<i>.faces.png`), and a name still taken
/// (an input literally called `a-1.png`) gets more suffixes until free.
pub fn output_names(inputs: &[PathBuf]) -> Vec<String> {
    let stems: Vec<String> = inputs
        .iter()
        .map(|p| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "image".into())
        })
        .collect();
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for s in &stems {
        *uses.entry(s.as_str()).or_default() += 1;
    }
    let mut taken = std::collections::HashSet::new();
    stems
        .iter()
        .enumerate()
        .map(|(i, stem)| {
            let mut name = if uses[stem.as_str()] > 1 {
                format!("{stem}-{i}")
            } else {
                stem.clone()
            };
            while !taken.insert(name.clone()) {
                name = format!("{name}-{i}");
            }
            format!("{name}.faces.png")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{output_names, Annotator};
    use std::path::PathBuf;

    fn names(inputs: &[&str]) -> Vec<String> {
        output_names(&inputs.iter().map(PathBuf::from).collect::<Vec<_>>())
    }

    #[test]
    fn one_file_per_input_named_by_its_stem() {
        assert_eq!(
            names(&["a/group.jpg", "b/selfie.png", "page"]),
            ["group.faces.png", "selfie.faces.png", "page.faces.png"]
        );
    }

    #[test]
    fn a_shared_stem_gets_each_inputs_position() {
        assert_eq!(
            names(&["a/x.jpg", "y.png", "b/x.png", "x.webp"]),
            [
                "x-0.faces.png",
                "y.faces.png",
                "x-2.faces.png",
                "x-3.faces.png"
            ]
        );
    }

    #[test]
    fn a_name_that_is_still_taken_gets_another_suffix() {
        let out = names(&["x-1.png", "x.png", "b/x.png", ".."]);
        assert_eq!(
            out,
            [
                "x-1.faces.png",
                "x-1-1.faces.png",
                "x-2.faces.png",
                "image.faces.png"
            ]
        );
    }

    #[test]
    fn a_missing_dir_is_created_and_a_file_in_its_place_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new/deeper");
        Annotator::prepare(&dir, &[]).expect("created");
        assert!(dir.is_dir());
        let file = tmp.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = Annotator::prepare(&file.join("sub"), &[])
            .err()
            .expect("cannot create a dir under a file")
            .to_string();
        assert!(err.starts_with("--annotate: cannot create"), "{err}");
        assert!(err.contains("a-file/sub"), "{err}");
    }
}
