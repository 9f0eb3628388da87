"""One answer to "what does a caller get right now?": a fact changes (a queue's hours, a topic carried over),
and the call itself, `ivr status`, `ivr preflight`, the dashboard and /healthz all say the same. Closed
queues tell callers when they are open, in their own language."""
from __future__ import annotations

import datetime as dt
import html

import pytest

from conftest import AUTH_TOKEN
from ivr.config import PROJECT_ROOT
from ivr.core import go_live, opening_hours
from ivr.core.caller_now import caller_now
from ivr.core.rules import DAYS, load
from ivr.core.snapshot import Content, Snapshot, Spoken
from ivr.ops import caller_view
from ivr.store import incidents
from ivr.store.state import set_mode
from ivr.tools.simulate import FlaskTransport, SimulatedCall
from test_console import as_role, page, users  # noqa: F401  (fixtures)
from test_preflight import ivr  # noqa: F401  (fixture)

SHIPPED = load(PROJECT_ROOT / "routing_rules.yaml")
SUNDAY = dt.datetime(2026, 12, 6, 17, 0, tzinfo=dt.timezone.utc)  # noon in New York: general is closed
CHRISTMAS = dt.datetime(2026, 12, 25, 15, 0, tzinfo=dt.timezone.utc)


def test_the_shipped_hours_in_words_in_english_and_spanish():
    assert opening_hours.spoken_hours(SHIPPED, "general", "en", SUNDAY) == [
        ("We are open Monday to Friday, 8 a.m. to 8 p.m. Eastern time.", "en")]
    assert opening_hours.spoken_hours(SHIPPED, "general", "es", SUNDAY) == [
        ("Atendemos de lunes a viernes, de 8 de la mañana a 8 de la noche, hora del Este.", "es")]
    # On a holiday, when it opens again (the affected queue opens every day at 07:00).
    assert opening_hours.spoken_hours(SHIPPED, "affected", "en", CHRISTMAS)[1] == (
        "Today is a holiday. We open again on Saturday, December 26, at 7 a.m.", "en")
    assert opening_hours.spoken_hours(SHIPPED, "affected", "es", CHRISTMAS)[1] == (
        "Hoy es día festivo. Volvemos a atender el sábado 26 de diciembre, a las 7 de la mañana.", "es")
    assert opening_hours.spoken_hours(SHIPPED, "fraud", "en", SUNDAY) == []  # no hours: always open
    general = SHIPPED.queues["general"]
    closed_always = general.model_copy(update={"hours": general.hours.model_copy(update={"days": []})})
    never = SHIPPED.model_copy(update={"queues": {**SHIPPED.queues, "general": closed_always}})
    # Open on no day: there is no sentence to promise (it was an IndexError that took the dashboard down).
    assert opening_hours.spoken_hours(never, "general", "en", SUNDAY) == []
    assert opening_hours.opens_next(SHIPPED.queues["general"].hours, SUNDAY) == dt.datetime(
        2026, 12, 7, 13, 0, tzinfo=dt.timezone.utc)



def hours_rules(**hours):
    """The shipped rules with the general queue's hours changed."""
    general = SHIPPED.queues["general"]
    changed = general.model_copy(update={"hours": general.hours.model_copy(update=hours)})
    return SHIPPED.model_copy(update={"queues": {**SHIPPED.queues, "general": changed}})


@pytest.mark.parametrize("days, open_, close, english, spanish", [
    (list(DAYS), "00:00", "12:00", "every day, midnight to noon", "todos los días, de medianoche a mediodía"),
    (["mon", "wed", "fri"], "08:30", "18:59", "on Monday, Wednesday and Friday, 8:30 a.m. to 6:59 p.m.",
     "los lunes, miércoles y viernes, de 8:30 de la mañana a 6:59 de la tarde"),
    (["sun", "sat"], "00:30", "19:00", "on Saturday and Sunday, 12:30 a.m. to 7 p.m.",
     "los sábados y domingos, de 12:30 de la mañana a 7 de la noche"),
    (["tue"], "12:05", "23:45", "on Tuesday, 12:05 p.m. to 11:45 p.m.",
     "los martes, de 12:05 de la tarde a 11:45 de la noche"),
    (["thu", "tue", "wed"], "11:59", "12:00", "Tuesday to Thursday, 11:59 a.m. to noon",
     "de martes a jueves, de 11:59 de la mañana a mediodía"),
])
def test_any_hours_in_words_in_english_and_spanish(days, open_, close, english, spanish):
    """Days one by one, a run of three or more, every day; midnight and noon by name; the part of the day in
    Spanish (mañana before noon, tarde until 7 p.m., noche after)."""
    rules = hours_rules(days=days, open=dt.time.fromisoformat(open_), close=dt.time.fromisoformat(close))
    assert opening_hours.spoken_hours(rules, "general", "en", SUNDAY) == [
        (f"We are open {english} Eastern time.", "en")]
    assert opening_hours.spoken_hours(rules, "general", "es", SUNDAY) == [
        (f"Atendemos {spanish}, hora del Este.", "es")]



