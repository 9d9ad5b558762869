"""Errors that the command line turns into one clear line."""


class VigieError(Exception):
    """A usage or configuration error: printed as one line, exit code 3."""


class ObservationError(Exception):
    """The target could not be observed (unreachable, broken): the outcome becomes `error`."""
