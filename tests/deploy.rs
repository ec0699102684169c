//! The deployment files (deploy/): both kustomizations render and pass
//! kubernetes-validate for a current Kubernetes, and what they promise holds
//! (grace above the drain time, probes on the metrics port, secrets only by
//! reference, one GPU per pod in the gpu overlay, KEDA on the configured
//! group and topic); compose.yaml passes `docker-compose config` and wires
//! migrate before the worker; the dashboard queries the worker's metrics.
//! deploy/check.py does the checking; scripts/ensure-deps --deploy installs
//! its tools, and a missing tool fails this test.

use std::process::Command;

#[test]
fn deploy_manifests_render_validate_and_keep_their_promises() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(format!("{root}/deploy/check.py"))
        .args(["--root", root])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "deploy/check.py failed:\n{stdout}\n{stderr}"
    );
    // Every group of checks reported, for both renders.
    for line in [
        "base: kubernetes-validate",
        "overlays/gpu: kubernetes-validate",
        "overlays/gpu: worker/serve/retrain get one GPU",
        "compose: services, migrate ordering",
        "grafana: dfa.json parses",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
}
