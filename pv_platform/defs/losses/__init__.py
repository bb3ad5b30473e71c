"""Losses: soiling, degradation and the loss waterfall of each site from its daily KPIs, with the
site-level detectors (POA against the clear sky, clock against the sun) as asset checks."""
