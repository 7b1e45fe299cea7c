"""Commands for people: the local broker, the local stack, apply, emit, status and the demo."""
