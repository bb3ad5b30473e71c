"""Owner reports: a site's monthly and yearly report as PDF and HTML, and their e-mail delivery."""
