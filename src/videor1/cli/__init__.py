"""The `videor1` command: one subcommand per stage, each calling the module that owns the work.

- `common`: the app, its consoles and the error exit;
- `options`: commands whose options are built from their typed config (`--config`, `key=value`, `--check`);
- `data`: record files (validate, stats, mix, synth, import-bench), `prompt`, `model tiny`;
- `train`: the training stages, `rl` and `sft` (loaded when invoked);
- `generate`: commands that run a model: `eval`, `eval-judge`, `infer`, `annotate`, `serve` (loaded when
  invoked);
- `stages`: `doctor`, `demo`.

Heavy imports happen inside the commands, so that `videor1 --help` answers at once.
"""

from videor1.cli import data, stages  # noqa: F401  (registers the commands; generate: LAZY)
from videor1.cli.common import app

__all__ = ["app"]
