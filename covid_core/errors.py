"""Exception classes. Every message says what is wrong and how to fix it."""


class CovidCoreError(Exception):
    """Base class for errors a user can act on (shown without a traceback)."""


class InvalidImageError(CovidCoreError):
    """A file that is not a usable chest X-ray image (corrupt, empty, too large, ...)."""


class DatasetError(CovidCoreError):
    """A data folder or metadata CSV that cannot be read as a data set."""


class UnreadableImages(DatasetError):
    """Images of a data set that could not be decoded; ``paths`` lists them all (the message names the first few)."""

    def __init__(self, message: str, paths: list[str]):
        super().__init__(message)
        self.paths = paths


class CheckpointError(CovidCoreError):
    """A checkpoint file that cannot be loaded (corrupt, foreign, unsafe)."""


class ConfigError(CovidCoreError):
    """An invalid option value (unknown model, absurd epoch count, ...)."""


class PretrainedWeightsUnavailable(CovidCoreError):
    """ImageNet weights were asked for but cannot be downloaded or found locally."""
