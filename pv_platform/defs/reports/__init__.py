"""Reports: each site's monthly and yearly owner report (PDF and HTML, e-mailed once), made by the daemon
after the period's KPIs close."""
