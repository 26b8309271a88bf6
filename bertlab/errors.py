"""Error types with messages meant for the person at the keyboard, not for a traceback."""

from __future__ import annotations


class BertlabError(Exception):
    """Base class: every bertlab error carries one clear, user-facing line."""


class InputError(BertlabError, ValueError):
    """The text (or the options) cannot be analysed as given."""


class NoMaskError(InputError):
    """A masked-LM view was asked for, but the text holds no [MASK]."""


class TargetNotFoundError(InputError):
    """The word-sense target does not occur in one of the sentences."""


class ModelLoadError(BertlabError):
    """A checkpoint could not be found, read or loaded."""


class OfflineError(ModelLoadError):
    """The hub cannot be reached and the checkpoint is not in the local cache.

    The message is for the person at the keyboard (a student); `hint` is the operator's command, which the
    command line prints and the app leaves to README."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class NotAnEncoderError(ModelLoadError):
    """The checkpoint is not a BERT-family encoder that bertlab can explain."""


class MissingHeadError(BertlabError):
    """The view needs a head (MLM or NSP) that the checkpoint does not have."""


class Stopped(BertlabError):
    """Long work was stopped by the person waiting for it (a progress callback raised it between chunks)."""


class ResourceError(BertlabError):
    """The device ran out of memory (or another resource) for this input."""
