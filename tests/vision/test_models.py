"""The models step and the sha256 check on load."""

import shutil
from pathlib import Path

import pytest
from atm_host.vision.errors import ModelIntegrityError, ModelMissingError
from atm_host.vision.manifest import load_manifest, sha256_bytes
from atm_host.vision.models_step import materialise
from atm_host.vision.paths import CACHE_DIR, MANIFEST_PATH, default_liveness_dir
from atm_host.vision.runtime import load_model


def test_manifest_records_every_model_with_source_hash_and_shapes() -> None:
    manifest = load_manifest(MANIFEST_PATH)
    assert {
        "blazeface_short_range",
        "face_landmark",
        "iris_landmark",
        "mobilefacenet",
        "sface",
        "minifasnet_v2",
        "minifasnet_v1se",
    } <= set(manifest.models)
    for entry in manifest.models.values():
        assert len(entry.sha256) == 64
        assert entry.inputs and entry.outputs and entry.license
        assert (MANIFEST_PATH.parent / entry.card).is_file(), entry.card
    for embedder in ("sface", "mobilefacenet"):
        op = manifest.entry(embedder).operating_point
        assert op is not None and op.target_far == 1e-4 and op.far <= 1e-4
        assert op.impostor_pairs > 90_000


def test_models_step_is_idempotent_and_files_match_manifest(models_ready: None) -> None:
    manifest = load_manifest(MANIFEST_PATH)
    fetched = materialise(manifest, CACHE_DIR, default_liveness_dir(), CACHE_DIR / "dl", log=lambda _: None)
    assert fetched == 0
    for name in ("blazeface_short_range", "face_landmark", "iris_landmark", "mobilefacenet", "sface"):
        entry = manifest.entry(name)
        path = MANIFEST_PATH.parent / entry.file if entry.location == "committed" else CACHE_DIR / entry.file
        assert sha256_bytes(path.read_bytes()) == entry.sha256


def _corrupt_copy(tmp_path: Path, name: str) -> Path:
    entry = load_manifest(MANIFEST_PATH).entry(name)
    dst = tmp_path / entry.file
    shutil.copy(CACHE_DIR / entry.file, dst)
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    dst.write_bytes(bytes(data))
    return dst


def test_corrupt_model_is_refused_on_load(models_ready: None, tmp_path: Path) -> None:
    _corrupt_copy(tmp_path, "mobilefacenet")
    entry = load_manifest(MANIFEST_PATH).entry("mobilefacenet")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_model("mobilefacenet", entry, tmp_path, default_liveness_dir(), 1)


def test_missing_model_names_the_models_step(tmp_path: Path) -> None:
    entry = load_manifest(MANIFEST_PATH).entry("blazeface_short_range")
    with pytest.raises(ModelMissingError, match="models"):
        load_model("blazeface_short_range", entry, tmp_path, default_liveness_dir(), 1)


def test_models_step_refuses_a_tampered_file(models_ready: None, tmp_path: Path) -> None:
    _corrupt_copy(tmp_path, "face_landmark")
    manifest = load_manifest(MANIFEST_PATH)
    manifest.models = {"face_landmark": manifest.entry("face_landmark")}
    with pytest.raises(ModelIntegrityError, match="delete it"):
        materialise(manifest, tmp_path, default_liveness_dir(), CACHE_DIR / "dl", log=lambda _: None)


def test_models_step_extracts_from_the_cached_archive(models_ready: None, tmp_path: Path) -> None:
    manifest = load_manifest(MANIFEST_PATH)
    manifest.models = {k: manifest.entry(k) for k in ("blazeface_short_range", "mobilefacenet")}
    assert materialise(manifest, tmp_path, default_liveness_dir(), CACHE_DIR / "dl", log=lambda _: None) == 2
