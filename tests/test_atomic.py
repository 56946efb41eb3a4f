"""kronbench.atomic: a target is replaced whole on success and left as it was on error, with no temp files left."""

import pytest

from kronbench import atomic


def test_directory_replaces_whole_or_not_at_all(tmp_path):
    out = tmp_path / "run"
    with atomic.directory(out) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"

    with pytest.raises(RuntimeError), atomic.directory(out) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"] and (out / "a.txt").read_text() == "first"

    with atomic.directory(out) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]  # replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no .run.*.tmp / .old left behind


def test_nested_directories_and_files(tmp_path):
    # checkpoints.save writes a compressed model through save_compressed, itself atomic, into its own temp dir
    out = tmp_path / "model"
    with atomic.directory(out) as tmp, atomic.directory(tmp) as inner:
        (inner / "w").write_text("x")
    assert (out / "w").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]

    f = tmp_path / "rows.jsonl"
    atomic.write_text(f, "1\n")
    with pytest.raises(RuntimeError), atomic.file(f) as t:
        t.write_text("2\n")
        raise RuntimeError
    assert f.read_text() == "1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "rows.jsonl"]
