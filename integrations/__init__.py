"""Device integrations, one package each, registered through the `pv_platform.integrations` entry points."""
