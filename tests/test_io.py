"""The one atomic writer: whole files only, fsynced, no temporary left behind."""

from __future__ import annotations

import os

import pytest

from embedbench import io
from embedbench.errors import UserError


def test_write_atomic_replaces_whole_files_and_fsyncs(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "a.txt"
    io.write_atomic(path, "ä\n")
    assert path.read_bytes() == "ä\n".encode()
    io.write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert len(synced) >= 2  # the file each time (and the folder where it can be)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_json_atomic_creates_the_folder_and_stale_temporaries_go(tmp_path):
    path = tmp_path / "cells" / "k.json"
    io.write_json_atomic(path, {"b": 1, "a": [2]})
    assert path.read_text(encoding="utf-8") == '{"a": [2], "b": 1}'
    stale = io.temp_path(path)
    stale.write_text("half")
    user = path.parent / ".mine.tmp"
    user.write_text("keep")
    io.remove_stale_temporaries(path.parent)
    assert not stale.exists() and user.exists()


def test_read_json_is_one_line_on_a_broken_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match="m.json: not a manifest here"):
        io.read_json(path, "not a manifest here")
