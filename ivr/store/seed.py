"""A first incident and announcement, so a fresh hotline answers with something true and useful."""
from __future__ import annotations

from sqlalchemy import func, insert, select

from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import Announcement, Incident, utcnow
from ivr.store.state import bump_content

DEFAULT_TITLE = "Security incident"
DEFAULT_SOURCE = "default"  # Announcement.source of the wording below: a placeholder until replaced

# Placeholder wording an admin replaces on the day; it is honest without claiming facts nobody has yet.
DEFAULT_TEXTS = {
    "en": {
        "main": "We recently discovered a security incident that may involve some of our customers' personal "
                "information. We are investigating with outside experts and have informed the authorities. "
                "We will never call you to ask for your password or card number.",
        "details": "Our investigation is ongoing. When we know which information was involved, this message "
                   "will say so, and customers who are affected will be contacted directly.",
        "advice": "Watch your bank and card statements, and report anything you do not recognise to your bank. "
                  "If you used the same password on our service and elsewhere, change it now. "
                  "Be careful with emails or calls that claim to be from us.",
    },
    "es": {
        "main": "Hemos descubierto recientemente un incidente de seguridad que puede afectar información "
                "personal de algunos de nuestros clientes. Lo estamos investigando con expertos externos y "
                "hemos informado a las autoridades. Nunca lo llamaremos para pedirle su contraseña o el "
                "número de su tarjeta.",
        "details": "Nuestra investigación continúa. Cuando sepamos qué información se vio afectada, este "
                   "mensaje lo dirá, y nos pondremos en contacto directamente con los clientes afectados.",
        "advice": "Revise sus estados de cuenta bancarios y de tarjetas, e informe a su banco de cualquier "
                  "cargo que no reconozca. Si usó la misma contraseña en nuestro servicio y en otros sitios, "
                  "cámbiela ahora. Desconfíe de correos o llamadas que digan ser de nosotros.",
    },
}


def ensure_default_content(db: Database, actor: str = "setup", speak=None) -> bool:
    """Create and publish the default incident and announcements if there is no incident yet.

    `speak(text, lang)`, if given, returns phone-ready audio (ivr.store.announcements.Audio) for each text, or None.
    """
    with db.read() as conn:
        if conn.execute(select(func.count()).select_from(Incident)).scalar_one():
            return False
    spoken = {(lang, topic): speak(text, lang) if speak else None
              for lang, topics in DEFAULT_TEXTS.items() for topic, text in topics.items()}
    with db.write() as conn:
        if conn.execute(select(func.count()).select_from(Incident)).scalar_one():
            return False  # another process seeded it meanwhile
        now = utcnow()
        incident_id = conn.execute(
            insert(Incident).values(title=DEFAULT_TITLE, severity="high", exposed="under investigation",
                                    status="active", created_at=now, updated_at=now)
        ).inserted_primary_key[0]
        for lang, topics in DEFAULT_TEXTS.items():
            for topic, text in topics.items():
                audio = spoken[(lang, topic)]
                conn.execute(insert(Announcement).values(
                    incident_id=incident_id, language=lang, topic=topic, version=1, status="published",
                    text=text, source=DEFAULT_SOURCE, engine=audio.engine if audio else None,
                    media_sha256=audio.sha256 if audio else None, duration_ms=audio.duration_ms if audio else None,
                    created_by=actor, created_at=now, published_at=now,
                ))
        audit(conn, actor=actor, action="announcement.seed", subject=f"incident {incident_id}",
              to_value="default announcement published", reason="first start of the hotline")
        bump_content(conn)
    return True
