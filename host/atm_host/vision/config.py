"""Pydantic configuration of the vision pipeline; every field says what it is and why."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .paths import CACHE_DIR, MANIFEST_PATH, default_liveness_dir


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorConfig(_Strict):
    """BlazeFace post-processing."""

    score_threshold: float = Field(default=0.6, ge=0.0, le=1.0, description="Minimum face probability kept.")
    nms_iou: float = Field(
        default=0.3, gt=0.0, le=1.0, description="IoU above which boxes are merged (weighted NMS)."
    )
    second_face_ratio: float = Field(
        default=0.7,
        gt=0.0,
        le=1.0,
        description="A second face whose width is at least this fraction of the customer's is refused "
        "(someone beside the customer); smaller faces behind are ignored.",
    )


class QualityConfig(_Strict):
    """Quality gate limits; each rejection maps to a message the customer can act on."""

    camera_hfov_deg: float = Field(
        default=62.0, gt=10.0, lt=170.0, description="Camera horizontal field of view."
    )
    interocular_cm: float = Field(default=6.3, gt=3.0, lt=9.0, description="Mean adult eye-centre distance.")
    min_distance_cm: float = Field(default=40.0, gt=0.0, description="Closest accepted face distance.")
    max_distance_cm: float = Field(default=70.0, gt=0.0, description="Farthest accepted face distance.")
    check_distance: bool = Field(
        default=True, description="Off only for photo sets that are not camera frames."
    )
    max_yaw_deg: float = Field(default=25.0, gt=0.0, description="Largest accepted left/right head turn.")
    max_pitch_offset: float = Field(
        default=0.2,
        gt=0.0,
        description="Largest accepted shift of the nose (eye line 0, mouth 1) from its frontal 0.49.",
    )
    max_roll_deg: float = Field(
        default=20.0, gt=0.0, description="Largest accepted head tilt (eye line angle)."
    )
    min_sharpness: float = Field(
        default=25.0,
        ge=0.0,
        description="Minimum variance of the Laplacian on the aligned 112x112 grey face.",
    )
    min_brightness: float = Field(
        default=50.0, ge=0.0, le=255.0, description="Minimum mean grey level of the face."
    )
    max_brightness: float = Field(
        default=215.0, ge=0.0, le=255.0, description="Maximum mean grey level of the face."
    )
    max_clipped_fraction: float = Field(
        default=0.15, ge=0.0, le=1.0, description="Largest fraction of face pixels at >= 250 (glare)."
    )
    edge_margin: float = Field(
        default=0.02,
        ge=0.0,
        lt=0.5,
        description="The face box must stay this fraction of the frame inside it.",
    )


class LivenessConfig(_Strict):
    """Passive liveness decision bands on the mean P(real) of the two MiniFASNet models."""

    model_dir: Path = Field(
        default_factory=default_liveness_dir,
        description="Folder with the MiniFASNet .tflite files (not committed; ../shared by default).",
    )
    accept: float = Field(
        default=0.90, ge=0.0, le=1.0, description="P(real) at or above which the face is live."
    )
    reject: float = Field(
        default=0.20,
        ge=0.0,
        le=1.0,
        description="P(real) below which it is an attack; between: active challenge.",
    )
    passive_skips_challenge: bool = Field(
        default=False,
        description="Let a passive LIVE verdict skip the active challenge. Off: on the project's scenes "
        "a photo held up scored LIVE (>= 0.90) in 10 of 20 cases, so every customer does the challenge "
        "(docs/vision.md, 'PAD').",
    )


class ChallengeConfig(_Strict):
    """Active challenge (blink or head turn) measured across frames: yaw on face_landmark, eyes on the
    model `eye_model` names. The blink thresholds are for iris_landmark (docs/vision.md, "Active")."""

    eye_model: Literal["iris_landmark", "face_landmark"] = Field(
        default="iris_landmark",
        description="What measures eye openness for the blink: iris_landmark (the lid gap on its eye "
        "contour, two 64x64 eye crops, ~2.3 ms per frame; shut eyes read 0.36 of open median, at most "
        "0.58) or face_landmark (the mesh's lid points, no extra model; it barely follows eyelids: shut "
        "eyes read 0.50-0.98 of open, so most blinks are missed with these thresholds).",
    )
    blink_close_ratio: float = Field(
        default=0.75,
        gt=0.0,
        lt=1.0,
        description="Eyes count as closed below this fraction of the open baseline (iris_landmark: shut "
        "eyes at most 0.58, a still photo's noise and jitter at least 0.95).",
    )
    blink_open_ratio: float = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description="Eyes count as reopened above this fraction of the baseline (open eyes vary by "
        "+-5% frame to frame).",
    )
    blink_max_shape_change: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="A closure counts only while the face's height over its width (mesh: eye line to "
        "upper lip over cheek to cheek) stays within this fraction of its baseline: a photo tilted back "
        "narrows the eyes and the whole face alike (13% or more before its eyes read closed), a blink "
        "only the eyes (at most 6% measured).",
    )
    turn_yaw_deg: float = Field(
        default=18.0, gt=0.0, description="Head turn that satisfies a turn challenge."
    )
    baseline_frames: int = Field(default=3, ge=1, description="Frames averaged for the open-eye baseline.")
    max_frames: int = Field(
        default=90, ge=5, description="Frames (about 3 s at 30 fps) before the challenge fails."
    )


class VisionConfig(_Strict):
    """Everything the vision pipeline needs, with safe defaults for this repository."""

    manifest: Path = Field(default=MANIFEST_PATH, description="Model manifest (sources, sha256, threshold).")
    model_dir: Path = Field(
        default=CACHE_DIR, description="Folder where the models step puts the model files."
    )
    threads: int = Field(default=2, ge=1, le=16, description="TFLite interpreter threads per model.")
    embedder: str = Field(
        default="sface", description="Manifest name of the face embedder (sface; mobilefacenet as fallback)."
    )
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="Face detector settings.")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Quality gate settings.")
    liveness: LivenessConfig = Field(default_factory=LivenessConfig, description="Passive liveness.")
    challenge: ChallengeConfig = Field(default_factory=ChallengeConfig, description="Active challenge.")