def test_a_queue_closed_this_morning_opens_today_and_an_open_one_closes_today():
    hours = SHIPPED.queues["general"].hours  # Monday to Friday, 8 a.m. to 8 p.m. New York time
    early = dt.datetime(2026, 12, 2, 11, 0, tzinfo=dt.timezone.utc)  # Wednesday 6 a.m. in New York
    assert opening_hours.opens_next(hours, early) == dt.datetime(2026, 12, 2, 13, 0, tzinfo=dt.timezone.utc)
    noon = dt.datetime(2026, 12, 2, 17, 0, tzinfo=dt.timezone.utc)
    assert opening_hours.closes_next(hours, noon) == dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.timezone.utc)
    assert opening_hours.describe(hours, noon) == "open until Wed 20:00 America/New_York"


def test_staff_read_a_holiday_by_the_queues_own_calendar_and_an_overnight_or_round_the_clock_queue_as_open():
    affected, general = SHIPPED.queues["affected"].hours, SHIPPED.queues["general"].hours  # Christmas off
    assert opening_hours.describe(affected, CHRISTMAS) == "closed (holiday); opens Sat 2026-12-26 07:00 America/New_York"
    christmas_eve = dt.datetime(2026, 12, 25, 2, 0, tzinfo=dt.timezone.utc)  # 9 p.m. on the 24th in New York
    assert opening_hours.describe(general, christmas_eve) == "closed; opens Mon 2026-12-28 08:00 America/New_York"
    assert opening_hours.spoken_hours(SHIPPED, "general", "en", christmas_eve) == [
        ("We are open Monday to Friday, 8 a.m. to 8 p.m. Eastern time.", "en")]  # not "Today is a holiday"
    nights = general.model_copy(update={"open": dt.time(22, 0), "close": dt.time(6, 0), "days": list(DAYS)})
    eleven_pm = dt.datetime(2026, 12, 3, 4, 0, tzinfo=dt.timezone.utc)  # Wednesday 11 p.m. in New York
    assert opening_hours.describe(nights, eleven_pm) == "open until Thu 06:00 America/New_York"
    # Opening and closing at the same time (the rules accept it): around the clock, never "closed".
    around_the_clock = nights.model_copy(update={"open": dt.time(0, 0), "close": dt.time(0, 0), "holidays": []})
    assert opening_hours.describe(around_the_clock, eleven_pm) == "open, not closing within 9 days"
    weekdays = around_the_clock.model_copy(update={"days": ["mon", "tue", "wed", "thu", "fri"]})
    assert opening_hours.describe(weekdays, eleven_pm) == "open until Sat 00:00 America/New_York"


def test_an_evening_queue_west_of_utc_asked_after_midnight_utc_opens_the_same_local_evening():
    """The queue's own day counts, not UTC's: at 5 p.m. in Los Angeles it is already tomorrow in UTC."""
    evenings = SHIPPED.queues["general"].hours.model_copy(update={
        "timezone": "America/Los_Angeles", "open": dt.time(18, 0), "close": dt.time(23, 0)})
    five_pm = dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.timezone.utc)  # Wednesday 5 p.m. in Los Angeles
    assert opening_hours.opens_next(evenings, five_pm) == dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.timezone.utc)
    assert opening_hours.describe(evenings, five_pm) == "closed; opens Wed 2026-12-02 18:00 America/Los_Angeles"
    seven_pm = dt.datetime(2026, 12, 3, 3, 0, tzinfo=dt.timezone.utc)
    assert opening_hours.closes_next(evenings, seven_pm) == dt.datetime(2026, 12, 3, 7, 0, tzinfo=dt.timezone.utc)

