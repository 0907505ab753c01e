"""The one exception tree of the vision package: every failure a caller can act on has its own type."""


class VisionError(Exception):
    """Base of every error raised by atm_host.vision."""


class ConfigError(VisionError):
    """A configuration value or file is missing or invalid (the message names the option)."""


class ModelMissingError(VisionError):
    """A model file is not where the manifest says it is (run the models step)."""


class ModelIntegrityError(VisionError):
    """A model file does not match the sha256 recorded in the manifest: it is refused."""


class ModelFetchError(VisionError):
    """The models step could not fetch or extract a model from its registry package."""


class RuntimeUnavailableError(VisionError):
    """Neither ai-edge-litert nor tflite-runtime can be imported."""


class FrameError(VisionError):
    """A frame is empty, of the wrong type or shape, or a frame source cannot deliver one."""


class NoFaceError(VisionError):
    """No face was found in the frame."""


class MultipleFacesError(VisionError):
    """More than one face of customer size is in the frame: one person at a time."""


class QualityError(VisionError):
    """The face is not good enough to verify; `reasons` are messages the customer can act on."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class TemplateError(VisionError):
    """A template is malformed, or was made by another model or format version (re-enrol)."""


class LivenessError(VisionError):
    """The presentation-attack check failed or could not be completed."""
