"""Exporting call records: GET /api/calls a page at a time by cursor, GET /api/calls/export as NDJSON, and the
console's calls.csv with the masked number and the reference texted."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import insert

from ivr.store.models import Call, CallEvent
from ivr.store.users import add_user, create_token

DAY = datetime(2026, 11, 30, tzinfo=timezone.utc)


@pytest.fixture
def viewer(hotline):
    add_user(hotline.db, "vera", "viewer", actor="test")
    return {"Authorization": "Bearer " + create_token(hotline.db, "vera", actor="test")}


def add_calls(hotline, starts: list[datetime], prefix: str = "CA") -> list[str]:
    """Calls at these times (several may share one), each with a start step; their sids."""
    sids = [f"{prefix}{i:032d}" for i in range(len(starts))]
    with hotline.db.write() as conn:
        conn.execute(insert(Call), [{"call_sid": sid, "started_at": at, "caller_masked": "***0123",
                                     "outcome": "listening", "status": "completed"} for sid, at in zip(sids, starts)])
        conn.execute(insert(CallEvent), [{"call_sid": sid, "step": "0", "kind": "call_started", "at": at}
                                         for sid, at in zip(sids, starts)])
    return sids


def a_day(hotline) -> list[str]:
    """157 calls inside DAY, ties included (three calls share each of many seconds), and calls either side."""
    inside = [DAY + timedelta(minutes=9 * (i // 3)) for i in range(157)]
    inside[0] = DAY  # the first moment is in the range
    add_calls(hotline, [DAY - timedelta(microseconds=1), DAY + timedelta(days=1)], prefix="CX")
    return add_calls(hotline, inside)


def pages(client, headers, **query):
    """Every page of /api/calls for this query, following next_cursor."""
    out, cursor = [], None
    while True:
        resp = client.get("/api/calls", query_string={**query, **({"cursor": cursor} if cursor else {})},
                          headers=headers)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        out.append([c["call_sid"] for c in body["calls"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def test_paging_a_day_gives_every_call_in_it_exactly_once_newest_first(app, hotline, viewer):
    sids = a_day(hotline)
    got = pages(app.test_client(), viewer, **{"from": "2026-11-30", "to": "2026-12-01", "limit": 20})
    assert [len(p) for p in got] == [20] * 7 + [17]  # a full last page is the last: no empty page after it
    flat = [sid for p in got for sid in p]
    assert sorted(flat) == sorted(sids) and len(set(flat)) == len(flat)
    calls = app.test_client().get("/api/calls", query_string={"from": "2026-11-30", "to": "2026-12-01",
                                                               "limit": 1000}, headers=viewer).get_json()["calls"]
    assert [c["call_sid"] for c in calls] == flat  # the same order however it is paged
    times = [c["started_at"] for c in calls]
    assert times == sorted(times, reverse=True) and times[-1] == "2026-11-30T00:00:00+00:00"


def test_calls_that_arrive_while_a_client_pages_move_nothing(app, hotline, viewer):
    sids = add_calls(hotline, [DAY + timedelta(seconds=i // 2) for i in range(30)])
    client = app.test_client()
    first = client.get("/api/calls?limit=10", headers=viewer).get_json()
    add_calls(hotline, [DAY + timedelta(hours=1), DAY + timedelta(seconds=3)], prefix="CN")  # new, and in the middle
    rest, cursor = [], first["next_cursor"]
    while cursor:
        body = client.get("/api/calls", query_string={"limit": 10, "cursor": cursor}, headers=viewer).get_json()
        rest += [c["call_sid"] for c in body["calls"]]
        cursor = body["next_cursor"]
    seen = [c["call_sid"] for c in first["calls"]] + rest
    assert len(seen) == len(set(seen)) and set(sids) <= set(seen)


@pytest.mark.parametrize("query,count", [
    ({"from": "2026-11-30", "to": "2026-12-01"}, 157),
    ({"from": "2026-11-30T00:00:00Z", "to": "2026-11-30T00:09:00Z"}, 3),  # to is exclusive
    ({"from": "2026-11-30T01:00:00+01:00", "to": "2026-11-30T00:09:00.000001Z"}, 6),  # an offset is honoured
    ({"to": "2026-11-30"}, 1),  # the call a microsecond before the day
    ({"from": "2026-12-01"}, 1),
    ({}, 159),
])
def test_the_range_includes_its_start_and_excludes_its_end(app, hotline, viewer, query, count):
    a_day(hotline)
    got = pages(app.test_client(), viewer, limit=1000, **query)
    assert sum(map(len, got)) == count


@pytest.mark.parametrize("query,names", [
    ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),  # "not a cursor"
    ({"cursor": "%%%"}, "cursor"),
    ({"cursor": "WzEsMl0"}, "cursor"),  # [1,2]: JSON, but not a position
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-13-01"}, "to"),
    ({"from": "2026-12-01", "to": "2026-11-30"}, "to"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "0"}, "limit"),
])
def test_a_bad_cursor_range_or_limit_is_a_400_in_json_naming_it(app, hotline, viewer, query, names):
    for path in ("/api/calls", "/api/calls/export"):
        if path.endswith("export") and ("limit" in query or "cursor" in query):  # it has neither
            continue
        resp = app.test_client().get(path, query_string=query, headers=viewer)
        assert resp.status_code == 400 and resp.is_json, (path, query)
        assert names in resp.get_json()["error"]


def test_the_export_streams_every_call_in_the_range_as_ndjson(app, hotline, viewer):
    a_day(hotline)
    client = app.test_client()
    resp = client.get("/api/calls/export", query_string={"from": "2026-11-30", "to": "2026-12-01"}, headers=viewer)
    assert resp.status_code == 200 and resp.mimetype == "application/x-ndjson" and resp.is_streamed
    exported = [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]
    paged = client.get("/api/calls", query_string={"from": "2026-11-30", "to": "2026-12-01", "limit": 1000},
                       headers=viewer).get_json()["calls"]
    assert exported == paged and len(exported) == 157
    assert exported[0]["caller_masked"] == "***0123" and exported[0]["path"][0]["kind"] == "call_started"


def test_a_call_texted_its_reference_shows_it_in_the_api(app, hotline, viewer, place_call):
    texted = place_call(keys=["4"], caller="+12025550147")
    place_call(keys=["1"], caller="+12025550148")
    calls = app.test_client().get("/api/calls", headers=viewer).get_json()["calls"]
    by_sid = {c["call_sid"]: c for c in calls}
    assert by_sid[texted.call_sid]["sms_reference"].startswith("HL-")
    assert by_sid[texted.call_sid]["caller_masked"] == "***0147"
    assert [c["sms_reference"] for c in calls if c["call_sid"] != texted.call_sid] == [None]
    assert "5550147" not in app.test_client().get("/api/calls/export", headers=viewer).get_data(as_text=True)


@pytest.mark.slow
def test_a_day_is_paged_and_exported_through_ivr_serve(hotline, server):
    sids = set(a_day(hotline))
    add_user(hotline.db, "vera", "viewer", actor="test")
    auth = {"Authorization": "Bearer " + create_token(hotline.db, "vera", actor="test")}
    srv = server()
    day = {"from": "2026-11-30", "to": "2026-12-01"}
    seen, cursor = [], None
    while True:
        body = requests.get(srv.staff_url + "/api/calls", params={**day, "limit": 50, **({"cursor": cursor} if cursor
                                                                                        else {})},
                            headers=auth, timeout=30).json()
        seen += [c["call_sid"] for c in body["calls"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(sids)
    with requests.get(srv.staff_url + "/api/calls/export", params=day, headers=auth, stream=True, timeout=30) as resp:
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        assert [json.loads(line)["call_sid"] for line in resp.iter_lines()] == seen
    bad = requests.get(srv.staff_url + "/api/calls", params={"cursor": "x"}, headers=auth, timeout=30)
    assert bad.status_code == 400 and "cursor" in bad.json()["error"]
