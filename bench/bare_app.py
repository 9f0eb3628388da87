"""The baseline for bench/webhooks.py: a bare Flask app answering constant TwiML, nothing else.

/voice/incoming is the route the hotline's incoming webhook is compared with; every other POST (the rest of a
complete call: the menu key, the status callback) gets the same answer, for the floor of a whole call.
"""
from flask import Flask, Response

app = Flask(__name__)
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>hi</Say></Response>'


@app.post("/voice/incoming")
def incoming():
    return Response(TWIML, mimetype="text/xml")


@app.post("/<path:_anything>")
def anything(_anything):
    return Response(TWIML, mimetype="text/xml")
