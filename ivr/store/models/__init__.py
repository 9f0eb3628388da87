"""The hotline's tables as SQLAlchemy 2.0 typed models, one module per aggregate; Alembic migrations create them.

Importing this package registers every table with `Base.metadata` (migrations and tests rely on that).
"""
from ivr.core.snapshot import MODES, TOPICS
from ivr.store.models.affected import AffectedImport, AffectedNumber, AffectedReference, VerificationAttempt
from ivr.store.models.base import Base, UTCDateTime, utcnow
from ivr.store.models.calls import Call, CallEvent
from ivr.store.models.content import Announcement, BriefingVersion, Incident, Media, TTSCacheEntry
from ivr.store.models.hotline import AuditEntry, HotlineState, Job
from ivr.store.models.notices import NoticeCampaign, NoticeOptOut, NoticeRecipient
from ivr.store.models.queues import Callback, QueueEntry, WrapUp
from ivr.store.models.schedule import ScheduledChange
from ivr.store.models.staff import Agent, ApiToken, ConsoleSession, LoginFailure, PinFailure, PinLock, SignInPass, User

__all__ = ["AffectedImport", "AffectedNumber", "AffectedReference", "Agent", "Announcement", "ApiToken", "AuditEntry", "Base",
           "BriefingVersion", "Call", "CallEvent", "Callback", "ConsoleSession", "HotlineState", "Incident", "Job",
           "LoginFailure", "MODES", "Media", "NoticeCampaign", "NoticeOptOut", "NoticeRecipient", "PinFailure", "PinLock", "QueueEntry", "ScheduledChange", "SignInPass", "TOPICS", "TTSCacheEntry", "UTCDateTime", "User", "VerificationAttempt", "WrapUp",
           "utcnow"]
