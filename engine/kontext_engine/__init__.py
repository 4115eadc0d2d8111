"""Kontext's engine: loads FLUX.1 Kontext [dev] once and serves edits over the engine protocol."""

__version__ = "0.1.0"
