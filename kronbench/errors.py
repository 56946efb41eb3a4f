"""One exception type for bad user input, so the CLI can print it as a single clear line."""


class KronbenchError(ValueError):
    """Bad input (config key, file, line, module, name). The message names what is wrong and the fix."""
