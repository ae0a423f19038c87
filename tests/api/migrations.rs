use diesel::prelude::*;
use diesel_migrations::MigrationHarness;

use crate::helpers::TestDatabase;

#[derive(QueryableByName, Debug, PartialEq)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Text)]
    line: String,
}

/// Tables, columns, constraints and indexes of the public schema, as sorted text lines.
fn schema(conn: &mut PgConnection) -> Vec<String> {
    let sql = "
        SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
               || ' ' || coalesce(column_default, '') AS line
          FROM information_schema.columns WHERE table_schema = 'public'
        UNION ALL
        SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace = 'public'::regnamespace
        UNION ALL
        SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
        UNION ALL
        SELECT 'trigger ' || event_object_table || ' ' || trigger_name || ' ' || event_manipulation
          FROM information_schema.triggers WHERE trigger_schema = 'public'
        UNION ALL
        SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
        ORDER BY 1";
    diesel::sql_query(sql)
        .load::<Line>(conn)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .filter(|l| !l.contains("__diesel_schema_migrations"))
        .collect()
}

#[test]
fn migrations_run_up_down_and_up_again() {
    let db = TestDatabase::empty();
    let mut conn = db.connect();
    assert!(schema(&mut conn).is_empty());

    let applied = pixie::db::migrate(&mut conn).unwrap();
    assert!(!applied.is_empty());
    let first = schema(&mut conn);
    for table in [
        "users",
        "tasks",
        "events",
        "memories",
        "conversations",
        "messages",
        "vector_outbox",
    ] {
        assert!(
            first.iter().any(|l| l.starts_with(&format!("{table}."))),
            "{table} missing"
        );
    }
    // Every listing query has its index.
    for index in [
        "tasks_user_created_idx",
        "tasks_user_status_created_idx",
        "events_user_start_idx",
        "memories_user_created_idx",
        "conversations_user_updated_idx",
        "messages_conversation_created_idx",
        "messages_user_client_id_key",
    ] {
        assert!(first.iter().any(|l| l.contains(index)), "{index} missing");
    }
    // The outbox triggers of every indexed table.
    for table in ["tasks", "events", "memories", "messages"] {
        assert!(
            first
                .iter()
                .any(|l| l.starts_with(&format!("trigger {table} {table}_vector_outbox"))),
            "{table} has no outbox trigger"
        );
    }
    // Nothing left to apply.
    assert!(pixie::db::migrate(&mut conn).unwrap().is_empty());

    conn.revert_all_migrations(pixie::db::MIGRATIONS).unwrap();
    assert_eq!(
        schema(&mut conn),
        Vec::<String>::new(),
        "down.sql left objects behind"
    );

    pixie::db::migrate(&mut conn).unwrap();
    assert_eq!(schema(&mut conn), first);
}
