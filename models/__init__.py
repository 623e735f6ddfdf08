from models.base import Base
from models.entities import (
    TERMINAL_CHECK,
    TERMINAL_JOB,
    Batch,
    CallbackEvent,
    Check,
    CheckStatus,
    Job,
    JobStatus,
)

__all__ = [
    "Base", "Batch", "CallbackEvent", "Check", "CheckStatus", "Job", "JobStatus", "TERMINAL_CHECK", "TERMINAL_JOB",
]
