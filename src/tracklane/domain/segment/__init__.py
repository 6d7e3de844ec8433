"""Segment-compatible intake: message normalisation, source mapping settings and presets, the mapping of a
message to what it means for attribution and customers, and customer metrics. Pure: standard library only."""
