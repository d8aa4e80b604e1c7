"""shelfrank: a personalized homepage engine for online stores."""

__version__ = "0.1.0"
