"""`python -m healthscore.cli`: the same app as the `healthscore` command."""

from healthscore.cli.main import app

app()
