"""The dependency locks: every package pinned with == and hashed, each input's pins in its lock.

`make lock` compiles each human-edited requirements*.in into a requirements*.txt that pip
installs with --require-hashes (the image, the host venv, the benchmarks). pip refuses a
lock with one unpinned or unhashed line, so these tests catch it before a build does.
"""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Each human-edited input and the lock that `make lock` compiles from it.
LOCKS = {
    "requirements.in": "requirements.txt",
    "requirements-dev.in": "requirements-dev.txt",
    "requirements-bench.in": "requirements-bench.txt",
}

#: One exact pin: name, optional extras, ``==version``, optional environment marker.
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?"
    r"==(?P<version>[A-Za-z0-9.!+_-]+)(?:\s*;\s*(?P<marker>.+))?$"
)
_HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def normalize(name: str) -> str:
    """The PEP 503 form of a project name (``Typing_Extensions`` -> ``typing-extensions``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text: str) -> list[str]:
    """Requirement lines with backslash continuations joined; comments and blanks dropped."""
    joined = re.sub(r"\\\n", " ", text)
    lines = (" ".join(re.sub(r"(^|\s)#.*", "", line).split()) for line in joined.splitlines())
    return [line for line in lines if line]


def lock_problems(text: str) -> list[str]:
    """Every line of a lock that pip --require-hashes would refuse, with the reason."""
    problems = []
    for line in logical_lines(text):
        requirement, _, hashes = line.partition("--hash")
        if not _PIN.match(requirement.strip()):
            problems.append(f"not pinned with ==: {line}")
        if not hashes:
            problems.append(f"no --hash: {line}")
        elif not all(_HASH.match(token) for token in ("--hash" + hashes).split()):
            problems.append(f"malformed --hash: {line}")
    return problems


def pins(text: str) -> dict[str, set[tuple[str, str]]]:
    """Normalized name -> {(version, marker)} of every pinned line (options skipped)."""
    found: dict[str, set[tuple[str, str]]] = {}
    for line in logical_lines(text):
        match = _PIN.match(line.partition("--hash")[0].strip())
        if match:
            entry = (match["version"], match["marker"] or "")
            found.setdefault(normalize(match["name"]), set()).add(entry)
    return found


def top_level(text: str) -> dict[str, str]:
    """Normalized name -> version of each requirement of an input file (-r/-c lines skipped)."""
    found = {}
    for line in logical_lines(text):
        if line.startswith("-"):
            continue
        match = _PIN.match(line)
        assert match, f"an input pin must be exact (name==version): {line}"
        found[normalize(match["name"])] = match["version"]
    return found


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("lock", sorted(LOCKS.values()))
def test_every_line_of_a_lock_is_pinned_and_hashed(lock: str) -> None:
    """pip --require-hashes accepts the lock: each package is name==version with a --hash."""
    assert lock_problems(read(lock)) == []
    assert pins(read(lock)), f"{lock} pins nothing"


@pytest.mark.parametrize(("source", "lock"), sorted(LOCKS.items()))
def test_each_input_pin_is_in_its_lock_at_that_version(source: str, lock: str) -> None:
    """A top-level pin edited in a .in file without `make lock` fails here, not in a build."""
    locked = pins(read(lock))
    wanted = top_level(read(source))
    assert wanted, f"{source} names nothing"
    missing = {
        name: version
        for name, version in wanted.items()
        if version not in {locked_version for locked_version, _ in locked.get(name, set())}
    }
    assert missing == {}, f"run `make lock`: {lock} lacks {missing}"


def test_the_locks_agree_on_every_shared_package() -> None:
    """Dev and bench are compiled against the runtime lock (-c), so one package, one version."""
    locks = {lock: pins(read(lock)) for lock in LOCKS.values()}
    for (a, pins_a), (b, pins_b) in combinations(locks.items(), 2):
        differ = {
            name: (pins_a[name], pins_b[name])
            for name in pins_a.keys() & pins_b.keys()
            if pins_a[name] != pins_b[name]
        }
        assert differ == {}, f"{a} and {b} disagree"


def test_the_dev_lock_holds_the_whole_runtime_lock() -> None:
    """The host venv installs requirements-dev.txt alone: it carries every runtime pin."""
    runtime, dev = pins(read("requirements.txt")), pins(read("requirements-dev.txt"))
    assert {name: runtime[name] for name in runtime.keys() - dev.keys()} == {}


def test_the_checker_names_an_unpinned_or_unhashed_line() -> None:
    """The check itself: a range, a bare name and a hashless pin are each reported."""
    sha = "--hash=sha256:" + "0" * 64
    text = (
        f"good==1.0 \\\n    {sha}\n    # via -r requirements.in\n"
        f"ranged>=1.0 \\\n    {sha}\n"
        f"bare \\\n    {sha}\n"
        "nohash==2.0\n"
        f"marked==3.0 ; python_full_version < '3.11.3' \\\n    {sha}\n"
    )
    assert lock_problems(text) == [
        f"not pinned with ==: ranged>=1.0 {sha}",
        f"not pinned with ==: bare {sha}",
        "no --hash: nohash==2.0",
    ]
    assert pins(text) == {
        "good": {("1.0", "")},
        "nohash": {("2.0", "")},
        "marked": {("3.0", "python_full_version < '3.11.3'")},
    }
