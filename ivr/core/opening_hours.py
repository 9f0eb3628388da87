"""When a queue is open, as a moment and as a caller hears it ("We are open Monday to Friday, 8 a.m. to
8 p.m. Eastern time"), from the hours in routing_rules.yaml. Pure: the clock comes in as `now`.

The words are built in for English and Spanish (the shipped languages); a language without its own words
hears the default language's, in the default language's voice, or nothing more if that has none either.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ivr.core.rules import DAYS, Hours, Rules

SEARCH_DAYS = 370  # holidays and a one-day week still open again within a year; beyond that: never
CLOSING_SEARCH_DAYS = 9  # how far ahead an open queue's closing is looked for (open around the clock: none)


def is_open(hours: Hours | None, now: dt.datetime) -> bool:
    return hours is None or hours.is_open(now)


def _local_days(hours: Hours, now: dt.datetime, count: int):
    """`count` days in the queue's own time zone from the day `now` falls on there (any moment of an earlier
    day is before `now`: never the next opening or closing)."""
    zone = ZoneInfo(hours.timezone)
    today = now.astimezone(zone).date()
    for n in range(count):
        yield today + dt.timedelta(days=n), zone


def opens_next(hours: Hours | None, now: dt.datetime) -> dt.datetime | None:
    """When a closed queue opens again (None: it is open now, or never opens)."""
    if is_open(hours, now):
        return None
    for day, zone in _local_days(hours, now, SEARCH_DAYS):
        start = dt.datetime.combine(day, hours.open, zone)
        if start >= now and hours.is_open(start):
            return start
    return None


def closes_next(hours: Hours | None, now: dt.datetime) -> dt.datetime | None:
    """When an open queue closes (None: it is closed now, or always open)."""
    if hours is None or not hours.is_open(now):
        return None
    for day, zone in _local_days(hours, now, CLOSING_SEARCH_DAYS):
        end = dt.datetime.combine(day, hours.close, zone)
        if end > now and not hours.is_open(end):
            return end
    return None


def holiday_today(hours: Hours | None, now: dt.datetime) -> bool:
    return hours is not None and now.astimezone(ZoneInfo(hours.timezone)).date() in hours.holidays


# -- in words ---------------------------------------------------------------------------------------------

ZONES = {  # time zone -> how callers name it
    "en": {"America/New_York": "Eastern time", "America/Detroit": "Eastern time", "America/Toronto": "Eastern time",
           "America/Chicago": "Central time", "America/Denver": "Mountain time", "America/Phoenix": "Mountain time",
           "America/Los_Angeles": "Pacific time", "Europe/London": "UK time", "UTC": "UTC"},
    "es": {"America/New_York": "hora del Este", "America/Detroit": "hora del Este", "America/Toronto": "hora del Este",
           "America/Chicago": "hora del Centro", "America/Denver": "hora de la Montaña",
           "America/Phoenix": "hora de la Montaña", "America/Los_Angeles": "hora del Pacífico",
           "Europe/London": "hora del Reino Unido", "UTC": "hora UTC"},
}
DAY_NAMES = {"en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
             "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")}
# Days listed one by one name every such day: "los sábados y domingos" (the weekdays are the same in Spanish).
EVERY_DAY_NAMES = {"en": DAY_NAMES["en"],
                   "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábados", "domingos")}
MONTHS = {"en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                 "October", "November", "December"),
          "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
                 "octubre", "noviembre", "diciembre")}
SENTENCES = {
    "en": {"open": "We are open {days}, {open} to {close} {zone}.", "every_day": "every day",
           "range": "{first} to {last}", "and": " and ",
           "holiday": "Today is a holiday. We open again on {weekday}, {month} {day}, at {time}."},
    "es": {"open": "Atendemos {days}, de {open} a {close}, {zone}.", "every_day": "todos los días",
           "range": "de {first} a {last}", "and": " y ",
           "holiday": "Hoy es día festivo. Volvemos a atender el {weekday} {day} de {month}, a {time}."},
}


def words_language(rules: Rules, lang: str) -> str | None:
    """The language whose words a caller in `lang` hears the hours in."""
    return lang if lang in SENTENCES else (rules.default_language if rules.default_language in SENTENCES else None)


def spoken_hours(rules: Rules, queue: str, lang: str, now: dt.datetime) -> list[tuple[str, str]]:
    """(text, language) sentences saying when a closed queue is open: its hours, and on a holiday when it
    opens again. Nothing for a queue with no hours (always open), one open on no day (there is nothing true
    to promise), or a language with no words."""
    hours = rules.queues[queue].hours if queue in rules.queues else None
    code = words_language(rules, lang)
    if hours is None or not hours.days or code is None:
        return []
    words = SENTENCES[code]
    zone = ZONES[code].get(hours.timezone) or _city_time(hours.timezone, code)
    said = [(words["open"].format(days=_days(hours, code), open=_time(hours.open, code),
                                  close=_time(hours.close, code), zone=zone), code)]
    reopens = opens_next(hours, now) if holiday_today(hours, now) else None
    if reopens is not None:
        local = reopens.astimezone(ZoneInfo(hours.timezone))
        at = _time(local.time(), code)
        if code == "es" and not (local.minute == 0 and local.hour in (0, 12)):
            at = ("la " if local.hour % 12 == 1 else "las ") + at
        text = words["holiday"].format(weekday=DAY_NAMES[code][local.weekday()], day=local.day,
                                       month=MONTHS[code][local.month - 1], time=at)
        said.append((text.replace("..", "."), code))  # "at 7 a.m." ends the sentence already
    return said


def _city_time(zone: str, code: str) -> str:
    city = zone.rsplit("/", 1)[-1].replace("_", " ")
    return f"{city} time" if code == "en" else f"hora de {city}"


def _days(hours: Hours, code: str) -> str:
    words, names = SENTENCES[code], DAY_NAMES[code]
    indexes = sorted(DAYS.index(d) for d in set(hours.days))
    if len(indexes) == 7:
        return words["every_day"]
    if len(indexes) >= 3 and indexes == list(range(indexes[0], indexes[-1] + 1)):
        return words["range"].format(first=names[indexes[0]], last=names[indexes[-1]])
    listed = [EVERY_DAY_NAMES[code][i] for i in indexes]
    joined = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + words["and"] + listed[-1]
    return ("los " + joined) if code == "es" else ("on " + joined)


def _time(t: dt.time, code: str) -> str:
    """8 a.m., 8:30 p.m., noon; 8 de la mañana, 8:30 de la noche, mediodía."""
    if t.minute == 0 and t.hour in (0, 12):
        return {("en", 0): "midnight", ("en", 12): "noon", ("es", 0): "medianoche", ("es", 12): "mediodía"}[
            (code, t.hour)]
    hour = t.hour % 12 or 12
    clock = f"{hour}" if t.minute == 0 else f"{hour}:{t.minute:02d}"
    if code == "en":
        return f"{clock} {'a.m.' if t.hour < 12 else 'p.m.'}"
    part = "de la mañana" if t.hour < 12 else ("de la tarde" if t.hour < 19 else "de la noche")
    return f"{clock} {part}"


def describe(hours: Hours | None, now: dt.datetime) -> str:
    """For staff: "open until 20:00 America/New_York" or "closed; opens Mon 2026-12-07 08:00 America/New_York"."""
    if hours is None:
        return "always open"
    until = closes_next(hours, now)
    if until is not None:
        return f"open until {until:%a %H:%M} {hours.timezone}"
    if hours.is_open(now):  # open around the clock (opening and closing at the same time)
        return f"open, not closing within {CLOSING_SEARCH_DAYS} days"
    reopens = opens_next(hours, now)
    why = " (holiday)" if holiday_today(hours, now) else ""
    return (f"closed{why}; opens {reopens:%a %Y-%m-%d %H:%M} {hours.timezone}" if reopens
            else f"closed{why}; never opens within a year")