def test_on_a_holiday_the_caller_hears_the_day_and_hour_it_opens_again_in_either_language():
    """At 1 p.m. ("a la 1" in Spanish, one o'clock being singular), noon, and on a day after a weekend."""
    one_pm = hours_rules(days=list(DAYS), open=dt.time(13, 0), close=dt.time(17, 0))
    assert opening_hours.spoken_hours(one_pm, "general", "en", CHRISTMAS)[1:] == [
        ("Today is a holiday. We open again on Saturday, December 26, at 1 p.m.", "en")]
    assert opening_hours.spoken_hours(one_pm, "general", "es", CHRISTMAS)[1:] == [
        ("Hoy es día festivo. Volvemos a atender el sábado 26 de diciembre, a la 1 de la tarde.", "es")]
    noon = hours_rules(days=["mon"], open=dt.time(12, 0), close=dt.time(17, 0))
    assert opening_hours.spoken_hours(noon, "general", "en", CHRISTMAS)[1:] == [
        ("Today is a holiday. We open again on Monday, December 28, at noon.", "en")]
    assert opening_hours.spoken_hours(noon, "general", "es", CHRISTMAS)[1:] == [
        ("Hoy es día festivo. Volvemos a atender el lunes 28 de diciembre, a mediodía.", "es")]
    assert opening_hours.spoken_hours(noon, "general", "fr", CHRISTMAS)[0][1] == "en"  # no words: the default
    midnight = hours_rules(days=["sat"], open=dt.time(0, 0), close=dt.time(6, 0))
    assert opening_hours.spoken_hours(midnight, "general", "es", CHRISTMAS)[1:] == [
        ("Hoy es día festivo. Volvemos a atender el sábado 26 de diciembre, a medianoche.", "es")]
    one_am = hours_rules(days=["sat"], open=dt.time(1, 0), close=dt.time(6, 0))
    assert opening_hours.spoken_hours(one_am, "general", "es", CHRISTMAS)[1][0].endswith(
        "a la 1 de la mañana.")

def test_a_time_zone_with_no_name_of_its_own_is_said_as_its_citys_time():
    """Hours in a zone callers have no everyday name for (not in ZONES) are said by its city, in each language."""
    general = SHIPPED.queues["general"]
    away = general.model_copy(update={"hours": general.hours.model_copy(
        update={"timezone": "America/Argentina/Buenos_Aires"})})
    rules = SHIPPED.model_copy(update={"queues": {**SHIPPED.queues, "general": away}})
    assert opening_hours.spoken_hours(rules, "general", "en", SUNDAY) == [
        ("We are open Monday to Friday, 8 a.m. to 8 p.m. Buenos Aires time.", "en")]
    assert opening_hours.spoken_hours(rules, "general", "es", SUNDAY) == [
        ("Atendemos de lunes a viernes, de 8 de la mañana a 8 de la noche, hora de Buenos Aires.", "es")]
    no_city = hours_rules(timezone="EST")  # a zone name with no region: said as it is
    assert opening_hours.spoken_hours(no_city, "general", "en", SUNDAY)[0][0].endswith("8 p.m. EST time.")


def close_general_today(rules_file) -> str:
    """General open only on a weekday that is not today (New York time), 8 a.m. to 8 p.m."""
    today = dt.datetime.now(dt.timezone.utc).astimezone(opening_hours.ZoneInfo("America/New_York")).weekday()
    other = (today + 3) % 7
    rules_file.write_text(rules_file.read_text().replace(
        "    overflow: voicemail",
        "    hours: {timezone: America/New_York, open: '08:00', close: '20:00', days: [%s]}\n"
        "    overflow: voicemail" % DAYS[other]))
    return opening_hours.DAY_NAMES["en"][other], opening_hours.DAY_NAMES["es"][other]


def said_in(result, language: str) -> list[str]:
    return [(say.text or "").strip() for doc in result.documents for say in doc.iter("Say")
            if say.get("language") == language]


def test_a_caller_reaching_a_closed_queue_hears_when_it_is_open_in_their_language(app, hotline, rules_file):
    en_day, es_day = close_general_today(rules_file)
    set_mode(hotline.db, "live", reason="test", actor="test")
    english = said_in(SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["0"]).run(), "en-US")
    closed = english.index("Our team is not available right now.")
    assert english[closed + 1:closed + 3] == [f"We are open on {en_day}, 8 a.m. to 8 p.m. Eastern time.",
                                              "Please leave your name, a phone number and a short message after "
                                              "the tone, then press the pound key."]  # general's overflow
    spanish = said_in(SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["3", "0"]).run(), "es-US")
    closed = spanish.index("Nuestro equipo no está disponible en este momento.")
    assert spanish[closed + 1] == f"Atendemos los {es_day}, de 8 de la mañana a 8 de la noche, hora del Este."


