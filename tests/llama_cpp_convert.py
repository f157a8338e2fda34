"""llama.cpp's own HF -> GGUF converter, taken from the llama-cpp-python sdist on PyPI.

`converter_dir()` downloads the sdist once with pip (no build), extracts only
`convert_hf_to_gguf.py`, its `conversion/` package and `gguf-py/` into a cache folder (never the
repository), and writes a small wrapper beside them. `convert()` runs the wrapper in a
subprocess. The wrapper changes exactly one thing: the BPE pre-tokenizer detection (a hash of
how the tokenizer splits a fixed text, matched against known models) returns "gpt-2", because
the converter refuses tokenizers it has not seen, like the tests' tiny trained BPE.

Cache folder: $LONGBOW_LLAMA_CPP_CACHE, else ~/.cache/longbow/llama-cpp-python-<version>.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.3.36"
_VENDOR = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
_KEEP = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")

_WRAPPER = '''"""Runs convert_hf_to_gguf.py with the BPE pre-tokenizer detection pinned to "gpt-2"."""
import runpy
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path[:0] = [str(here / "gguf-py"), str(here)]  # this gguf-py, not an installed gguf
import conversion.base  # noqa: E402

conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv = [str(here / "convert_hf_to_gguf.py"), *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


class ConverterUnavailable(RuntimeError):
    """The sdist could not be had (no PyPI): callers skip."""


class ConversionFailed(RuntimeError):
    """The converter ran and refused the model (its message is the tail of stderr)."""


def cache_root() -> Path:
    env = os.environ.get("LONGBOW_LLAMA_CPP_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "longbow"
    return base / f"llama-cpp-python-{VERSION}"


def _download_sdist(dest: Path) -> Path:
    """pip download of the sdist; without build isolation first (fast when scikit-build-core is
    installed: pip still prepares metadata), then with it."""
    base = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        # Only this package as a source distribution: ":all:" would also build its build
        # dependencies (cmake, ninja) from source, which takes longer than the timeout.
        "--no-binary",
        "llama-cpp-python",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        f"llama-cpp-python=={VERSION}",
    ]
    errors = []
    for extra in (["--no-build-isolation"], []):
        try:
            proc = subprocess.run(
                base + extra, check=False, capture_output=True, text=True, timeout=900
            )
        except subprocess.TimeoutExpired:
            errors.append([f"pip download {' '.join(extra)} timed out"])
            continue
        found = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
        if found:
            return found[0]
        errors.append(proc.stderr.strip().splitlines()[-1:] or ["(no output)"])
    raise ConverterUnavailable(
        f"[llama_cpp_convert] pip download llama-cpp-python=={VERSION} "
        f"failed (is PyPI reachable?): {errors}"
    )


def converter_dir() -> Path:
    """The cache folder holding convert_hf_to_gguf.py, conversion/, gguf-py/ and the wrapper."""
    root = cache_root()
    wrapper = root / "convert_wrapper.py"
    if wrapper.is_file() and wrapper.read_text() == _WRAPPER:
        return root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = _download_sdist(Path(tmp))
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                if not member.name.startswith(_VENDOR) or not member.isfile():
                    continue
                rel = member.name[len(_VENDOR) :]
                if rel.startswith(_KEEP):
                    out = root / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(tar.extractfile(member).read())
    if not (root / "convert_hf_to_gguf.py").is_file():
        raise ConverterUnavailable(
            f"[llama_cpp_convert] the sdist has no {_VENDOR}convert_hf_to_gguf.py"
        )
    wrapper.write_text(_WRAPPER)  # written last: its presence marks a complete cache
    return root


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:24]


def convert(hf_folder, out_path, outtype: str) -> Path:
    """Converts an HF folder to GGUF (`outtype` f32 / f16 / bf16 / q8_0) with llama.cpp's
    converter; ConversionFailed carries the converter's last stderr lines. Results are cached
    by the folder's content, so a second session copies instead of converting."""
    root = converter_dir()
    out_path = Path(out_path)
    cached = root / "converted" / f"{_folder_digest(Path(hf_folder))}-{outtype}.gguf"
    if cached.is_file():
        shutil.copyfile(cached, out_path)
        return out_path
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_LOCAL_GGUF": "1"}
    cmd = [
        sys.executable,
        str(root / "convert_wrapper.py"),
        str(hf_folder),
        "--outtype",
        outtype,
        "--outfile",
        str(out_path),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0 or not out_path.is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
        raise ConversionFailed(
            f"[llama_cpp_convert] convert_hf_to_gguf.py {outtype} of "
            f"{Path(hf_folder).name} exited {proc.returncode}:\n{tail}"
        )
    cached.parent.mkdir(exist_ok=True)
    shutil.copyfile(out_path, cached)
    return out_path
