"""One module per ``unetblur`` verb. Each defines ``register(subparsers)`` which adds its parser and
sets ``func`` to a ``run(args) -> int`` that builds a config and calls one library function."""
