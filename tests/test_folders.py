"""talker.folders: output folders are made at any depth and taken back when the work fails."""

import pytest

from talker.folders import made_folders, missing_folders


def test_made_folders_keeps_them_when_the_work_succeeds(tmp_path):
    out = tmp_path / "a" / "b" / "c.mp4"
    assert missing_folders(out) == [tmp_path / "a", tmp_path / "a" / "b"]
    with made_folders(out, None) as made:
        assert made == [tmp_path / "a", tmp_path / "a" / "b"] and out.parent.is_dir()
        out.write_bytes(b"x")
    assert out.read_bytes() == b"x"


def test_made_folders_takes_back_empty_ones_on_failure(tmp_path):
    (tmp_path / "old").mkdir()
    with pytest.raises(KeyboardInterrupt):
        with made_folders(tmp_path / "old" / "x.mp4", tmp_path / "new" / "deep" / "live.m3u8"):
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # the folder that was there stays

    # a folder something was written into (a resumable download's .part) is kept
    with pytest.raises(RuntimeError):
        with made_folders(tmp_path / "models" / "checkpoints" / "f.pth"):
            (tmp_path / "models" / "checkpoints" / "f.pth.part").write_bytes(b"123")
            raise RuntimeError("cut")
    assert (tmp_path / "models" / "checkpoints" / "f.pth.part").read_bytes() == b"123"
