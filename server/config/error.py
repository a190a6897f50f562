"""The single exception type of configuration loading."""


class ConfigError(Exception):
    """A configuration that prevents start-up.

    ``str(error)`` is always one line naming the file, the key, the offending value
    and what was expected, because it is what the operator reads on the console.
    """
