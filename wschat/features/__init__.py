"""Features built on the hub's seams: each module owns its frames, handlers and rules. NO I/O."""

# The hub first, whichever feature module a program imports first: the hub registers the feature
# handlers in a fixed order (accounts' and offline's replacements before moderation wraps them),
# and a feature imported on its own would otherwise reach the hub half-loaded.
import wschat.hub  # noqa: F401
