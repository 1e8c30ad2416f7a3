"""`atomic_path`: the one temp-and-rename writer behind every file and directory the study
caches or records."""
import json

import pytest

from mmakit.core.paths import atomic_path, write_json_atomic


def test_file_appears_only_when_written(tmp_path):
    final = tmp_path / "sub" / "x.bin"
    with atomic_path(final) as tmp:
        assert tmp == tmp_path / "sub" / "x.bin.tmp" and tmp.parent.is_dir()
        tmp.write_bytes(b"new")
        assert not final.exists()
    assert final.read_bytes() == b"new" and [p.name for p in final.parent.iterdir()] == ["x.bin"]


def test_directory_replaces_a_previous_one(tmp_path):
    final = tmp_path / "ckpt"
    (final / "old").mkdir(parents=True)
    with atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("1")
    assert sorted(p.name for p in final.iterdir()) == ["new"] and not (tmp_path / "ckpt.tmp").exists()


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_failure_keeps_the_previous_version_and_leaves_no_temp(tmp_path, kind):
    final = tmp_path / "out"
    final.write_text("previous")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        if kind == "dir":
            tmp.mkdir()
            (tmp / "half").write_text("x")
        else:
            tmp.write_text("half")
        raise RuntimeError("crash")
    assert final.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_leftover_temp_of_a_crashed_writer_is_cleared(tmp_path):
    final = tmp_path / "data"
    (tmp_path / "data.tmp" / "stale").mkdir(parents=True)
    with atomic_path(final) as tmp:
        assert not tmp.exists()
        tmp.mkdir()
    assert list(final.iterdir()) == [] and not (tmp_path / "data.tmp").exists()


def test_write_json_atomic(tmp_path):
    path = write_json_atomic({"a": 1, "b": tmp_path}, tmp_path / "r" / "x.json")
    assert json.loads(path.read_text()) == {"a": 1, "b": str(tmp_path)}
    assert path.read_text() == json.dumps({"a": 1, "b": str(tmp_path)}, indent=2)
