"""Account merges: identity_links, the merge service, canonical-user resolution."""
