"""The plant file's sites and devices in the database, and what is stored per site."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from pv_platform.plant import Plant

if TYPE_CHECKING:
    from pv_platform.storage.database import Database


class PlantStore:
    """The `sites` and `devices` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def sync(self, plant: Plant) -> None:
        """Upsert sites and devices from the plant file."""
        with self.db.engine.begin() as conn:
            for site in plant.sites:
                conn.execute(
                    sa.text(
                        "INSERT INTO sites (id, name, latitude, longitude, altitude_m, timezone, tilt_deg, azimuth_deg)"
                        " VALUES (:id, :name, :latitude, :longitude, :altitude_m, :timezone, :tilt_deg, :azimuth_deg)"
                        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, latitude = EXCLUDED.latitude,"
                        " longitude = EXCLUDED.longitude, altitude_m = EXCLUDED.altitude_m,"
                        " timezone = EXCLUDED.timezone, tilt_deg = EXCLUDED.tilt_deg,"
                        " azimuth_deg = EXCLUDED.azimuth_deg, updated_at = now()"
                    ),
                    site.model_dump(exclude={"devices"}),
                )
                for device in site.devices:
                    conn.execute(
                        sa.text(
                            "INSERT INTO devices (site_id, id, kind, integration, p_dc_kw, p_ac_kw, gamma_pdc_per_c)"
                            " VALUES (:site_id, :id, :kind, :integration, :p_dc_kw, :p_ac_kw, :gamma_pdc_per_c)"
                            " ON CONFLICT (site_id, id) DO UPDATE SET kind = EXCLUDED.kind,"
                            " integration = EXCLUDED.integration, p_dc_kw = EXCLUDED.p_dc_kw,"
                            " p_ac_kw = EXCLUDED.p_ac_kw, gamma_pdc_per_c = EXCLUDED.gamma_pdc_per_c"
                        ),
                        {"site_id": site.id, **device.model_dump(exclude={"config", "name"})},
                    )

    def site_t_ref_nrel(self) -> dict[str, float]:
        """Stored typical-year reference cell temperature per site [°C] (NREL weather-corrected PR)."""
        df = self.db.query_df("SELECT id, t_ref_nrel_c FROM sites WHERE t_ref_nrel_c IS NOT NULL")
        return {row.id: float(row.t_ref_nrel_c) for row in df.itertuples()}

    def set_site_t_ref_nrel(self, site_id: str, t_ref_c: float) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE sites SET t_ref_nrel_c = :t WHERE id = :id"),
                {"t": t_ref_c, "id": site_id},
            )
