"""The data keys that seal stored phone numbers (ivr/store/sealed.py): where they are, and rotating them."""
from __future__ import annotations

import click

from ivr.ops.cli.context import change, pass_cli


@click.group()
def keys():
    """The data keys full phone numbers are sealed under (IVR_DATA_KEY or the instance's data.key)."""


@keys.command("status")
@pass_cli
def keys_status(cli):
    """Where the keys are, and how many stored numbers each opens (exit 1 if something needs doing)."""
    from ivr.store.key_rotation import report

    found = report(cli.db)
    click.echo(f"keys from: {found.source or 'nowhere'}" + (f" (mode {found.file_mode})" if found.file_mode else ""))
    click.echo(f"keys held: {len(found.fingerprints)}" + (f" (newest first: {', '.join(found.fingerprints)})"
                                                          if found.fingerprints else ""))
    c = found.counts
    click.echo(f"stored numbers: {c['newest']} under the newest key, {c['older']} under an older key, "
               f"{c['unreadable']} under a key not held here, {c['clear']} in clear")
    for problem in found.problems:
        click.echo(f"problem: {problem}", err=True)
    if found.problems:
        raise SystemExit(1)


@keys.command("rotate")
@change()
def keys_rotate(cli, reason):
    """A new key: every stored number re-encrypted under it; the old keys read until that is done."""
    from ivr.store.key_rotation import rotate

    done = rotate(cli.db, actor=cli.actor, reason=reason)
    click.echo(f"data key {done['new']}: {done['reencrypted']} stored numbers re-encrypted under it")
    if done["unreadable"]:
        click.echo(f"{done['unreadable']} stored numbers were sealed under a key not held here and were left "
                   "as they were", err=True)
    click.echo("old keys dropped from the key file" if done["old_keys_dropped"] else
               "now remove the older keys from IVR_DATA_KEY on every server")
