"""The shared compose harness (devtools/harness.py) without Docker: ``.env`` parsing,
the commands it runs (against a fake ``docker`` on PATH), memory readings, sampling."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.harness import (
    MEMORY_PROBE,
    ROOT,
    ComposeError,
    ComposeProject,
    ContainerMemory,
    PeakSampler,
    read_env_file,
)

#: Stands in for the docker CLI: prints its argv, working directory and PROBE_VAR as
#: JSON; exits with FAKE_DOCKER_EXIT (non-zero: after a line on stderr).
FAKE_DOCKER = f"""#!{sys.executable}
import json, os, sys
print(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(),
                  "probe": os.environ.get("PROBE_VAR")}}))
code = int(os.environ.get("FAKE_DOCKER_EXIT", "0"))
if code:
    print("no such service", file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fake ``docker`` first on this process's PATH (projects copy it at creation)."""
    program = tmp_path / "docker"
    program.write_text(FAKE_DOCKER)
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{Path(sys.executable).parent}")
    monkeypatch.delenv("PROBE_VAR", raising=False)
    yield


def test_read_env_file_takes_key_value_lines_and_skips_the_rest(tmp_path: Path) -> None:
    """Comments, blank lines and lines without ``=`` are skipped; both sides stripped;
    only the first ``=`` splits."""
    env = tmp_path / ".env"
    env.write_text(
        "# a comment\n\n  REDIS_PASSWORD = s3cret \nDSN=postgresql://u:p@h/db?x=1\n"
        "  # INDENTED=comment\nnot a pair\nEMPTY=\n"
    )
    assert read_env_file(env) == {
        "REDIS_PASSWORD": "s3cret",
        "DSN": "postgresql://u:p@h/db?x=1",
        "EMPTY": "",
    }


def test_read_env_file_of_an_absent_file_is_empty(tmp_path: Path) -> None:
    """No ``.env`` (a bare checkout): nothing, not an error."""
    assert read_env_file(tmp_path / "missing.env") == {}


def test_the_repository_env_file_has_the_secrets_the_stacks_need() -> None:
    """The committed ``.env`` parses to every secret tests and benchmarks read."""
    values = read_env_file(ROOT / ".env")
    for key in ("REDIS_PASSWORD", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert values.get(key), key


def test_compose_command_names_the_project_then_each_file() -> None:
    project = ComposeProject("p", files=("a.yml", "b.yml"), env={})
    assert project.compose_command("ps", "-q") == [
        "docker", "compose", "-p", "p", "-f", "a.yml", "-f", "b.yml", "ps", "-q",
    ]  # fmt: skip
    assert ComposeProject("p", env={}).compose_command("up") == [
        "docker",
        "compose",
        "-p",
        "p",
        "up",
    ]


def test_compose_runs_in_the_repository_root_with_the_project_env(fake_docker: None) -> None:
    """Given env set on the project and more for one command, when compose runs, then the
    command sees the addition, in the repository root, and the project env is unchanged."""
    project = ComposeProject("p", files=("x.yml",))
    project.env["PROBE_VAR"] = "project"
    seen = json.loads(project.compose("up", "-d", env={"PROBE_VAR": "call"}))
    assert seen == {
        "argv": ["compose", "-p", "p", "-f", "x.yml", "up", "-d"],
        "cwd": str(ROOT),
        "probe": "call",
    }
    assert json.loads(project.compose("ps"))["probe"] == "project"


def test_docker_runs_in_this_process_environment(fake_docker: None) -> None:
    """``docker`` (inspect, kill, exec) does not get the project's interpolation env."""
    project = ComposeProject("p")
    project.env["PROBE_VAR"] = "project"
    assert json.loads(project.docker("inspect", "c1"))["probe"] is None


def test_a_failing_command_raises_with_its_output_unless_not_checked(
    fake_docker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_EXIT", "3")
    project = ComposeProject("p")
    with pytest.raises(ComposeError, match=r"(?s)failed \(3\).*no such service"):
        project.compose("up")
    assert json.loads(project.compose("down", check=False))["argv"][-1] == "down"
    with pytest.raises(ComposeError):
        project.docker("kill", "c1")


def test_up_down_scale_exec_build_the_compose_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    project = ComposeProject("p", env={}, wait_timeout=300)
    calls: list[list[str]] = []

    def run(argv: list[str], *args: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv[4:])  # after docker compose -p p
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(project, "run", run)
    project.up("--scale", "worker=2", profiles=["bench"])
    project.down(profiles=["*"])
    project.scale("worker-cpu", 3)
    project.exec("app", "python", "-V")
    assert calls == [
        [
            "--profile",
            "bench",
            "up",
            "-d",
            "--wait",
            "--wait-timeout",
            "300",
            "--scale",
            "worker=2",
        ],
        ["--profile", "*", "down", "-v", "--remove-orphans"],
        ["up", "-d", "--no-deps", "--scale", "worker-cpu=3", "worker-cpu"],
        ["exec", "-T", "app", "python", "-V"],
    ]


def test_containers_reads_both_json_formats_of_compose_ps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One JSON object per line (compose >= 2.21) or one array (older); nothing: []."""
    project = ComposeProject("p", env={})
    rows = [{"Service": "redis", "ID": "a1"}, {"Service": "app", "ID": "b2"}]
    for out in ("\n".join(json.dumps(r) for r in rows) + "\n", json.dumps(rows)):
        monkeypatch.setattr(project, "compose", lambda *a, out=out, **k: out)
        assert project.containers() == rows
    monkeypatch.setattr(project, "compose", lambda *a, **k: "\n")
    assert project.containers("beat") == []


def test_container_memory_parses_the_probe_reading() -> None:
    """Bytes and KiB become MiB; the largest pool process counts; no cgroup peak: None."""
    reading = json.dumps({"cgroup_peak_bytes": 300 * 2**20, "pool_hwm_kib": [51200, 102400]})
    assert ContainerMemory.parse("0123456789abcdef", reading) == ContainerMemory(
        "0123456789ab", 300.0, 100.0
    )
    bare = json.dumps({"cgroup_peak_bytes": None, "pool_hwm_kib": []})
    assert ContainerMemory.parse("c", bare) == ContainerMemory("c", None, 0.0)


def test_the_memory_probe_runs_and_prints_a_reading() -> None:
    """The probe is plain Python over /proc and /sys: here it prints what parse reads."""
    run = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE], capture_output=True, text=True, check=True
    )
    reading = ContainerMemory.parse("host", run.stdout)
    assert reading.process_peak_mib >= 0
    assert reading.container_peak_mib is None or reading.container_peak_mib > 0


def test_memory_reads_each_running_container_of_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = ComposeProject("p", env={})
    probed: list[tuple[str, ...]] = []
    monkeypatch.setattr(project, "container_ids", lambda service: ["c1", "c2"])

    def exec_in(container: str, *command: str, **kwargs: object) -> str:
        probed.append((container, *command[:2]))
        return json.dumps({"cgroup_peak_bytes": 2**20, "pool_hwm_kib": [1024]})

    monkeypatch.setattr(project, "exec_in", exec_in)
    assert project.memory("worker-cpu") == [
        ContainerMemory("c1", 1.0, 1.0),
        ContainerMemory("c2", 1.0, 1.0),
    ]
    assert probed == [("c1", "python", "-c"), ("c2", "python", "-c")]


def test_peak_sampler_keeps_the_largest_reading_and_skips_failed_ones() -> None:
    """A read that fails as a restarting container makes it fail does not end sampling."""
    values: list[float | Exception] = [3.0, ComposeError("restarting"), 7.5, OSError(), 2.0]
    done = threading.Event()

    def read() -> float:
        value = values.pop(0) if values else 0.0
        if not values:
            done.set()
        if isinstance(value, Exception):
            raise value
        return value

    with PeakSampler(read, every=0.001) as sampler:
        assert done.wait(10), "the sampler stopped reading"
    assert sampler.peak == 7.5


def test_the_test_tier_stacks_keep_their_projects_ports_and_timeouts() -> None:
    """Stack tier and fault suite: own project, files, host ports (also in the client
    settings and URLs), compose and ``up --wait`` timeouts."""
    from tests.stack.conftest import PROJECT, STACK_ENV, Stack
    from tests.stack.faults_support import FaultStack

    stack = Stack()
    assert (stack.project, stack.files, stack.timeout, stack.wait_timeout) == (
        PROJECT, (), 900, 600,
    )  # fmt: skip
    assert stack.settings_env()["REDIS_PORT"] == STACK_ENV["REDIS_HOST_PORT"]
    assert stack.flower_url.endswith(f":{STACK_ENV['FLOWER_HOST_PORT']}")

    faults = FaultStack()
    assert faults.compose_command("ps") == [
        "docker", "compose", "-p", "celeryref-faults",
        "-f", "docker-compose.yml", "-f", "tests/stack/compose.faults.yml", "ps",
    ]  # fmt: skip
    assert (faults.timeout, faults.wait_timeout) == (900, 300)
    settings = faults.settings_env()
    assert (settings["REDIS_PORT"], settings["POSTGRES_PORT"]) == ("56379", "55432")
    assert (faults.flower_url, faults.api_url) == (
        "http://127.0.0.1:55555",
        "http://127.0.0.1:58000",
    )
