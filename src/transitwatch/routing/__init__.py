"""Per-peer routing state of the target prefixes, built from RIB dumps and updates."""
