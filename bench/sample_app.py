"""The floor for bench/webhooks.py: bare Flask that reads Twilio's parameters, as any webhook that uses them must.

Twilio's own Python guide answers a call from a Flask view that reads the request's values (the caller's
number, the digits pressed: https://www.twilio.com/docs/voice/tutorials/how-to-respond-to-incoming-phone-calls-python).
Reading them means reading the POST body through gunicorn and parsing it, which bench/bare_app.py never does:
this app does that much and nothing else, so the hotline can be compared with the least a real webhook costs.
"""
from flask import Flask, Response, request

app = Flask(__name__)
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>hi</Say></Response>'


@app.post("/<path:_anything>")
def anything(_anything):
    request.values.get("From")  # Twilio's form, parsed by Werkzeug as a sample app reads it
    return Response(TWIML, mimetype="text/xml")
