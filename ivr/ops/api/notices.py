"""Notice campaigns (docs/notify.md): their progress, and send, pause, resume, cancel. Planning one from a
list file is `ivr notify plan` (the list never travels over the API)."""
from __future__ import annotations

from flask import g, jsonify

from ivr.core.errors import NotFound
from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.wire import ID
from ivr.store.notices import campaign_figures, campaign_ids, change_state

# The least role of each action (ivr/ops/roles.py): pausing is the safe way out, sending reaches everyone.
ACTIONS = {"send": "send a notice campaign", "pause": "pause a notice campaign",
           "resume": "pause a notice campaign", "cancel": "send a notice campaign"}


@bp.get("/notices")
@requires("see the hotline")
def notices_list():
    db = hotline().db
    return jsonify(campaigns=[campaign_figures(db, cid) for cid in campaign_ids(db)])


@bp.get(f"/notices/<{ID}:campaign_id>")
@requires("see the hotline")
def notices_get(campaign_id: int):
    figures = campaign_figures(hotline().db, campaign_id)
    if figures is None:
        raise NotFound(f"no campaign {campaign_id}")
    return jsonify(figures)


def _action(action: str) -> None:
    """POST /api/notices/<id>/<action>, audited with the body's reason."""
    def view(campaign_id: int):
        return jsonify(change_state(hotline().db, campaign_id, action, actor=g.user, reason=g.body["reason"]))

    view.__name__ = f"notices_{action}"  # the endpoint's name
    bp.post(f"/notices/<{ID}:campaign_id>/{action}")(requires(ACTIONS[action])(view))


for _name in ACTIONS:
    _action(_name)
