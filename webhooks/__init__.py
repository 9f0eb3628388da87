"""Twilio-facing HTTP: the /voice/* webhooks (signed by Twilio) and the media they play."""
