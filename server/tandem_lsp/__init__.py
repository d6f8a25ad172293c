"""Tandem: a language server with a local model for every keystroke and the cloud for hard problems."""

__version__ = "0.1.0"
