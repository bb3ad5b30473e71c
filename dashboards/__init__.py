"""Panel dashboards (`panel serve dashboards/app.py`)."""
