"""The one exception type the CLI turns into a single clear line and a non-zero exit."""


class EsdiffError(Exception):
    """A problem with the user's input or environment (bad file, bad option, bad checkpoint)."""
