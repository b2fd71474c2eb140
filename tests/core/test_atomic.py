"""atomic_write: the old file survives a failed write, and no temporary file is left behind."""
import pytest

from inflor.atomic import atomic_write


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    atomic_write(target, lambda f: f.write(b"old"))

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]
    atomic_write(target, lambda f: f.write(b"new"), fsync=False)
    assert target.read_bytes() == b"new"
