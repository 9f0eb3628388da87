"""The baseline for bench/webhooks.py: a bare Flask app answering constant TwiML, nothing else."""
from flask import Flask, Response

app = Flask(__name__)
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>hi</Say></Response>'


@app.post("/voice/incoming")
def incoming():
    return Response(TWIML, mimetype="text/xml")
