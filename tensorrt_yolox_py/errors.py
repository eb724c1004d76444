"""Exception types raised by the core, so adapters can tell bad input from bad setup."""


class YoloxError(Exception):
    """Base class of every error raised by tensorrt_yolox_py."""


class InputError(YoloxError, ValueError):
    """An input image (or tensor) does not satisfy a stage's contract."""


class ModelContractError(YoloxError, ValueError):
    """A model file exists but does not fit the YOLOX input/output contract."""


class ParameterError(YoloxError, ValueError):
    """A parameter value is invalid; ``name`` is the parameter's name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"parameter '{name}': {message}")
        self.name = name


class MissingDependencyError(YoloxError, ImportError):
    """An optional dependency needed by the chosen feature is not installed."""


class FileError(YoloxError, OSError):
    """A file named by the configuration is missing, unreadable or not what it must be.

    ``path`` is the file; the message names it. Model, label, cameras and parameter files
    raise it, so adapters can give file problems their own exit status (see
    ``ros.lifecycle``).
    """

    def __init__(self, path: object, message: str) -> None:
        super().__init__(message)
        self.path = str(path)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''
