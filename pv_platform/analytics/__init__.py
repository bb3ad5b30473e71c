"""Loss analytics: data-quality masks, soiling, degradation and the loss waterfall.

Pure functions on numpy/pandas (and pvlib for the sun), no Dagster, no database — like `pv_platform.kpi`.
A detector takes a series and returns a boolean mask of the same index (the pvanalytics convention);
what a flagged sample means (a check, an alert, a band on a chart) is decided by the caller.
"""
