"""Pure rules of Tracklane: standard library only, no I/O, no clock, no environment."""
