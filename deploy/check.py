#!/usr/bin/env python3
"""Validate the deployment files: both kustomize renders (schema + semantics),
the compose stack, Prometheus targets and the Grafana dashboard.

    python3 deploy/check.py [--root DIR]

Prints one "ok:" line per passed check; on a failure prints "FAIL:" lines and
exits 1. Expected values are read from the TOML files, not repeated here, so
a config change that the manifests do not follow is caught.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, tomllib
import yaml

GPU = "nvidia.com/gpu"
FAILED = []


class Fail(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Fail(msg)


def check(name, fn, *args):
    """Run one check; a failure is recorded and later checks still run."""
    try:
        fn(*args), print(f"ok: {name}")
    except Fail as e:
        FAILED.append(name)
        print(f"FAIL: {name}: {e}", file=sys.stderr)


def run(tool, *args, cwd=None):
    if shutil.which(tool) is None:
        raise Fail(f"missing {tool}: run scripts/ensure-deps --deploy")
    p = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True)
    need(p.returncode == 0, f"`{tool} {' '.join(args)}` exited {p.returncode}:\n{p.stderr}{p.stdout}")
    return p.stdout


def seconds(d):
    """The config's duration strings: "200ms", "30s", "5m", "1h"."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(d).strip())
    need(m, f"bad duration {d!r}")
    return float(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m[2]]


def host_port(addr, key):
    host, _, port = addr.rpartition(":")
    # 127.0.0.1 would be unreachable by the kubelet's probes and by Prometheus.
    need(host == "0.0.0.0", f"{key} = {addr!r}: host must be 0.0.0.0")
    return int(port)


def pod_spec(doc):
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def workloads(docs):
    return [d for d in docs if d["kind"] in ("Deployment", "Job", "CronJob")]


def by_command(docs, kind, sub):
    """The workload of `kind` running `dfa <sub>` (found by its args, not its name)."""
    found = [d for d in docs if d["kind"] == kind
             and any((c.get("args") or [""])[-1] == sub for c in pod_spec(d)["containers"])]
    need(found, f"no {kind} runs `{sub}`")
    return found[0]


# ---- kubernetes -----------------------------------------------------------

