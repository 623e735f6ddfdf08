from models.api import ApiToken, Notification, NotificationState, NotifyEndpoint
from models.base import Base
from models.deployment import DeploymentSecret
from models.entities import (
    TERMINAL_CHECK,
    TERMINAL_JOB,
    Batch,
    CallbackEvent,
    Check,
    CheckStatus,
    Job,
    JobStatus,
    Marker,
)

__all__ = [
    "TERMINAL_CHECK",
    "TERMINAL_JOB",
    "ApiToken",
    "Base",
    "Batch",
    "CallbackEvent",
    "Check",
    "CheckStatus",
    "DeploymentSecret",
    "Job",
    "JobStatus",
    "Marker",
    "Notification",
    "NotificationState",
    "NotifyEndpoint",
]
