import gc

# Start-up makes only what lives as long as the process (modules, classes, the parser):
# a cycle collection meanwhile finds nothing and costs a fetch ~5% of its command's CPU.
# entry() freezes what start-up made and turns collection back on before the command runs.
gc.disable()

from contentd.cli import entry  # noqa: E402

entry()
