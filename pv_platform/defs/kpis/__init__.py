"""KPIs: hourly KPIs and data-quality checks per UTC hour, site-local day/month/year rollups, the runs
that keep them current and the schedules that close periods."""
