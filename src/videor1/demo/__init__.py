"""`videor1 demo`: the whole pipeline in miniature on a CPU, chaining the real commands."""
