"""MDR reporting service: Message Detail Record reports over the carrier's public API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
