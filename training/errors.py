"""Errors a user can fix: the CLI prints their message and exits 2, without a traceback."""


class TrainingError(Exception):
    """Base class: the message names the problem and the fix."""


class ConfigError(TrainingError):
    """An option has a value the pipeline cannot use."""


class DataError(TrainingError):
    """The headlines CSV is missing, unreadable or malformed, or cannot be downloaded."""


class EmbeddingsError(TrainingError):
    """Pretrained vectors cannot be found, downloaded or parsed."""


class StopwordsError(TrainingError):
    """NLTK's English stopword list is not installed."""
