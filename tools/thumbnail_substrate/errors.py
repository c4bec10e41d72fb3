class SubstrateError(RuntimeError):
    """A component could not start; the message is one line that says what to do."""
