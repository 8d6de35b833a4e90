"""Features built on the hub's seams: each module owns its frames, handlers and rules. NO I/O."""