def validate_schemas(docs):
    others = [d for d in docs if d["kind"] != "ScaledObject"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(others, f), f.flush()
        out = run("kubernetes-validate", "--strict", "-k", "1.33.0", f.name)
    # A kind without a schema is only a WARN with exit 0: count the passes.
    passed = len(re.findall(r"passed for resource", out))
    need(passed == len(others), f"{passed}/{len(others)} documents passed:\n{out}")


def check_scaledobject(docs, cfg, prod):
    sos = [d for d in docs if d["kind"] == "ScaledObject"]
    need(len(sos) == 1, f"expected one ScaledObject, found {len(sos)}")
    spec = sos[0]["spec"]
    target = spec.get("scaleTargetRef", {}).get("name")
    worker = by_command(docs, "Deployment", "worker")
    need(target == worker["metadata"]["name"], f"scaleTargetRef.name {target!r} is not the worker Deployment")
    kafka = [t for t in spec.get("triggers", []) if t.get("type") == "kafka"]
    need(kafka, "no kafka trigger")
    meta = kafka[0].get("metadata", {})
    for k in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold"):
        need(meta.get(k), f"kafka trigger lacks {k}")
    need(str(meta["lagThreshold"]).isdigit(), "lagThreshold is not a number")
    want = {"consumerGroup": cfg["kafka"]["group_id"], "topic": cfg["kafka"]["requests_topic"],
            "bootstrapServers": prod["kafka"]["brokers"]}
    for k, v in want.items():
        need(meta[k] == v, f"trigger {k} = {meta[k]!r}, config says {v!r}")


def check_shutdown_and_probes(docs, prod):
    for sub, addr_key in (("worker", "metrics_addr"), ("serve", "addr")):
        dep = by_command(docs, "Deployment", sub)
        spec = pod_spec(dep)
        c = spec["containers"][0]
        sleep = (c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command") or [])
        pause = float(sleep[1]) if len(sleep) == 2 and sleep[0] == "sleep" else 0
        grace = seconds(prod[sub]["shutdown_grace"]) + pause
        tgps = spec.get("terminationGracePeriodSeconds", 30)
        need(tgps > grace, f"{sub}: terminationGracePeriodSeconds {tgps} <= {sub}.shutdown_grace + preStop = {grace:g}")
        port = host_port(prod[sub][addr_key], f"{sub}.{addr_key}")
        names = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe"):
            get = c.get(probe, {}).get("httpGet")
            need(get, f"{sub}: no {probe} httpGet")
            need(get.get("path") == "/healthz", f"{sub}: {probe} path {get.get('path')!r}")
            p = names.get(get["port"], get["port"])
            need(p == port, f"{sub}: {probe} port {get['port']!r} -> {p}, {sub}.{addr_key} listens on {port}")


def check_objects(docs, root):
    cron = by_command(docs, "CronJob", "retrain")
    need(cron["spec"].get("concurrencyPolicy") == "Forbid", "retrain CronJob concurrencyPolicy is not Forbid")
    by_command(docs, "Job", "migrate")
    labels = by_command(docs, "Deployment", "worker")["spec"]["template"]["metadata"]["labels"]
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"
            and d["spec"]["selector"].get("matchLabels", {}).items() <= labels.items()]
    need(pdbs, "no PodDisruptionBudget selects the worker pods")
    need(any(d["kind"] == "NetworkPolicy" for d in docs), "no NetworkPolicy")
    with open(os.path.join(root, "deploy/k8s/base/production.toml")) as f:
        text = f.read()
    cms = [d for d in docs if d["kind"] == "ConfigMap" and d.get("data", {}).get("production.toml") == text]
    need(cms, "no ConfigMap holds deploy/k8s/base/production.toml")


SECRET_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def check_env(docs):
    for w in workloads(docs):
        for c in pod_spec(w)["containers"]:
            where = f"{w['kind']}/{w['metadata']['name']} {c['name']}"
            env = {e["name"]: e for e in c.get("env", [])}
            for name, e in env.items():
                n, v = name.upper(), str(e.get("value", ""))
                secretish = (any(s in n for s in ("PASSWORD", "SECRET", "TOKEN"))
                             or ("DATABASE" in n and "URL" in n))
                if "value" in e and (secretish or "password" in v.lower() or SECRET_URL.search(v)):
                    raise Fail(f"{where}: env {name} has a literal secret-looking value; use secretKeyRef")
            db = env.get("DFA__DATABASE__URL", {})
            need(db.get("valueFrom", {}).get("secretKeyRef"), f"{where}: DFA__DATABASE__URL not from a secretKeyRef")


def check_nonroot(docs):
    for w in workloads(docs):
        spec = pod_spec(w)
        for c in spec["containers"]:
            sc = {**spec.get("securityContext", {}), **c.get("securityContext", {})}
            need(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001,
                 f"{w['kind']}/{w['metadata']['name']} {c['name']}: not runAsNonRoot/runAsUser 10001")


def check_gpu(docs, gpu):
    gpu_pods = [by_command(docs, k, s) for k, s in
                (("Deployment", "worker"), ("Deployment", "serve"), ("CronJob", "retrain"))]
    for w in (gpu_pods if gpu else workloads(docs)):
        spec, name = pod_spec(w), f"{w['kind']}/{w['metadata']['name']}"
        for c in spec["containers"]:
            limit = c.get("resources", {}).get("limits", {}).get(GPU)
            if not gpu:
                need(limit is None, f"{name}: base must not request a GPU")
                continue
            need(limit == 1, f"{name}: limits[{GPU}] = {limit!r}, want 1")
            need(c["image"].endswith("-cuda"), f"{name}: image {c['image']} is not a -cuda tag")
        need(not gpu or any(t.get("key") == GPU for t in spec.get("tolerations", [])),
             f"{name}: no toleration for {GPU}")


def check_kustomization(root, overlay, gpu, cfg, prod):
    docs = []

    def render():
        out = run("kubectl", "kustomize", os.path.join(root, "deploy/k8s", overlay))
        docs.extend(d for d in yaml.safe_load_all(out) if d)
    check(f"{overlay}: kubectl kustomize renders", render)
    if not docs:
        return
    check(f"{overlay}: kubernetes-validate --strict 1.33 (all but ScaledObject)", validate_schemas, docs)
    check(f"{overlay}: ScaledObject targets the worker with the config's kafka trigger", check_scaledobject, docs, cfg, prod)
    check(f"{overlay}: grace periods cover shutdown_grace + preStop; /healthz probes on the config ports",
          check_shutdown_and_probes, docs, prod)
    check(f"{overlay}: retrain Forbid, migrate Job, worker PDB, NetworkPolicy, production.toml ConfigMap",
          check_objects, docs, root)
    check(f"{overlay}: no literal secrets in env, database URL from a Secret", check_env, docs)
    check(f"{overlay}: every pod runs as non-root uid 10001", check_nonroot, docs)
    check(f"{overlay}: " + ("worker/serve/retrain get one GPU, toleration, -cuda image" if gpu
                            else "no GPU limits"), check_gpu, docs, gpu)


# ---- compose and observability -------------------------------------------

def check_compose(root):
    out = run("docker-compose", "-f", os.path.join(root, "deploy/compose.yaml"), "config", cwd=root)
    svcs = yaml.safe_load(out)["services"]
    want = "kafka postgres migrate worker serve otel-collector jaeger prometheus grafana".split()
    need(not set(want) - set(svcs), f"missing services: {sorted(set(want) - set(svcs))}")
    for s in ("worker", "serve"):
        cond = svcs[s].get("depends_on", {}).get("migrate", {}).get("condition")
        need(cond == "service_completed_successfully", f"{s} depends on migrate with {cond!r}")
    need(svcs["migrate"].get("command") == ["migrate"], f"migrate command {svcs['migrate'].get('command')!r}")
    for s in ("migrate", "worker", "serve"):
        env = svcs[s].get("environment", {})
        need(env.get("DFA_ENV") == "container", f"{s}: DFA_ENV is {env.get('DFA_ENV')!r}")
        need(env.get("DFA__DATABASE__URL"), f"{s}: no DFA__DATABASE__URL")


def check_prometheus(root):
    with open(os.path.join(root, "deploy/container.toml"), "rb") as f:
        ct = tomllib.load(f)
    with open(os.path.join(root, "deploy/observability/prometheus.yml")) as f:
        prom = yaml.safe_load(f)
    targets = {t for sc in prom.get("scrape_configs", []) for st in sc.get("static_configs", [])
               for t in st.get("targets", [])}
    for svc, key in (("worker", "metrics_addr"), ("serve", "addr")):
        port = host_port(ct[svc][key], f"container.toml {svc}.{key}")
        need(f"{svc}:{port}" in targets, f"no scrape target {svc}:{port} (have {sorted(targets)})")


def check_grafana(root):
    try:
        with open(os.path.join(root, "deploy/observability/grafana/dfa.json")) as f:
            dash = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise Fail(f"dfa.json: {e}")

    # Panels may nest (rows): walk the whole tree for "expr" strings.
    todo, exprs = [dash.get("panels", [])], []
    while todo:
        n = todo.pop()
        items = n.items() if isinstance(n, dict) else enumerate(n) if isinstance(n, list) else ()
        for k, v in items:
            (exprs.append(v) if k == "expr" and isinstance(v, str) else todo.append(v))
    text = "\n".join(exprs)
    metrics = ("dfa_messages_consumed_total dfa_stage_seconds_bucket dfa_dead_lettered_total "
               "dfa_requests_in_flight dfa_consumer_lag dfa_serving_adapter").split()
    missing = [m for m in metrics if not re.search(rf"\b{m}\b", text)]
    need(not missing, f"no panel queries {missing}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="repository root (default: .)")
    root = os.path.abspath(ap.parse_args().root)
    with open(os.path.join(root, "config/default.toml"), "rb") as f:
        cfg = tomllib.load(f)
    with open(os.path.join(root, "deploy/k8s/base/production.toml"), "rb") as f:
        prod = tomllib.load(f)
    # production.toml is applied over the embedded defaults, table by table.
    cfg = {k: {**v, **prod.get(k, {})} if isinstance(v, dict) else v for k, v in cfg.items()}
    check_kustomization(root, "base", False, cfg, prod)
    check_kustomization(root, "overlays/gpu", True, cfg, prod)
    check("compose: services, migrate ordering, dfa environment", check_compose, root)
    check("prometheus: scrapes the worker metrics and serve ports from container.toml", check_prometheus, root)
    check("grafana: dfa.json parses and queries the key metrics", check_grafana, root)
    if FAILED:
        sys.exit(f"{len(FAILED)} check(s) failed")


if __name__ == "__main__":
    main()
