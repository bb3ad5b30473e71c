"""The privilege model of the schema, applied by the owner on every `migrate` (idempotent, not a
numbered migration): no CREATE for anyone else where the owner's code resolves names, and the
SECURITY DEFINER functions the services call instead of holding more rights."""

# -- the privilege model, applied by the owner on every `migrate` (idempotent, not a numbered migration) --
# No role but the owner creates objects where the owner's code resolves names (CVE-2018-1058): CREATE on
# schema public is revoked from PUBLIC and from every role granted it; schema_migrations is written by
# the owner only. What the services need beyond rows is done by SECURITY DEFINER functions owned by the
# owner, with a pinned search_path and schema-qualified calls.
SECURE_SCHEMA = """
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT DISTINCT a.grantee FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
             WHERE n.nspname = 'public' AND a.privilege_type = 'CREATE' AND a.grantee <> n.nspowner
               AND a.grantee <> 0 AND a.grantee <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
    LOOP
        EXECUTE pg_catalog.format('REVOKE CREATE ON SCHEMA public FROM %I', pg_catalog.pg_get_userbyid(r.grantee));
    END LOOP;
    FOR r IN SELECT DISTINCT a.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
             WHERE c.oid = 'public.schema_migrations'::regclass AND a.grantee <> c.relowner
               AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES')
    LOOP
        EXECUTE pg_catalog.format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES'
            ' ON public.schema_migrations FROM %s',
            CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.grantee)) END);
    END LOOP;
END $$;
"""

# Monthly partitions of `samples` on plain PostgreSQL, created with the owner's rights for whoever
# ingests (creating a partition takes ownership of the parent table). UTC month bounds.
ENSURE_PARTITIONS_FUNCTION = """
CREATE OR REPLACE FUNCTION public.pvp_ensure_samples_partitions(first_ts timestamptz, last_ts timestamptz)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    month timestamp := pg_catalog.date_trunc('month', first_ts AT TIME ZONE 'UTC');
    upper timestamp;
    name text;
    made integer := 0;
BEGIN
    IF first_ts IS NULL OR last_ts IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(7240002);
    WHILE month <= last_ts AT TIME ZONE 'UTC' LOOP
        upper := month + INTERVAL '1 month';
        name := 'samples_y' || pg_catalog.to_char(month, 'YYYY') || 'm' || pg_catalog.to_char(month, 'MM');
        IF pg_catalog.to_regclass('public.' || name) IS NULL THEN
            EXECUTE pg_catalog.format(
                'CREATE TABLE public.%I PARTITION OF public.samples FOR VALUES FROM (%L) TO (%L)',
                name, month::text || '+00', upper::text || '+00');
            made := made + 1;
        END IF;
        month := upper;
    END LOOP;
    RETURN made;
END $$;
REVOKE ALL ON FUNCTION public.pvp_ensure_samples_partitions(timestamptz, timestamptz) FROM PUBLIC;
"""

# Signing an alert off (acknowledge / resolve) is all the dashboards' role may do to `alerts`: this
# function changes the state and the sign-off columns only, never message, severity, rule or the
# alert's own times. Whoever may not UPDATE alerts directly gets the server's clock for the sign-off
# time; the others (the owner, the alert engine's role) may pass their own (accelerated clocks).
SIGN_ALERT_FUNCTION = """
CREATE OR REPLACE FUNCTION public.pvp_sign_alert(
    p_id bigint, p_action text, p_by text, p_comment text, p_at timestamptz)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    signer text := pg_catalog.btrim(coalesce(p_by, ''));
    at timestamptz := CASE WHEN p_at IS NOT NULL
        AND pg_catalog.has_table_privilege(session_user, 'public.alerts', 'UPDATE') THEN p_at
        ELSE pg_catalog.now() END;
    changed integer;
BEGIN
    IF signer = '' OR pg_catalog.length(signer) > 200 THEN
        RAISE EXCEPTION 'an alert is signed off with a name of 1 to 200 characters, got %',
            pg_catalog.quote_literal(pg_catalog.left(signer, 40)) USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.length(coalesce(p_comment, '')) > 2000 THEN
        RAISE EXCEPTION 'a sign-off comment is at most 2000 characters' USING ERRCODE = '22023';
    END IF;
    IF p_action = 'acknowledge' THEN
        UPDATE public.alerts SET state = 'acknowledged', acknowledged_by = signer,
            acknowledged_at = at, ack_comment = coalesce(p_comment, '')
        WHERE id = p_id AND state = 'open';
    ELSIF p_action = 'resolve' THEN
        UPDATE public.alerts SET state = 'resolved', resolved_by = signer, resolved_at = at,
            resolve_comment = coalesce(p_comment, '')
        WHERE id = p_id AND state <> 'resolved';
    ELSE
        RAISE EXCEPTION 'unknown sign-off action %, use acknowledge or resolve',
            pg_catalog.quote_literal(p_action) USING ERRCODE = '22023';
    END IF;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed = 1;
END $$;
REVOKE ALL ON FUNCTION public.pvp_sign_alert(bigint, text, text, text, timestamptz) FROM PUBLIC;
"""
