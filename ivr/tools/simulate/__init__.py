"""The simulated caller: Twilio's part, played against the app (`ivr simulate` and the tests).

- transport.py: how requests reach the app (a Flask test client, or HTTP to a running server);
- call.py: the call, signed as Twilio signs and following the TwiML verb by verb;
- hold.py: the hold loop after an <Enqueue>, as Twilio runs it;
- report.py: what the caller heard, and how the call ended;
- paths.py: every key path (`--all-paths`).

It imports nothing of the hotline's web or database layers: it reaches the app over HTTP or a test client.
"""
from ivr.tools.simulate.call import SimulatedCall, TwilioQueues, offered_key
from ivr.tools.simulate.hold import HoldPlan
from ivr.tools.simulate.paths import PathProblem, explore, keys_for_language
from ivr.tools.simulate.report import CallResult, Heard, Secret
from ivr.tools.simulate.transport import FlaskTransport, HttpTransport, Transport

__all__ = ["CallResult", "FlaskTransport", "Heard", "HoldPlan", "HttpTransport", "PathProblem", "Secret",
           "SimulatedCall", "Transport", "TwilioQueues", "explore", "keys_for_language", "offered_key"]
