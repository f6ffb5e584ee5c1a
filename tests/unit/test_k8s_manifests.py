"""The Kubernetes manifests (deploy/k8s) as ``kubectl kustomize`` renders each overlay:
valid against the Kubernetes API schemas and KEDA's CRDs, and true to the deployment's
rules (issue 18). No cluster: nothing here is applied.

Each rule is a function that lists what breaks it in a rendering; the rule tests ask for
an empty list on every overlay, and :func:`test_each_rule_catches_its_breakage` breaks a
copy of a rendering once per rule to show the rule can fail.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from jsonschema import Draft202012Validator

from celeryref import queues
from celeryref.reliability.retry import DEFAULT_MAX_DELAY
from celeryref.settings import Settings
from tests.conftest import ROOT, missing

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("trial", "production")
#: Kubernetes versions whose API schemas every document must satisfy: the oldest that
#: KEDA 2.16 supports, and the newest kubernetes-validate ships.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
#: Queues whose workers may scale to zero (deploy/k8s/README.md says why the others not).
SCALE_TO_ZERO = {queues.CPU_INTENSIVE, queues.IO_INTENSIVE}
#: The one writable path of a read-only root (an emptyDir, as compose.prod.yml's tmpfs).
TMP = "/tmp"  # noqa: S108
#: The Redis ACL user of KEDA's triggers (overlays/trial/redis/keda-user.acl).
KEDA_USER = "keda"
#: compose service -> Kubernetes Deployment, where the names differ.
DEPLOYMENT_OF = {"worker": "worker-default"}

Docs = list[dict[str, Any]]


def find_kubectl() -> str:
    """``$KUBECTL`` or ``kubectl`` on PATH (.ci/run installs Debian's when none is)."""
    path = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not path:
        missing("kubectl not installed (apt-get install kubernetes-client)")
    return str(path)


@functools.cache
def render(overlay: str) -> Docs:
    run = subprocess.run(
        [find_kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return [doc for doc in yaml.safe_load_all(run.stdout) if doc]


@pytest.fixture(params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> Docs:
    return copy.deepcopy(render(request.param))


# -- reading a rendering -------------------------------------------------------------


def of_kind(docs: Docs, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: Docs) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]


def environment(container: dict[str, Any], docs: Docs) -> dict[str, str]:
    """A container's variables as the kubelet sets them (envFrom, then env)."""
    maps = of_kind(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]].get("data", {}))
    env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
    return env


def queue_of(deployment: dict[str, Any]) -> str | None:
    """The queue a worker Deployment consumes (its ``-Q``), None for other Deployments."""
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    return command[command.index("-Q") + 1] if "-Q" in command else None


def workers(docs: Docs) -> dict[str, dict[str, Any]]:
    return {n: d for n, d in of_kind(docs, "Deployment").items() if queue_of(d)}


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return services


def compose_defaults(words: list[str]) -> list[str]:
    """Compose's ``${VAR:-default}`` replaced by its default."""
    return [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", w) for w in words]


# -- the rules -----------------------------------------------------------------------


def every_queue_scaled(docs: Docs) -> list[str]:
    """Each queue has one worker Deployment and one ScaledObject targeting it, whose
    triggers read every priority list of THAT queue and sum them."""
    problems = []
    deployments = workers(docs)
    consumed = sorted(q for d in deployments.values() if (q := queue_of(d)))
    if consumed != sorted(queues.ALL_QUEUES):
        problems.append(f"worker Deployments consume {consumed}, not {queues.ALL_QUEUES}")
    auths = of_kind(docs, "TriggerAuthentication")
    targets = {
        so["spec"]["scaleTargetRef"]["name"]: so for so in of_kind(docs, "ScaledObject").values()
    }
    for name, deployment in deployments.items():
        so = targets.get(name)
        if so is None:
            problems.append(f"{name}: no ScaledObject")
            continue
        queue = queue_of(deployment)
        triggers = so["spec"]["triggers"]
        lists = [t["metadata"].get("listName") for t in triggers]
        if lists != queues.redis_keys(queue or ""):
            problems.append(f"{name} consumes {queue!r} but its triggers read {lists}")
        terms = sorted(
            so["spec"]["advanced"]["scalingModifiers"]["formula"].replace(" ", "").split("+")
        )
        if terms != sorted(t["name"] for t in triggers):
            problems.append(f"{name}: the formula is not the sum of every trigger")
        env = environment(deployment["spec"]["template"]["spec"]["containers"][0], docs)
        tls = "enable" if env.get("REDIS_TLS", "").lower() in ("true", "1") else "disable"
        if env.get("KEDA_REDIS_TLS") != tls:
            problems.append(f"{name}: KEDA's TLS ({env.get('KEDA_REDIS_TLS')}) is not the workers'")
        for t in triggers:
            where = {t["metadata"].get(k) for k in ("hostFromEnv", "portFromEnv")}
            if not where <= env.keys() or t["metadata"].get("username") != KEDA_USER:
                problems.append(
                    f"{name}/{t['name']}: not the workers' Redis, or not as {KEDA_USER}"
                )
            auth = auths.get(t.get("authenticationRef", {}).get("name", ""))
            secret = (
                {r["parameter"] for r in auth["spec"].get("secretTargetRef", [])} if auth else set()
            )
            if t["type"] != "redis" or "password" in t["metadata"] or "password" not in secret:
                problems.append(
                    f"{name}/{t['name']}: not a redis trigger with its password from a Secret"
                )
            if t["metadata"].get("databaseIndex") != str(
                Settings.model_fields["redis_broker_db"].default
            ):
                problems.append(f"{name}/{t['name']}: not the broker's database")
    return problems


def grace_outlasts_soft_shutdown(docs: Docs) -> list[str]:
    """SIGTERM starts the soft shutdown, which ends before the kubelet's SIGKILL."""
    problems = []
    for name, d in workers(docs).items():
        spec = d["spec"]["template"]["spec"]
        env = environment(spec["containers"][0], docs)
        window = float(env.get("WORKER_SOFT_SHUTDOWN_TIMEOUT", "inf"))
        if (
            env.get("REMAP_SIGTERM") != "SIGQUIT"
            or not spec["terminationGracePeriodSeconds"] > window
        ):
            problems.append(
                f"{name}: grace {spec['terminationGracePeriodSeconds']} s, soft shutdown {window} s"
            )
    return problems


def hardened_and_limited(docs: Docs) -> list[str]:
    """Every container: requests and limits, non-root, read-only root with /tmp an
    emptyDir, no privilege escalation, no capability, RuntimeDefault seccomp, no API token."""
    problems = []
    for where, spec in pod_specs(docs):
        pod_ctx = spec.get("securityContext", {})
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: mounts a service account token")
        empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in spec["containers"]:
            ctx = {**pod_ctx, **c.get("securityContext", {})}
            res = c.get("resources", {})
            checks = {
                "requests and limits": all(
                    k in res.get(level, {})
                    for level in ("requests", "limits")
                    for k in ("cpu", "memory")
                ),
                "runAsNonRoot": ctx.get("runAsNonRoot") is True,
                "readOnlyRootFilesystem": ctx.get("readOnlyRootFilesystem") is True,
                "allowPrivilegeEscalation false": ctx.get("allowPrivilegeEscalation") is False,
                "drop ALL": ctx.get("capabilities", {}).get("drop") == ["ALL"]
                and not ctx.get("capabilities", {}).get("add"),
                "seccomp RuntimeDefault": ctx.get("seccompProfile", {}).get("type")
                == "RuntimeDefault",
                "an emptyDir at TMP": any(
                    m["mountPath"] == TMP and m["name"] in empty_dirs
                    for m in c.get("volumeMounts", [])
                ),
            }
            problems += [f"{where}/{c['name']}: {what}" for what, ok in checks.items() if not ok]
    return problems


def probed_like_compose(docs: Docs) -> list[str]:
    """Long-running containers have liveness and readiness probes; those of a compose
    service run its healthcheck: the same health-module command, or a GET of its URL."""
    problems = []
    for where, spec in pod_specs(docs):
        for c in spec["containers"]:
            if not where.startswith("Job/") and not (
                "livenessProbe" in c and "readinessProbe" in c
            ):
                problems.append(f"{where}/{c['name']}: no liveness or readiness probe")
    deployments = of_kind(docs, "Deployment")
    for service, svc in compose_services().items():
        check = svc.get("healthcheck", {}).get("test", [])
        if (
            check[1:4] != ["python", "-m", "celeryref.observability.health"]
            or service == "mailsink"
        ):
            continue
        name = DEPLOYMENT_OF.get(service, service)
        if name not in deployments:
            problems.append(f"compose service {service} has no Deployment {name}")
            continue
        probe = deployments[name]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
        if check[4] == "http":
            url = re.fullmatch(r"http://localhost:(\d+)(/\S*)", check[5])
            ports = {
                p["name"]: p["containerPort"]
                for p in deployments[name]["spec"]["template"]["spec"]["containers"][0].get(
                    "ports", []
                )
            }
            get = probe.get("httpGet", {})
            if not url or (get.get("path"), ports.get(get.get("port"), get.get("port"))) != (
                url[2],
                int(url[1]),
            ):
                problems.append(f"{name}: liveness is not compose's GET {check[5]}")
        elif probe.get("exec", {}).get("command") != check[1:]:
            problems.append(f"{name}: liveness is not compose's {check[1:]}")
    return problems


def commands_mirror_compose(docs: Docs) -> list[str]:
    """A worker runs its compose service's command; only an explicit ``--concurrency``
    may be added (a pod sees every core of its node, not its CPU limit)."""
    problems = []
    deployments = of_kind(docs, "Deployment")
    for service, svc in compose_services().items():
        if not service.startswith("worker"):
            continue
        name = DEPLOYMENT_OF.get(service, service)
        command = list(deployments[name]["spec"]["template"]["spec"]["containers"][0]["command"])
        expected = compose_defaults(svc["command"])
        if "--concurrency" in command and "--concurrency" not in expected:
            i = command.index("--concurrency")
            del command[i : i + 2]
        if command != expected:
            problems.append(f"{name}: {command} is not compose's {expected}")
    return problems


def one_beat(docs: Docs) -> list[str]:
    beat = of_kind(docs, "Deployment")["beat"]["spec"]
    targets = {
        so["spec"]["scaleTargetRef"]["name"] for so in of_kind(docs, "ScaledObject").values()
    }
    if (
        beat.get("replicas") != 1
        or beat.get("strategy", {}).get("type") != "Recreate"
        or "beat" in targets
    ):
        return [f"beat: replicas {beat.get('replicas')}, strategy {beat.get('strategy')}"]
    return []


def zero_only_where_safe(docs: Docs) -> list[str]:
    """priority, default and scheduled keep replicas; a queue that may reach zero waits
    longer than a task's hard limit plus the longest retry backoff before it does."""
    problems = []
    deployments = of_kind(docs, "Deployment")
    time_limit = float(
        environment(deployments["beat"]["spec"]["template"]["spec"]["containers"][0], docs)[
            "TASK_TIME_LIMIT"
        ]
    )
    for so in of_kind(docs, "ScaledObject").values():
        spec = so["spec"]
        queue = queue_of(deployments[spec["scaleTargetRef"]["name"]])
        floor = spec.get("minReplicaCount", 0)
        if floor == 0 and queue not in SCALE_TO_ZERO:
            problems.append(f"{queue} scales to zero")
        if floor == 0 and spec.get("cooldownPeriod", 300) < time_limit + DEFAULT_MAX_DELAY:
            problems.append(
                f"{queue}: cooldown {spec.get('cooldownPeriod')} s ends under a running task"
            )
        if queue == queues.PRIORITY and floor < 1:
            problems.append("priority may scale to zero")
    return problems


def disruption_budgets(docs: Docs) -> list[str]:
    """Every worker and the API have a PodDisruptionBudget that lets a drain proceed."""
    problems = []
    floors = {
        so["spec"]["scaleTargetRef"]["name"]: so["spec"].get("minReplicaCount", 0)
        for so in of_kind(docs, "ScaledObject").values()
    }
    budgets = {
        tuple(sorted(p["spec"]["selector"]["matchLabels"].items())): p["spec"]
        for p in of_kind(docs, "PodDisruptionBudget").values()
    }
    for name, d in of_kind(docs, "Deployment").items():
        if name not in floors and name != "app":
            continue
        pdb = budgets.get(tuple(sorted(d["spec"]["selector"]["matchLabels"].items())))
        replicas = floors.get(name, d["spec"].get("replicas", 1))
        if pdb is None or not (
            pdb.get("maxUnavailable", 0) >= 1 or pdb.get("minAvailable", replicas) < replicas
        ):
            problems.append(f"{name}: no PodDisruptionBudget, or one that blocks every drain")
    return problems


def network_policies(docs: Docs) -> list[str]:
    """Default deny; only io and priority workers reach the internet, and not its private
    ranges; the API reaches DNS, Redis and Postgres and nothing else."""
    policies = of_kind(docs, "NetworkPolicy")

    def selecting(labels: dict[str, str], direction: str) -> set[str]:
        return {
            n
            for n, p in policies.items()
            if direction in p["spec"]["policyTypes"]
            and p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
        }

    problems = []
    deny = policies.get("default-deny", {}).get("spec", {})
    if (
        deny.get("podSelector") != {}
        or sorted(deny.get("policyTypes", [])) != ["Egress", "Ingress"]
        or deny.get("egress")
        or deny.get("ingress")
    ):
        problems.append("no default deny for every pod")
    labels = {
        n: d["spec"]["template"]["metadata"]["labels"]
        for n, d in of_kind(docs, "Deployment").items()
    }
    public = sorted(n for n, lab in labels.items() if "public-egress" in selecting(lab, "Egress"))
    if public != ["worker-io", "worker-priority"]:
        problems.append(f"public egress for {public}")
    for rule in policies.get("public-egress", {}).get("spec", {}).get("egress", []):
        for peer in rule["to"]:
            block = peer.get("ipBlock", {})
            if block.get("cidr") == "0.0.0.0/0" and not {"10.0.0.0/8", "169.254.0.0/16"} <= set(
                block.get("except", [])
            ):
                problems.append("public egress reaches private ranges or cloud metadata")
    if selecting(labels["app"], "Egress") != {
        "default-deny",
        "dns",
        "redis-clients",
        "postgres-clients",
    }:
        problems.append(f"the API's egress: {sorted(selecting(labels['app'], 'Egress'))}")
    return problems


RULES: list[Callable[[Docs], list[str]]] = [
    every_queue_scaled,
    grace_outlasts_soft_shutdown,
    hardened_and_limited,
    probed_like_compose,
    commands_mirror_compose,
    one_beat,
    zero_only_where_safe,
    disruption_budgets,
    network_policies,
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_rule_holds(rule: Callable[[Docs], list[str]], docs: Docs) -> None:
    """Each rule (its docstring) holds in each overlay's rendering."""
    assert rule(docs) == []


def _set(kind: str, name: str, path: tuple[str | int, ...], value: Any) -> Callable[[Docs], None]:
    """A breakage: set the field at ``path`` of one document to ``value``."""

    def apply(docs: Docs) -> None:
        node: Any = of_kind(docs, kind)[name]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


POD = ("spec", "template", "spec")
WORKER = (*POD, "containers", 0)
BREAKAGES = {
    every_queue_scaled: _set(
        "ScaledObject", "worker-cpu", ("spec", "triggers", 3, "metadata", "listName"), "default:3"
    ),
    grace_outlasts_soft_shutdown: _set(
        "Deployment", "worker-io", (*POD, "terminationGracePeriodSeconds"), 60
    ),
    hardened_and_limited: _set(
        "Deployment", "flower", (*WORKER, "securityContext", "readOnlyRootFilesystem"), False
    ),
    probed_like_compose: _set(
        "Deployment",
        "worker-scheduled",
        (*WORKER, "livenessProbe", "exec", "command", 4),
        "default",
    ),
    commands_mirror_compose: _set(
        "Deployment", "worker-default", (*WORKER, "command", 5), "priority"
    ),
    one_beat: _set("Deployment", "beat", ("spec", "strategy"), {"type": "RollingUpdate"}),
    zero_only_where_safe: _set("ScaledObject", "worker-priority", ("spec", "minReplicaCount"), 0),
    disruption_budgets: _set("PodDisruptionBudget", "worker-priority", ("spec", "minAvailable"), 2),
    network_policies: _set(
        "Deployment",
        "app",
        ("spec", "template", "metadata", "labels", "celeryref.io/public-egress"),
        "true",
    ),
}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_each_rule_catches_its_breakage(rule: Callable[[Docs], list[str]]) -> None:
    """Given the trial rendering with one thing broken, the rule names it."""
    docs = copy.deepcopy(render("trial"))
    BREAKAGES[rule](docs)
    assert rule(docs)


# -- schemas -------------------------------------------------------------------------


def _forbid_unknown_fields(node: Any) -> Any:
    """KEDA's models ignore unknown fields; the API server (structural CRD schema) drops
    them, so a misspelt field would silently do nothing: refuse them here."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _forbid_unknown_fields(value)
    elif isinstance(node, list):
        for value in node:
            _forbid_unknown_fields(value)
    return node


@functools.cache
def keda_validator(kind: str) -> Draft202012Validator:
    """KEDA's CRD schema of ``kind`` (cloudcoil's models of KEDA 2.16.1's CRDs), strict."""
    model = {"ScaledObject": keda.ScaledObject, "TriggerAuthentication": keda.TriggerAuthentication}
    return Draft202012Validator(_forbid_unknown_fields(model[kind].model_json_schema()))


def keda_errors(doc: dict[str, Any]) -> list[str]:
    errors = keda_validator(doc["kind"]).iter_errors(doc)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_document_matches_its_api_schema(docs: Docs, version: str) -> None:
    """Every rendered document is valid, with no unknown field, for its Kubernetes
    API (kubernetes-validate, strict) or for KEDA's CRD; no other kind is rendered."""
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"] == "keda.sh/v1alpha1":
            assert keda_errors(doc) == [], where
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")


def test_the_keda_schema_refuses_what_keda_would_not_read() -> None:
    """Given a ScaledObject with a misspelt field, a number where KEDA wants a string
    and a trigger without its type, the schema names each."""
    so = copy.deepcopy(of_kind(render("trial"), "ScaledObject")["worker-default"])
    so["spec"]["minReplicas"] = 1
    so["spec"]["triggers"][0]["metadata"]["listLength"] = 8
    del so["spec"]["triggers"][1]["type"]
    errors = "\n".join(keda_errors(so))
    assert "'minReplicas' was unexpected" in errors
    assert "triggers.0.metadata.listLength" in errors
    assert "'type' is a required property" in errors


# -- secrets, copies, tools ------------------------------------------------------------


def test_secrets_are_mounted_files_never_variables(docs: Docs) -> None:
    """Each *_FILE names a file of the pod's Secret volume; no secret is a variable,
    and no Secret is rendered (its values are never in the repository)."""
    assert not of_kind(docs, "Secret")
    secret_names = {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN", "FLOWER_BASIC_AUTH"}
    for where, spec in pod_specs(docs):
        mounted = {
            f"/run/secrets/{item['path']}"
            for v in spec.get("volumes", [])
            if "secret" in v
            for item in v["secret"]["items"]
        }
        for c in spec["containers"]:
            env = environment(c, docs)
            assert not secret_names & env.keys(), where
            assert not any("valueFrom" in e for e in c.get("env", [])), where
            files = {v for k, v in env.items() if k.endswith("_FILE")}
            assert files <= mounted, f"{where}: {files - mounted} not mounted"


def test_every_secret_key_is_made_by_prod_secrets(docs: Docs) -> None:
    """Every key the pods and KEDA read from the Secret is a file scripts/prod-secrets.sh
    makes, so `kubectl create secret generic --from-file` of its folder has them all."""
    script = (ROOT / "scripts" / "prod-secrets.sh").read_text()
    made = set(re.search(r"for name in (.*?); do", script, re.S)[1].replace("\\", " ").split())
    used = {
        item["key"]
        for _, spec in pod_specs(docs)
        for v in spec.get("volumes", [])
        if "secret" in v
        for item in v["secret"]["items"]
    }
    for auth in of_kind(docs, "TriggerAuthentication").values():
        used |= {ref["key"] for ref in auth["spec"]["secretTargetRef"]}
    assert used <= made


def test_postgres_has_a_connection_for_every_replica_keda_may_start() -> None:
    """Trial: each worker's pools at maxReplicaCount, plus the API's, fit max_connections
    (processes x DB_POOL_MAX per replica; a threads-pool worker is one process)."""
    docs = render("trial")
    deployments = of_kind(docs, "Deployment")
    default_pool = Settings.model_fields["db_pool_max"].default
    needed = 1  # the migrate Job
    for so in of_kind(docs, "ScaledObject").values():
        container = deployments[so["spec"]["scaleTargetRef"]["name"]]["spec"]["template"]["spec"][
            "containers"
        ][0]
        command, env = container["command"], environment(container, docs)
        if "--autoscale" in command:
            processes = int(command[command.index("--autoscale") + 1].split(",")[0])
        elif "custom" in command:
            processes = 1
        else:
            processes = int(command[command.index("--concurrency") + 1])
        pool = int(env.get("DB_POOL_MAX", default_pool))
        needed += so["spec"]["maxReplicaCount"] * processes * pool
    app = deployments["app"]
    needed += app["spec"]["replicas"] * int(
        environment(app["spec"]["template"]["spec"]["containers"][0], docs)["DB_POOL_MAX"]
    )
    args = of_kind(docs, "StatefulSet")["postgres"]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert needed <= int(args[args.index("-c") + 1].removeprefix("max_connections="))


def test_the_trial_copies_match_the_compose_files() -> None:
    """The trial's Redis ACL and Postgres roles are the production profile's files."""
    trial = K8S / "overlays" / "trial"
    prod = ROOT / "docker" / "prod"
    assert (trial / "redis" / "redis-users.acl").read_text() == (
        prod / "redis-users.acl"
    ).read_text()
    assert (trial / "postgres" / "postgres-roles.sh").read_text() == (
        prod / "postgres-roles.sh"
    ).read_text()


def test_kedas_redis_user_reads_the_queue_lists_only() -> None:
    """The `keda` ACL user: EVAL of a TYPE/LLEN script on each queue's lists, nothing else."""
    acl = (K8S / "overlays" / "trial" / "redis" / "keda-user.acl").read_text()
    (line,) = [line.split() for line in acl.splitlines() if line.startswith("user ")]
    assert line[1] == KEDA_USER
    commands = [w for w in line if w[0] in "+-"]
    assert commands == ["-@all", "+@connection", "-@dangerous", "+eval", "+type", "+llen"]
    keys = {w[1:] for w in line if w.startswith("~")}
    assert keys == {k for q in queues.ALL_QUEUES for k in (q, f"{q}{queues.PRIORITY_SEP}*")}
    assert "resetchannels" in line and not [w for w in line if w.startswith("&")]


def test_a_missing_kubectl_fails_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Given CI and no kubectl, the tier fails rather than skips."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("KUBECTL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="kubectl not installed"):
        find_kubectl()
