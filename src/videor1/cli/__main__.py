"""`python -m videor1.cli …`, e.g. under `accelerate launch -m videor1.cli rl …`."""

from videor1.cli import app

app()
