"""The main environment is locked in constraints.txt: the lock must satisfy every requirement of
pyproject.toml, and every place that installs torch or the package must install what the lock
says. environment.yml cannot be checked by conda here (no channel is reachable), so it is
checked statically."""
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(r) for r in [*project["dependencies"], *extras]]


def test_the_lock_pins_every_requirement_within_its_specifier():
    lock = _lock()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is required by pyproject.toml but not locked in constraints.txt"
        assert req.specifier.contains(lock[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={lock[name]}, outside pyproject.toml's {req.specifier}"


def test_the_lock_holds_the_versions_the_records_were_made_with():
    lock = _lock()
    made_with = {"torch": "2.13.0", "transformers": "5.23.0", "accelerate": "1.15.0", "onnxruntime": "1.31.1"}
    assert {k: lock[k] for k in made_with} == made_with


def test_every_torch_pin_is_the_locks():
    torch = _lock()["torch"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip[0] == f"torch=={torch}" and "-c constraints.txt" in pip
    assert any(p.startswith("-e .[") and set(p[5:-1].split(",")) == {"notebooks", "test", "images"} for p in pip)
    for side in ("sparseml_requirements.txt",):
        assert f"torch=={torch}\n" in (ROOT / "mmakit" / "runtime" / side).read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile and re.search(r"TORCH := .*constraints\.txt", makefile)


def test_the_supported_pythons_are_the_tested_ones():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.14"  # the code hash is tested on 3.11-3.13 (test_layers)
