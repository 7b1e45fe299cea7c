"""The enroller: contact state, criteria, enrollment rules, ordered dispatch and delays."""