@pytest.fixture
def surfaces(app, hotline, ivr, as_role):
    """surfaces() -> what each surface says: the core's answer for key 0 in English, `ivr status`, `ivr
    preflight`, the dashboard and /healthz."""
    viewer = as_role("viewer")

    def read() -> dict:
        return {"core": caller_view.of_hotline(hotline).now.language("en").key("0").gets,
                "status": ivr("status").output, "preflight": ivr("preflight", ok=False).output,
                "dashboard": html.unescape(page(viewer.get("/console/"))),
                "health": app.test_client().get("/healthz").get_json()}

    return read


def test_every_surface_tells_what_key_0_gets_when_the_queue_closes(hotline, rules_file, surfaces):
    set_mode(hotline.db, "live", reason="test", actor="test")
    open_now = surfaces()
    assert open_now["core"] == "waits in queue general for an agent (it is always open)"
    close_general_today(rules_file)
    closed = surfaces()
    gets = closed["core"]
    assert gets.startswith("is asked to leave a voicemail: queue general is closed; opens ")
    assert f"en key 0 (agent): {gets}" in closed["status"]
    # A caller ID on the breach list gets what everyone gets (issue 23 item 2): nothing else to show.
    assert f"Key 0: a caller {gets}." in closed["dashboard"] and "on the breach list" not in closed["dashboard"]
    assert "Key 0 puts callers in the queue" not in closed["dashboard"]
    assert closed["health"]["keys"]["en"]["0"] == gets
    assert closed["health"]["queues"]["general"] == gets.split("queue general is ")[1]
    assert f"- queue general is {closed['health']['queues']['general']}; callers pressing 0 get voicemail" \
        in closed["preflight"]
    assert f"<td class=\"queue-hours\">{closed['health']['queues']['general']}</td>" in closed["dashboard"]


def test_every_surface_names_a_topic_carried_over_to_a_new_incident(hotline, surfaces):
    before = surfaces()
    assert "es/details: carried over" not in before["preflight"]
    new = incidents.create(hotline.db, title="Card data theft", severity="critical", exposed="card numbers",
                           severities=["low", "medium", "high", "critical"], actor="test", activate=True,
                           reason="test", languages=["en", "es"], carry_over=True)
    after = surfaces()
    why = "carried over from the incident before"
    assert new and after["health"]["stand_ins"]["es/details"] == why
    assert f"- es/details: {why}" in after["preflight"] and f"stand-in: es/details: {why}" in after["status"]
    assert f'<li data-topic="es/details">es/details: {why}</li>' in after["dashboard"]
    assert caller_view.of_hotline(hotline).now.language("es").key("1").gets == f"hears es/details v1 ({why})"


def snapshot(**spoken) -> Snapshot:
    """Published topics by "lang_topic": (text, media, version, source, published_at)."""
    return Snapshot("message", Content(1, 2, "Card data theft", "critical",
                                       {k.replace("_", "/"): Spoken(*v) for k, v in spoken.items()}))


def test_a_topic_published_before_the_main_statement_and_a_rollback_in_one_language_are_named():
    snap = snapshot(en_main=("Cards were taken.", None, 3, "tts", 300.0), en_details=("We know little.", None, 1,
                    "tts", 100.0), en_advice=("Cancel your card.", None, 2, "tts", 400.0),
                    es_main=("Se robaron tarjetas.", None, 2, "tts", 200.0),
                    es_details=("Detalles.", None, 1, "tts", 200.0), es_advice=("Cancele.", None, 1, "tts", 250.0))
    now = caller_now(SHIPPED, snap, SUNDAY)
    # es/details was published with the main statement (one publication, one moment), es/advice after it.
    assert [(t.name, t.stand_in) for t in now.stand_ins()] == [
        ("en/details", "published before the main statement (v3): it may no longer agree with it")]
    facts = go_live.Facts("message", 0, True, None, {"en": 10.0, "es": 10.0}, 45.0)
    kinds = [p.kind for p in go_live.problems(now, SHIPPED, facts)]
    assert kinds == ["stand-in", "out-of-step"]  # en main v3, es main v2: after a rollback, say
    assert "languages out of step: en main v3, es main v2" in str(go_live.problems(now, SHIPPED, facts)[1])


