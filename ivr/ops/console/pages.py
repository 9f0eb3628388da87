"""Every console page, imported once so their routes land on the blueprint."""
from ivr.ops.console import (  # noqa: F401
    agents_page,
    announcements_page,
    audit_page,
    login_page,
    briefing_page,
    callbacks_page,
    calls_page,
    dashboard,
    desk_page,
    reports_page,
    incidents_page,
    jobs_page,
    notices_page,
    rules_page,
    users_page,
)
