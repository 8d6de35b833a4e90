"""Features built on the hub's seam, one module (or a few) per feature. NO I/O.

Each feature owns its handlers (added to `wschat.hub.handlers.HANDLERS`), its rules and its
store commands; the runtime carries out their effects without knowing which feature made them.
"""