@pytest.mark.slow
def test_under_ivr_serve_the_switch_the_call_and_healthz_agree_that_the_queue_is_closed(config, rules_file, server):
    import requests

    from conftest import server_env
    from ivr.tools.simulate import HttpTransport
    from test_server import run_ivr

    en_day, es_day = close_general_today(rules_file)
    srv = server(workers=2)
    env = server_env(config)
    refused = run_ivr(env, "mode", "set", "live", "--reason", "agents on shift", check=False)
    assert refused.returncode == 1 and "- queue general is closed; opens " in refused.stdout
    run_ivr(env, "mode", "set", "live", "--reason", "agents on shift", "--override", "voicemail covers it")
    english = said_in(SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["0"]).run(), "en-US")
    assert f"We are open on {en_day}, 8 a.m. to 8 p.m. Eastern time." in english
    spanish = said_in(SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["3", "0"]).run(), "es-US")
    assert f"Atendemos los {es_day}, de 8 de la mañana a 8 de la noche, hora del Este." in spanish
    for _ in range(4):  # every worker says the same
        keys = requests.get(srv.url + "/healthz", timeout=10).json()["keys"]
        assert keys["en"]["0"].startswith("is asked to leave a voicemail: queue general is closed; opens ")
        assert keys["es"]["0"] == keys["en"]["0"]


def test_a_topic_with_nothing_published_says_what_callers_hear_instead():
    snap = snapshot(en_main=("Cards were taken.", None, 1, "tts", 1.0), en_details=("Names too.", None, 1, "tts", 2.0),
                    es_main=("Se robaron tarjetas.", None, 1, "tts", 1.0))
    now = caller_now(SHIPPED, snap, SUNDAY)
    stand_ins = {t.name: t.stand_in for t in now.stand_ins()}
    assert stand_ins == {"en/advice": "nothing published: callers hear en/main v1 instead",
                         "es/details": "nothing published: callers hear en/details v1 instead",
                         "es/advice": "nothing published: callers hear es/main v1 instead"}
    assert now.language("es").key("1").gets == "hears en/details v1: nothing is published on details in es"


def test_the_answer_says_which_snapshot_it_is_when_each_queue_changes_and_each_language_by_name():
    """What `ivr status`, the dashboard and the supervisor's view read off it: the mode and incident, whether
    the database could be read, each queue's next opening or closing, each language's name."""
    from zoneinfo import ZoneInfo

    from ivr.core.caller_now import TopicNow

    stale = Snapshot("live", Content(4, 2, "Card data theft", "critical", {}), False)
    now = caller_now(SHIPPED, stale, SUNDAY)  # noon on a Sunday in New York
    assert (now.at, now.mode, now.incident_id, now.incident_title, now.fresh) == (
        SUNDAY, "live", 2, "Card data theft", False)
    assert caller_view.lines(caller_view.View(now, [], "live"))[0] == (
        "live mode, incident 2 (Card data theft), at 2026-12-06 17:00 UTC (database unreachable: from the last "
        "good snapshot)")
    fresh = caller_now(SHIPPED, Snapshot("message", Content(), True), SUNDAY)
    assert caller_view.lines(caller_view.View(fresh, [], "live"))[0] == (
        "message mode, no active incident, at 2026-12-06 17:00 UTC")
    new_york = ZoneInfo("America/New_York")
    assert [(q.name, q.open, q.closes, q.opens) for q in now.queues] == [
        ("fraud", True, None, None),  # no hours: always open
        ("affected", True, dt.datetime(2026, 12, 6, 23, 0, tzinfo=new_york), None),  # every day, 7 a.m. to 11 p.m.
        ("general", False, None, dt.datetime(2026, 12, 7, 8, 0, tzinfo=new_york))]  # weekdays from 8 a.m.
    assert [(language.lang, language.name) for language in now.languages] == [("en", "English"), ("es", "Español")]
    # Nothing published at all: a caller asking for any topic hears only that nothing is known yet.
    assert now.language("es").topics[1] == TopicNow("es", "details", None,
                                                    "only the prompt saying nothing is known yet", "nothing published")
    # Key 4 keeps its promise unless SMS is said not to be configured.
    assert now.language("en").key("4").gets == "is promised a text message"
    assert caller_now(SHIPPED, stale, SUNDAY, sms_ready=False).language("es").key("4").gets == (
        "is promised a text message, but SMS is not configured: no text is sent")


def test_the_setup_wording_is_a_stand_in_even_where_it_was_published_before_it_was_marked(hotline):
    from sqlalchemy import update

    from ivr.store.models import Announcement
    from ivr.store.state import bump_content

    with hotline.db.write() as conn:  # a database from before: the seed's rows say "tts"
        conn.execute(update(Announcement).values(source="tts"))
        bump_content(conn)
    stand_ins = {t.name: t.stand_in for t in caller_view.of_hotline(hotline).now.stand_ins()}
    assert stand_ins["en/main"] == stand_ins["es/advice"] == "the default wording from setup"
