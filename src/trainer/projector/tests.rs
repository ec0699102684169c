use candle_core::{Device, Tensor};

use super::*;
use crate::model::tiny::{generate, ModelShape};

fn tiny_mmproj(dir: &Path) -> std::path::PathBuf {
    generate(dir, &ModelShape::tiny(), &["Has this face been forged?"], 5)
        .expect("generate the tiny model")
        .mmproj
}

/// Byte ranges of every mm.* tensor's data in an mmproj.
fn mm_ranges(path: &Path) -> Vec<std::ops::Range<u64>> {
    let (content, _) = mmproj::open(path).unwrap();
    PROJECTOR_TENSORS
        .iter()
        .map(|name| {
            let info = &content.tensor_infos[*name];
            let d = info.ggml_dtype;
            let len = info.shape.elem_count() / d.block_size() * d.type_size();
            let at = content.tensor_data_offset + info.offset;
            at..at + len as u64
        })
        .collect()
}

#[test]
fn written_mmproj_differs_from_the_original_only_in_the_projector_data() {
    let dir = tempfile::tempdir().unwrap();
    let original = tiny_mmproj(dir.path());
    let p = ProjectorSet::from_mmproj(&original, &Device::Cpu).unwrap();
    for v in p.vars() {
        v.set(&(v.as_tensor() + 0.25).unwrap()).unwrap();
    }
    let out = dir.path().join("trained-mmproj.gguf");
    let sha = p.write_mmproj(&original, &out).unwrap();

    assert_eq!(sha, mmproj::sha256(&out).unwrap());
    assert_ne!(sha, mmproj::sha256(&original).unwrap());
    let (a, b) = (
        std::fs::read(&original).unwrap(),
        std::fs::read(&out).unwrap(),
    );
    assert_eq!(a.len(), b.len(), "same layout, same length");
    let ranges = mm_ranges(&original);
    let mut changed = 0;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x != y {
            changed += 1;
            assert!(
                ranges.iter().any(|r| r.contains(&(i as u64))),
                "byte {i} outside the projector's tensors changed"
            );
        }
    }
    assert!(changed > 0, "the projector's bytes changed");

    // Same metadata and tensor table, and the new weights read back.
    let (ca, _) = mmproj::open(&original).unwrap();
    let (cb, _) = mmproj::open(&out).unwrap();
    assert_eq!(format!("{:?}", sorted(&ca)), format!("{:?}", sorted(&cb)));
    let back = ProjectorSet::from_mmproj(&out, &Device::Cpu).unwrap();
    for ((name, want), (_, got)) in p
        .named_tensors()
        .unwrap()
        .iter()
        .zip(back.named_tensors().unwrap())
    {
        let d = max_abs(&(want - &got).unwrap());
        assert_eq!(d, 0.0, "{name} (F32 in the tiny mmproj) reads back exactly");
    }
}

fn sorted(c: &candle_core::quantized::gguf_file::Content) -> Vec<String> {
    let mut v: Vec<String> = c
        .metadata
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .chain(
            c.tensor_infos
                .iter()
                .map(|(k, i)| format!("{k}:{:?}:{:?}:{}", i.ggml_dtype, i.shape, i.offset)),
        )
        .collect();
    v.sort();
    v
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn a_replacement_of_another_shape_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let original = tiny_mmproj(dir.path());
    let out = dir.path().join("bad.gguf");
    let wrong = Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap();
    let err = mmproj::write_replacing(&original, &out, &[("mm.0.weight".into(), wrong)])
        .expect_err("shape mismatch");
    assert!(err.to_string().contains("mm.0.weight"), "{err}");
    assert!(!out.exists());
}

#[test]
fn forward_is_mm0_gelu_mm2_and_refuses_features_of_another_width() {
    let dir = tempfile::tempdir().unwrap();
    let p = ProjectorSet::from_mmproj(&tiny_mmproj(dir.path()), &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (5, p.in_dim()), &Device::Cpu).unwrap();
    let t = p.named_tensors().unwrap();
    let lin = |x: &Tensor, w: &Tensor, b: &Tensor| {
        x.matmul(&w.t().unwrap()).unwrap().broadcast_add(b).unwrap()
    };
    let h = lin(&x, &t[0].1, &t[1].1);
    let want = lin(&ggml_gelu(&h).unwrap(), &t[2].1, &t[3].1);
    let got = p.forward(&x).unwrap();
    assert_eq!(got.dims(), [5, p.out_dim()]);
    assert!(max_abs(&(got - want).unwrap()) < 1e-5);
    let narrow = Tensor::zeros((5, p.in_dim() - 1), DType::F32, &Device::Cpu).unwrap();
    assert!(p.forward(&narrow).is_err());
}
