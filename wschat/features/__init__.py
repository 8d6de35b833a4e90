"""Features built on the hub, one module each: their frames' handlers, rules and store commands. NO I/O."""
