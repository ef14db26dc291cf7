"""safecity: open, self-hosted, accountable video analytics for city camera networks."""

__version__ = "0.1.0"
