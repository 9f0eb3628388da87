"""`python -m ivr.ops.cli`: the `ivr` command where its script is not installed (see ivr/worker/gunicorn_conf.py)."""
from ivr.ops.cli import main

main(prog_name="ivr")
