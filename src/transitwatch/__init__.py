"""transitwatch: who carries a network's routes, in what share, since when, from public BGP data."""

__version__ = "0.1.0"
