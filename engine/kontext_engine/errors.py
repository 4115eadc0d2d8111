"""The engine's error catalogue: every failure a client sees carries one of these codes."""

from typing import Literal

ErrorCode = Literal[
    "malformed_message",
    "unsupported_version",
    "unknown_type",
    "invalid_request",
    "input_missing",
    "duplicate_job",
    "cancelled",
    "shutting_down",
    "content_flagged",
    "lora_not_found",  # a requested LoRA name is not a file in the LoRA directory (field `loras`)
    "lora_invalid",  # the LoRA file is not a readable safetensors file
    "lora_unmatched",  # under 90 % of the LoRA's modules match a layer of this model (docs/loras.md)
    "internal",
]

# Why the engine could not start: the `code` of its `fatal` message (docs/protocol.md).
FatalCode = Literal["config_invalid", "device_unavailable", "load_failed"]


class EngineError(Exception):
    """A failure reported to the gateway as an `error` message (docs/protocol.md)."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None):
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.field = field


class ModelDirError(Exception):
    """The weights directory is incomplete or not FLUX.1 Kontext; the message names the file."""
