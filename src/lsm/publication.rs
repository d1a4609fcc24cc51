//! Publications of `lsm` tables. With `strata` in
//! `shared_preload_libraries` their changes are decoded from Strata's own
//! row records ([`super::logical`]) and publications take them like heap
//! tables. Loaded by `CREATE EXTENSION` alone, Strata logs GenericXLog
//! records, which logical decoding cannot decode; so that nobody is misled
//! by a publication that silently ships nothing, an event trigger then
//! refuses to publish an `lsm` table by name (0A000) and warns when a FOR
//! ALL TABLES or FOR TABLES IN SCHEMA publication covers one.

#[pgrx::pg_schema]
mod strata {
    use pgrx::prelude::*;

    /// Whether this server decodes `lsm` changes for logical replication
    /// (Strata's resource manager is registered: `strata` was preloaded).
    #[pg_extern(parallel_safe)]
    fn lsm_logical_decoding() -> bool {
        crate::pg::wal::registered()
    }
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION strata.lsm_publication_check() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF strata.lsm_logical_decoding() THEN
        RETURN;
    END IF;
    FOR r IN
        SELECT p.pubname, c.oid::regclass AS rel
        FROM pg_publication p
        JOIN pg_publication_rel pr ON pr.prpubid = p.oid
        JOIN pg_class c ON c.oid = pr.prrelid
        JOIN pg_am a ON a.oid = c.relam
        WHERE a.amname = 'lsm'
          AND (p.oid IN (SELECT objid FROM pg_event_trigger_ddl_commands())
               OR pr.oid IN (SELECT objid FROM pg_event_trigger_ddl_commands()))
    LOOP
        RAISE EXCEPTION 'lsm table % cannot be added to publication %', r.rel, r.pubname
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'strata is not in shared_preload_libraries: lsm tables are WAL-logged with generic WAL records, which logical decoding does not decode.',
                  HINT = 'Add strata to shared_preload_libraries and restart the server.';
    END LOOP;
    FOR r IN
        SELECT DISTINCT p.pubname, c.oid::regclass AS rel
        FROM pg_publication p
        JOIN pg_class c ON c.relkind = 'r'
        JOIN pg_am a ON a.oid = c.relam AND a.amname = 'lsm'
        LEFT JOIN pg_publication_namespace pn ON pn.pnpubid = p.oid AND pn.pnnspid = c.relnamespace
        WHERE (p.puballtables OR pn.pnpubid IS NOT NULL)
          AND (p.oid IN (SELECT objid FROM pg_event_trigger_ddl_commands())
               OR pn.oid IN (SELECT objid FROM pg_event_trigger_ddl_commands()))
          AND c.relnamespace <> 'pg_catalog'::regnamespace
    LOOP
        RAISE WARNING 'publication % covers lsm table %, whose changes logical replication will not carry', r.pubname, r.rel
            USING HINT = 'Add strata to shared_preload_libraries and restart the server: without it lsm tables are WAL-logged with generic WAL records, which logical decoding does not decode.';
    END LOOP;
END $$;
CREATE EVENT TRIGGER strata_lsm_publication ON ddl_command_end
    WHEN TAG IN ('CREATE PUBLICATION', 'ALTER PUBLICATION')
    EXECUTE FUNCTION strata.lsm_publication_check();
"#,
    name = "lsm_publication_check",
    requires = ["strata_schema_usage", strata::lsm_logical_decoding]
);
