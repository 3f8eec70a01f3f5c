"""Errors that carry a message meant for the user; the CLI prints them without a traceback."""


class TwoTowerError(Exception):
    """Base class of errors whose message names the problem and the fix."""


class IngestionError(TwoTowerError):
    """Raw input cannot be read or split (bad header, bad time feature, no files)."""


class DataValidationError(TwoTowerError):
    """ExampleValidator found anomalies, or a split is empty; the run stops before training."""


class NegativePoolError(TwoTowerError):
    """The negative pool cannot be built (empty catalogue, empty train split, wrong splits)."""


class ConfigError(TwoTowerError, ValueError):
    """A config field is unknown, of the wrong type, or out of range."""


class TrainingError(TwoTowerError):
    """Training stopped (e.g. a worker of a multi-worker Trainer was lost); nothing exported."""
