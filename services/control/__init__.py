"""Commands for people: the local stack, apply, emit, status and the demo."""
